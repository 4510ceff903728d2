"""A second real third-party application for the import tests: Trac (tickets; a form token in a hidden input
and a cookie, a 303 after each POST), from PyPI, in a temporary folder, served by a threaded WSGI server on
127.0.0.1 (a port the OS picks) with an access log, and its own SQLite database to count the tickets.

``python trac_tickets.py DIR`` creates the environment (anonymous may create tickets); ``python trac_tickets.py
DIR serve`` serves it and prints ``http://127.0.0.1:PORT`` once listening."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def create(folder: Path) -> None:
    admin = [sys.executable, "-m", "trac.admin.console", str(folder)]
    subprocess.run([*admin, "initenv", "Tickets", "sqlite:db/trac.db"], check=True, timeout=120, capture_output=True)
    subprocess.run([*admin, "permission", "add", "anonymous", "TICKET_CREATE", "TICKET_MODIFY"], check=True, timeout=60)


def main_serve(folder: Path) -> None:
    import threading
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from trac.web.main import dispatch_request

    lock, log = threading.Lock(), folder / "access.log"

    def app(environ: dict, start_response):  # type: ignore[no-untyped-def]
        environ["trac.env_path"] = str(folder)
        seen: list[str] = []

        def start(status: str, headers: list, exc_info=None):  # type: ignore[no-untyped-def]
            seen.append(status)
            return start_response(status, headers, exc_info)

        body = dispatch_request(environ, start)
        path = environ.get("PATH_INFO", "") + ("?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else "")
        with lock, log.open("a") as out:
            out.write(json.dumps([environ["REQUEST_METHOD"], path, int(seen[0][:3]) if seen else 0]) + "\n")
        return body

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = make_server("127.0.0.1", 0, app, server_class=Server, handler_class=Quiet)
    print(f"http://127.0.0.1:{httpd.server_port}", flush=True)
    httpd.serve_forever()


@dataclass
class Trac:
    folder: Path
    url: str

    def tickets(self) -> list[tuple[int, str]]:
        with sqlite3.connect(self.folder / "db" / "trac.db") as db:
            return sorted(db.execute("SELECT id, summary FROM ticket").fetchall())

    def log(self) -> list[tuple[str, str, int]]:
        path = self.folder / "access.log"
        return [tuple(json.loads(x)) for x in path.read_text().splitlines()] if path.exists() else []  # type: ignore[misc]

    def clear_log(self) -> None:
        (self.folder / "access.log").unlink(missing_ok=True)


@contextmanager
def serve(folder: Path) -> Iterator[Trac]:
    """The environment in ``folder`` (created once) served until the block ends; the server is killed by PID."""
    if not (folder / "VERSION").exists():
        create(folder)
    server = subprocess.Popen([sys.executable, __file__, str(folder), "serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the Trac server did not start: {url!r}")
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/newticket", timeout=10).close()
                break
            except OSError:
                time.sleep(0.2)
        yield Trac(folder, url)
    finally:
        server.kill()
        server.wait(timeout=10)


if __name__ == "__main__":
    if sys.argv[2:] == ["serve"]:
        main_serve(Path(sys.argv[1]))
    else:
        create(Path(sys.argv[1]))
