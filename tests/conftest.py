"""Shared fixtures: the real demo target on loopback, and the real ``lrun`` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from helpers import Cluster
    from scripted import Script, Scripted

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


def lrun_command() -> list[str]:
    """The installed ``lrun`` script next to this Python, or the module as a fallback."""
    script = Path(sys.executable).parent / "lrun"
    if script.exists():
        return [str(script)]
    found = shutil.which("lrun")
    return [found] if found else [sys.executable, "-m", "runner.cli"]


def run_lrun(*args: str, timeout: float = 120, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run ``lrun ARGS`` as a user would; output captured, bounded in time."""
    env = {**os.environ, "NO_COLOR": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([*lrun_command(), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


@pytest.fixture(scope="session")
def demo_url() -> Iterator[str]:
    """The demo target, started once for the session in its own process."""
    from runner.demo import start_demo

    with start_demo() as demo:
        yield demo.url


@pytest.fixture(autouse=True)
def fresh_loop_time() -> None:
    """gevent's timers count from the loop's cached time, which goes stale while a test blocks without yielding
    (reading a million-row CSV): a 5 s timeout started after that would fire at once."""
    import gevent

    gevent.get_hub().loop.update_now()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Masters and workers of one test (``helpers.Cluster``), killed by PID at its end."""
    from helpers import Cluster

    started = Cluster(tmp_path)
    try:
        yield started
    finally:
        started.kill_all()


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    """``scripted(script, read_request=False)`` starts a loopback server running ``script`` per connection
    (tests/scripted.py); every one started is closed after the test."""
    from scripted import Scripted

    servers: list[Scripted] = []

    def start(script: Script, *, read_request: bool = False) -> Scripted:
        servers.append(Scripted(script, read_request=read_request))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
