"""A small notes application for the HAR import tests: every login, token and id is fresh, so a replay only
passes when the imported scenario correlates them. It records every request it serves."""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class NotesApp:
    def __init__(self) -> None:
        self.csrf: set[str] = set()
        self.sids: set[str] = set()
        self.tokens: set[str] = set()
        self.request_tokens: set[str] = set()
        self.notes: dict[int, str] = {}
        self.seen: list[str] = []  # "METHOD /path" of every request
        self.lock = threading.Lock()

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, str, str, list[tuple[str, str]]]:
        """(status, content type, body, extra headers)"""
        url = urlsplit(path)
        cookies = dict(p.strip().split("=", 1) for p in headers.get("Cookie", "").split(";") if "=" in p)
        bearer = headers.get("Authorization", "").removeprefix("Bearer ")
        with self.lock:
            self.seen.append(f"{method} {url.path}")
            if (method, url.path) == ("GET", "/login"):
                csrf, sid = secrets.token_hex(10), secrets.token_hex(6)
                self.csrf.add(csrf)
                self.sids.add(sid)
                page = (
                    "<!DOCTYPE html><html><head><title>Sign in - Notes</title></head><body><form method='post'>"
                    f'<input type="hidden" name="csrf_token" value="{csrf}"/><input name="username"/></form>'
                    "</body></html>"
                )
                return 200, "text/html; charset=utf-8", page, [("Set-Cookie", f"sid={sid}; Path=/")]
            if (method, url.path) == ("POST", "/login"):
                form = parse_qs(body.decode())
                if form.get("csrf_token", [""])[0] not in self.csrf or cookies.get("sid") not in self.sids:
                    return 403, "application/json", '{"error": "bad csrf token or session"}', []
                token = f"eyJ{secrets.token_urlsafe(24)}"
                self.tokens.add(token)
                return 200, "application/json", json.dumps({"auth": {"access_token": token, "expires_in": 60}}), []
            if bearer not in self.tokens:
                return 401, "application/json", '{"error": "no token"}', []
            if (method, url.path) == ("GET", "/api/profile"):
                request_token = f"rt-{secrets.token_hex(6)}"
                self.request_tokens.add(request_token)
                return 200, "application/json", '{"name": "Ada"}', [("X-Request-Token", request_token)]
            if (method, url.path) == ("POST", "/api/notes"):
                if headers.get("X-Request-Token") not in self.request_tokens:
                    return 403, "application/json", '{"error": "bad request token"}', []
                note = len(self.notes) + 100
                self.notes[note] = json.loads(body)["text"]
                return 302, "application/json", "{}", [("Location", f"/api/notes/{note}")]
            if method == "GET" and url.path.startswith("/api/notes/"):
                note_id = int(url.path.rsplit("/", 1)[1])
                if note_id not in self.notes:
                    return 404, "application/json", '{"error": "no such note"}', []
                return 200, "application/json", json.dumps({"id": note_id, "text": self.notes[note_id]}), []
            return 404, "text/plain", "not found", []


class NotesServer:
    """The app on a free loopback port, in a thread; a context manager."""

    def __init__(self) -> None:
        self.app = NotesApp()
        app = self.app

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, kind, text, extra = app.handle(self.command, self.path, self.headers, body)
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> NotesServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
