"""WSGI test apps for the workers tests. Each public app is wrapped in
wsgiref.validate.validator, which raises on any PEP 3333 violation by the
server (the environ, wsgi.input, start_response, write, close)."""

import json
import os
import sys
import threading
import time
from wsgiref.validate import validator

MARKS = os.environ.get("TEST_MARKS", "/tmp")


def _echo(environ, start_response):
    inp = environ["wsgi.input"]
    if environ.get("QUERY_STRING") == "lines":
        body = b"".join(inp.readlines())
    else:
        parts = []
        while True:
            chunk = inp.read(7919)
            if not chunk:
                break
            parts.append(chunk)
        body = b"".join(parts)
    keys = ["REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
            "CONTENT_LENGTH", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR",
            "HTTP_HOST", "HTTP_COOKIE", "HTTP_X_FORWARDED_FOR", "HTTP_X_SPOOF", "wsgi.url_scheme",
            "HTTP_X_REQUEST_START"]
    out = {k: environ.get(k) for k in keys}
    out["path_utf8"] = environ["PATH_INFO"].encode("latin-1").decode("utf-8", "replace")
    out["body_len"] = len(body)
    out["body_sum"] = sum(body) % 1000003
    out["multithread"] = environ["wsgi.multithread"]
    data = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


echo = validator(_echo)


def _stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/event-stream")])

    def gen():
        for i in range(3):
            yield b"data: %d\n\n" % i
            time.sleep(0.2)

    return gen()


stream = validator(_stream)


def _filewrap(environ, start_response):
    path = os.environ["TEST_FILE"]
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(os.path.getsize(path)))])
    return environ["wsgi.file_wrapper"](open(path, "rb"), 65536)


filewrap = validator(_filewrap)


def _writer(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written ")
    return [b"and ", b"returned"]


writer = validator(_writer)


def _excinfo(environ, start_response):
    try:
        raise ValueError("boom")
    except ValueError:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"handled"]


def excinfo(environ, start_response):
    # exc_info replacing headers: start_response called before with other headers
    start_response("200 OK", [("Content-Type", "text/html")])
    return _excinfo(environ, start_response)


class Closing:
    def __init__(self, name, n, delay):
        self.name, self.n, self.delay = name, n, delay

    def __iter__(self):
        for i in range(self.n):
            time.sleep(self.delay)
            yield b"x" * 1000

    def close(self):
        with open(os.path.join(MARKS, self.name), "w") as f:
            f.write("closed")


def closing(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing(environ["QUERY_STRING"], 200, 0.01)


def failing_mid(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"first part"
        raise RuntimeError("failed after the head")

    return gen()


def errors(environ, start_response):
    print("message on wsgi.errors", file=environ["wsgi.errors"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def hang_forever_view(environ, start_response):
    time.sleep(3600)


def crash(environ, start_response):
    os._exit(1)


def sleep(environ, start_response):
    time.sleep(float(environ.get("QUERY_STRING") or "0.05"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d" % os.getpid()]


_leak = []


def leak(environ, start_response):
    _leak.append(bytearray(2 << 20))  # 2 MiB of dirty memory per request
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d" % os.getpid()]


def pid(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d" % os.getpid()]
