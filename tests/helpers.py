"""Helpers shared by the test modules (a test module never imports another): scenario files, the demo target's
own counts, ``lrun run`` with its JSON results, free ports, waiting, and real master/worker processes."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conftest import ROOT, lrun_command, run_lrun

if TYPE_CHECKING:
    from runner.stats import Snapshot

# ------------------------------------------------------------------------------------------------ runs


def high_water_mib(pid: int) -> int:
    """The process's peak resident memory so far (``VmHWM``), 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) // 1024 if found else 0


def run_measured(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, stdout: Path | None = None
) -> tuple[int, str, float, int]:
    """``lrun ARGS`` to its end (bounded at 120 s): exit code, stderr, seconds taken, peak RSS in MiB (its
    standard output goes to ``stdout`` when given)."""
    err = tmp_path / "stderr.txt"
    full = {**os.environ, "NO_COLOR": "1", "PYTHONWARNINGS": "ignore", **(env or {})}
    started = time.monotonic()
    with open(err, "w") as stderr, open(stdout or os.devnull, "w") as out:
        proc = subprocess.Popen([*lrun_command(), *args], stdout=out, stderr=stderr, cwd=ROOT, env=full)
    # The peak is the process's own high-water mark (VmHWM), read while it runs: wait4's ru_maxrss would also
    # hold this pytest process's size at the fork (Linux keeps the larger across exec), 280 MiB late in a suite.
    peak = 0
    while time.monotonic() - started < 120:
        peak = max(peak, high_water_mib(proc.pid))
        pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            print(f"lrun {args[1:]}: {time.monotonic() - started:.1f} s, peak RSS {peak} MiB")
            return proc.returncode, err.read_text(), time.monotonic() - started, peak
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError(f"lrun did not end in 120 s: {err.read_text()[-2000:]}")


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def demo_stats(url: str) -> dict:
    """The demo target's own request counts."""
    with urllib.request.urlopen(f"{url}/__stats", timeout=10) as response:
        return json.load(response)


def demo_reset(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/__reset", method="POST"), timeout=10).close()


def run_json(tmp_path: Path, *args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], dict]:
    """``lrun run ARGS --json``: the finished process and its results."""
    out = tmp_path / "results.json"
    result = run_lrun("run", *args, "--json", str(out), "--only-summary", timeout=timeout)
    assert out.exists(), result.stdout + result.stderr
    return result, json.loads(out.read_text())


def by_name(results: dict) -> dict[str, dict]:
    """The results' request entries by "METHOD name"."""
    return {f"{e['method']} {e['name']}": e for e in results["requests"]}


def request_counts(results: dict) -> dict[str, int]:
    """How many requests each "METHOD name" made."""
    return {f"{e['method']} {e['name']}": e["requests"] for e in results["requests"]}


def requests_sent(results: dict) -> dict[str, int]:
    """How many requests each "METHOD name" sent: those in the statistics and those cut off at the stop, which
    a server may have answered (``interrupted``)."""
    sent = request_counts(results)
    for cut in (results.get("interrupted") or {}).get("requests") or []:
        key = f"{cut['method']} {cut['name']}"
        sent[key] = sent.get(key, 0) + cut["count"]
    return sent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------------ a cluster

FAST = ["--heartbeat-interval", "0.2s", "--heartbeat-liveness", "3", "--report-interval", "0.5s"]
TOKEN = "test-token"


class Proc:
    """A started ``lrun`` process whose output goes to files (no pipe to fill up)."""

    def __init__(
        self, args: list[str], tmp: Path, name: str, env: dict[str, str] | None, cwd: Path, prefix: list[str]
    ) -> None:
        self.name = name
        self.out_path, self.err_path = tmp / f"{name}.out", tmp / f"{name}.err"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.popen = subprocess.Popen(
                [*prefix, *lrun_command(), *args],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env={**os.environ, "NO_COLOR": "1", "PYTHONWARNINGS": "ignore", **(env or {})},
            )
        self.pid = self.popen.pid

    @property
    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


class Cluster:
    """Starts masters and workers for one test; kills what is left, by PID, at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[Proc] = []

    def start(
        self, *args: str, name: str, env: dict[str, str] | None = None, cwd: Path = ROOT, prefix: list[str] = ()
    ) -> Proc:
        proc = Proc(list(args), self.tmp, name, env, cwd, list(prefix))
        self.procs.append(proc)
        return proc

    def master(self, scenario: Path, port: int, *args: str, token: str | None = TOKEN) -> Proc:
        secret = ["--master-token", token] if token else []
        return self.start(
            "run", str(scenario), "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
            *secret, "--only-summary", "--json", str(self.tmp / "results.json"), *FAST, *args, name="master",
        )  # fmt: skip

    def worker(self, port: int, *args: str, name: str, token: str = TOKEN, cwd: Path | None = None) -> Proc:
        workdir = cwd or self.tmp / name  # no scenario here: it comes from the master
        workdir.mkdir(exist_ok=True)
        return self.start(
            "--worker", "--master-port", str(port), *args,
            name=name, env={"LRUN_MASTER_TOKEN": token}, cwd=workdir,
        )  # fmt: skip

    def results(self) -> dict:
        return json.loads((self.tmp / "results.json").read_text())

    def kill_all(self) -> None:
        for proc in self.procs:
            proc.kill()


def log_shows(proc: Proc, text: str) -> Callable[[], bool]:
    return lambda: text in proc.err


_ENTRY = {"method": "", "name": "Aggregated", "requests": 0, "failures": 0, "failure_ratio": 0.0, "rps": 0.0}


def figures(results: dict[str, Any]) -> Snapshot:
    """Typed figures from a results document, the entries' keys a test does not care about filled in."""
    entries = [{**_ENTRY, "failures_per_s": 0.0, **e} for e in results.get("requests", [])]
    total = {**_ENTRY, "failures_per_s": 0.0, **results.get("total", {})}
    from runner.stats import Snapshot

    return Snapshot.of_results({**results, "total": total, "requests": entries})
