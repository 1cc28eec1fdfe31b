"""Prints what Django's test client returns for the example's views, as
JSON, for the gatehouse test that compares it with what comes through
gatehouse (workers/django_test.go). CSRF tokens differ per request and are
replaced by TOKEN."""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mysite.wsgi  # noqa: E402,F401 - sets Django up and prepares the data dir

from django.test import Client  # noqa: E402

TOKEN = re.compile(rb'(name="csrfmiddlewaretoken" value=")[^"]+')


def body(r):
    data = b"".join(r.streaming_content) if r.streaming else r.content
    return TOKEN.sub(rb"\1TOKEN", data).decode("utf-8")


out = {}
c = Client()
for path in sys.argv[1:]:
    method, _, path = path.partition(" ")
    r = c.generic(method, path)
    out[method + " " + path] = {"status": r.status_code, "content_type": r.get("Content-Type", ""), "body": body(r)}
print(json.dumps(out))
