"""A real ``lrun SCENARIO --web`` process for the web UI's tests, and a small HTTP client for it (loopback only)."""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from conftest import ROOT, lrun_command

URL_LINE = re.compile(r"lrun web UI: (https?://\S+)")


class WebLrun:
    """``lrun ARGS --web --web-port 0``; ``url`` once it listens; ``stop()`` sends SIGINT and waits."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, startup: float = 60.0) -> None:
        command = [*lrun_command(), *args, "--web", "--web-port", "0", "--only-summary"]
        full_env = {**os.environ, "NO_COLOR": "1", "PYTHONWARNINGS": "ignore", **(env or {})}
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(self.process.stdout, self.stdout, True), daemon=True).start()
        threading.Thread(target=self._read, args=(self.process.stderr, self.stderr, False), daemon=True).start()
        self.url = self._wait_for_url(startup)

    def _read(self, stream: Any, into: list[str], announce: bool) -> None:
        for line in stream:
            into.append(line)
            if announce:
                self.lines.put(line)

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    message = f"lrun --web exited ({self.process.returncode}): {''.join(self.stderr)}"
                    raise AssertionError(message) from None
                continue
            match = URL_LINE.search(line)
            if match:
                return match.group(1)
        self.process.kill()
        raise AssertionError(f"lrun --web did not print its URL within {timeout}s: {''.join(self.stderr)}")

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def __enter__(self) -> WebLrun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def http(
    url: str,
    *,
    method: str = "GET",
    data: dict[str, Any] | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    timeout: float = 15.0,
    context: ssl.SSLContext | None = None,
) -> Reply:
    """One request, as a script would send it (no browser headers unless given)."""
    body = urllib.parse.urlencode(data).encode() if data is not None else body
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read())


def wait_for(check: Callable[[], Any], timeout: float = 30.0, every: float = 0.25, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something true (bounded in time and count)."""
    deadline = time.monotonic() + timeout
    last = None
    for _ in range(int(timeout / every) + 1):
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            break
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
