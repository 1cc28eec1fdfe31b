"""WSGI entry point: `app.wsgi: mysite.wsgi:application`.

On a fresh checkout the first worker to boot creates the sqlite database
and collects the hashed static files (under a file lock, as several
workers boot at once), so `gatehouse run` needs no separate setup step.
"""

import fcntl
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402


def _prepare():
    data = settings.DATA_DIR
    os.makedirs(data, exist_ok=True)
    with open(os.path.join(data, ".setup.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(settings.DATABASES["default"]["NAME"]):
            call_command("migrate", interactive=False, verbosity=0)
        if not os.path.exists(os.path.join(settings.STATIC_ROOT, "staticfiles.json")):
            call_command("collectstatic", interactive=False, verbosity=0)


_prepare()

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
