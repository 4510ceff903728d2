"""Run the demo shop in a child process, for the quickstart, example runs and tests."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from runner.errors import RunError

READY_PREFIX = "lrun demo target listening on "  # the first stdout line of ``python -m runner.demo``
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding the ``runner`` package


def _command() -> list[str]:
    # -P: the current directory is not on the child's sys.path, so a file there (scenarios/xmlrpc.py) cannot
    # shadow a module of the standard library or of lrun
    return [sys.executable, "-P", "-m", "runner.demo", "--port", "0", "--exit-with-parent"]


class DemoProcess:
    """A running demo shop child process: ``.url``, ``.pid``, ``.stop()``; a context manager."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, stderr: IO[bytes]) -> None:
        self._proc = proc
        self._stderr = stderr
        self.url = url
        self.pid = proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit code, or None while the child runs."""
        return self._proc.poll()

    def stop(self) -> None:
        """Terminate the child (SIGTERM, then SIGKILL after 5 s) and release its pipes; idempotent."""
        _stop(self._proc)
        _close(self._proc, self._stderr)

    def __enter__(self) -> DemoProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"DemoProcess(url={self.url!r}, pid={self.pid}, returncode={self.returncode})"


def start_demo(timeout: float = 15.0) -> DemoProcess:
    """Start ``python -m runner.demo`` on a free port and wait (at most ``timeout`` s) until it listens.

    The child exits by itself if this process dies (it watches its stdin pipe). Raises ``RunError`` with the
    child's stderr if it does not come up.
    """
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    # A file, not a pipe: nobody has to keep draining it. DemoProcess owns and closes it.
    stderr = tempfile.TemporaryFile()  # noqa: SIM115
    try:
        proc = subprocess.Popen(_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env)
    except OSError as e:
        stderr.close()
        raise RunError(f"cannot start the demo target: {e}") from e
    try:
        line = _first_line(proc, timeout)
        if not line.startswith(READY_PREFIX):
            raise _StartFailure(f"unexpected first line {line!r}")
    except _StartFailure as e:
        _stop(proc)
        message = f"the demo target did not start: {e}"
        stderr.seek(0)
        text = stderr.read().decode("utf-8", "replace").strip()
        _close(proc, stderr)
        raise RunError(f"{message}\n--- its stderr ---\n{text}" if text else message) from None
    except BaseException:
        _stop(proc)
        _close(proc, stderr)
        raise
    return DemoProcess(proc, line.removeprefix(READY_PREFIX).strip(), stderr)


class _StartFailure(Exception):
    pass


def _first_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The child's first stdout line, read without ever blocking past ``timeout``."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _StartFailure(f"it printed no ready line within {timeout:g} s")
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            continue
        if not chunk:
            try:
                code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise _StartFailure("it closed its stdout without printing a ready line") from None
            raise _StartFailure(f"it exited with code {code}")
        data += chunk
    return data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate ``proc`` (only that PID), then kill it if it is still alive after 5 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _close(proc: subprocess.Popen[bytes], stderr: IO[bytes]) -> None:
    for stream in (proc.stdin, proc.stdout, stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
