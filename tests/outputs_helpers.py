"""Helpers of the live-output tests: free ports, a background lrun, scraping."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conftest import ROOT, lrun_command


def start_lrun(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full = {**os.environ, "NO_COLOR": "1", "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.Popen(
        [*lrun_command(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=full
    )


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def scrape_until(url: str, ready: str, *, deadline_s: float = 60.0, headers: dict[str, str] | None = None) -> str:
    """Scrape ``url`` (at most every 0.2 s, for at most ``deadline_s``) until the text holds ``ready``."""
    end = time.monotonic() + deadline_s
    last = ""
    while time.monotonic() < end:
        try:
            status, last = get(url, headers)
            if status == 200 and ready in last:
                return last
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never showed {ready!r}; last answer: {last[:500]!r}")


class Receiver:
    """An incoming webhook: records JSON bodies; the first ``fail_first`` posts get a 503 (to test retries)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.attempts <= fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                assert self.headers["Content-Type"] == "application/json"
                receiver.bodies.append(json.loads(data))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
