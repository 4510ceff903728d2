"""A real third-party application for the import tests: a tiny Django project (the admin, a ``notes`` app) made
in a temporary folder, served by a threaded WSGI server on 127.0.0.1 (a port the OS picks), with an access log
of (user, method, path, status) lines and its own SQLite database to count what the load created.

``python django_notes.py DIR`` creates the project (migrations, users) in DIR; ``python django_notes.py DIR
serve`` serves it and prints ``http://127.0.0.1:PORT`` once listening. Django is the ``test`` extra's."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USERS = {"ada": "lovelace-1815", "bob": "babbage-1791", "cy": "hopper-1906"}

SETTINGS = """
from pathlib import Path
BASE = Path(__file__).resolve().parent
SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
                  "django.contrib.sessions", "django.contrib.messages", "django.contrib.staticfiles", "notes"]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware",
              "django.contrib.sessions.middleware.SessionMiddleware",
              "django.middleware.common.CommonMiddleware", "django.middleware.csrf.CsrfViewMiddleware",
              "django.contrib.auth.middleware.AuthenticationMiddleware",
              "django.contrib.messages.middleware.MessageMiddleware", "notes.AccessLog"]
ROOT_URLCONF = "urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
              "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                                 "django.contrib.auth.context_processors.auth",
                                                 "django.contrib.messages.context_processors.messages"]}}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE / "db.sqlite3",
                         "OPTIONS": {"timeout": 30}}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # a test: logins cost no CPU
STATIC_URL = "static/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
"""

NOTES_INIT = '''
import json, threading
from pathlib import Path
_lock = threading.Lock()
LOG = Path(__file__).resolve().parent.parent / "access.log"

class AccessLog:
    """One JSON line per request: who (the logged-in user after the view), what, the answer."""
    def __init__(self, get_response):
        self.get_response = get_response
    def __call__(self, request):
        response = self.get_response(request)
        user = request.user.username if getattr(request, "user", None) and request.user.is_authenticated else ""
        line = json.dumps([user, request.method, request.get_full_path(), response.status_code])
        with _lock, LOG.open("a") as out:
            out.write(line + "\\n")
        return response
'''

MODELS = """
from django.conf import settings
from django.db import models

class Note(models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              editable=False)
    def __str__(self):
        return self.title
"""

ADMIN = """
from django.contrib import admin
from notes.models import Note

@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ["title"]
    def save_model(self, request, obj, form, change):
        if not change:
            obj.owner = request.user
        super().save_model(request, obj, form, change)
"""

URLS = """
from django.contrib import admin
from django.urls import path
urlpatterns = [path("admin/", admin.site.urls)]
"""

SERVE = """
import os, sys, threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ["DJANGO_SETTINGS_MODULE"] = "settings"
from django.core.wsgi import get_wsgi_application

class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

httpd = make_server("127.0.0.1", 0, get_wsgi_application(), server_class=Server, handler_class=Quiet)
print(f"http://127.0.0.1:{httpd.server_port}", flush=True)
httpd.serve_forever()
"""


def create(folder: Path) -> None:
    """The project, its tables and three superusers (``USERS``)."""
    (folder / "notes" / "migrations").mkdir(parents=True)
    (folder / "settings.py").write_text(SETTINGS)
    (folder / "urls.py").write_text(URLS)
    (folder / "serve.py").write_text(SERVE)
    (folder / "notes" / "__init__.py").write_text(NOTES_INIT)
    (folder / "notes" / "models.py").write_text(MODELS)
    (folder / "notes" / "admin.py").write_text(ADMIN)
    (folder / "notes" / "migrations" / "__init__.py").write_text("")
    sys.path.insert(0, str(folder))
    os.environ["DJANGO_SETTINGS_MODULE"] = "settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("makemigrations", "notes", verbosity=0)
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import User

    for name, password in USERS.items():
        User.objects.create_superuser(name, f"{name}@example.test", password)


@dataclass
class Django:
    folder: Path
    url: str

    def notes(self) -> list[tuple[int, str, str]]:
        """(id, title, owner) of every note, from the application's own database."""
        with sqlite3.connect(self.folder / "db.sqlite3") as db:
            query = "SELECT n.id, n.title, u.username FROM notes_note n LEFT JOIN auth_user u ON u.id = n.owner_id"
            return sorted(db.execute(query).fetchall())

    def log(self) -> list[tuple[str, str, str, int]]:
        """(user, method, path, status) of each request served, in order."""
        path = self.folder / "access.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [tuple(json.loads(line)) for line in lines]  # type: ignore[misc]

    def clear_log(self) -> None:
        (self.folder / "access.log").unlink(missing_ok=True)


@contextmanager
def serve(folder: Path) -> Iterator[Django]:
    """The project in ``folder`` (created once) served until the block ends; the server is killed by its PID."""
    if not (folder / "settings.py").exists():
        subprocess.run([sys.executable, __file__, str(folder)], check=True, timeout=120)
    server = subprocess.Popen([sys.executable, str(folder / "serve.py")], stdout=subprocess.PIPE, text=True, cwd=folder)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the Django server did not start: {url!r}")
        started = time.monotonic()
        while time.monotonic() - started < 30:
            import urllib.request

            try:
                urllib.request.urlopen(f"{url}/admin/login/", timeout=5).close()
                break
            except OSError:
                time.sleep(0.2)
        yield Django(folder, url)
    finally:
        server.kill()
        server.wait(timeout=10)


if __name__ == "__main__":
    create(Path(sys.argv[1]))
