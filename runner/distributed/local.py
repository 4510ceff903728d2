"""``--processes N``: worker processes on this machine, one per core.

Each is ``python -m runner run SCENARIO --worker …`` with this Python, started with ``subprocess`` and known by
its PID only: ``stop`` waits for them to quit (the master tells them to), then terminates and kills those PIDs,
nothing else. A child's stdin is a pipe from this process; when this process dies, however it dies, the pipe
closes and the child stops its users and exits (``--exit-with-parent``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from runner.config import RunSettings, env_name
from runner.errors import RunError

log = logging.getLogger("lrun")

QUIT_WAIT = 10.0  # seconds children get to quit by themselves before SIGTERM
KILL_WAIT = 5.0  # then before SIGKILL


def worker_command(scenario: Path | None, host: str, port: int, loglevel: str) -> list[str]:
    command = [sys.executable, "-P", "-m", "runner", "run"]  # -P: no module of the current directory shadows one
    if scenario is not None:
        command.append(str(scenario))
    command += ["--worker", "--master-host", host, "--master-port", str(port), "--exit-with-parent", "-L", loglevel]
    return command


def _child_env(token: str | None, settings: dict[str, str] | None = None) -> dict[str, str]:
    """This environment, minus what would make a child a master too, plus the token (not on the command line,
    where ``ps`` shows it) and ``settings`` (as ``LRUN_*`` variables)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LRUN_MASTER", "LRUN_PROCESSES", "LRUN_MASTER_TOKEN")}
    if token:
        env["LRUN_MASTER_TOKEN"] = token
    env.update(settings or {})
    return env


class LocalWorkers:
    """N worker processes connecting to a master at ``host:port``."""

    def __init__(
        self,
        count: int,
        *,
        port: int,
        token: str | None,
        scenario: Path | None,
        host: str = "127.0.0.1",
        loglevel: str = "WARNING",
        settings: dict[str, str] | None = None,
    ) -> None:
        self.count = count
        self.command = worker_command(scenario, host, port, loglevel)
        self.env = _child_env(token, settings)
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for _ in range(self.count):
            try:
                child = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=self.env)
            except OSError as exc:
                raise RunError(f"cannot start a worker process: {exc}") from None
            self.children.append(child)
        if self.count:
            log.info("started %d worker process(es): pids %s", self.count, ", ".join(str(c.pid) for c in self.children))

    def check(self) -> None:
        """``RunError`` when a child already exited (while the master waits for them to connect)."""
        for child in self.children:
            if child.poll() is not None:
                raise RunError(
                    f"worker process {child.pid} exited with code {child.returncode} before the test started "
                    "(its messages are above)"
                )

    def wait(self, timeout: float | None = None) -> list[int | None]:
        """Wait for every child to exit (at most ``timeout`` s in all); their exit codes (None: still running)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for child in self.children:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(remaining)
        return [child.poll() for child in self.children]

    def signal(self, signum: int) -> None:
        for child in self.children:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signum)

    def stop(self, quit_wait: float = QUIT_WAIT) -> None:
        """Let the children quit (they were told to), then SIGTERM, then SIGKILL their PIDs."""
        if not self.children:
            return
        if None in self.wait(quit_wait):
            self.signal(signal.SIGTERM)
            if None in self.wait(KILL_WAIT):
                self.signal(signal.SIGKILL)
                self.wait(KILL_WAIT)


def supervise(count: int, scenario: Path | None, settings: RunSettings) -> int:
    """``lrun --worker --processes N``: N workers on this machine for a remote master; the highest exit code."""
    import gevent

    workers = LocalWorkers(
        count,
        port=settings.master_port,
        token=settings.master_token,
        scenario=scenario,
        host=settings.master_host,
        loglevel=settings.loglevel,
        settings={
            env_name(name): value
            for name, value in [
                ("master_key_file", settings.master_key_file),
                ("worker_key_file", settings.worker_key_file),
                ("allow_env", ",".join(settings.allow_env)),
            ]
            if value
        },
    )
    workers.start()
    handlers = [gevent.signal_handler(s, workers.signal, s) for s in (signal.SIGINT, signal.SIGTERM)]
    try:
        while None in [child.poll() for child in workers.children]:
            gevent.sleep(0.5)
    finally:
        for handler in handlers:
            handler.cancel()
        workers.stop(quit_wait=0)
    return max(child.returncode or 0 for child in workers.children)
