#!/usr/bin/env python3
"""lrun side by side with Locust, measured in one run, against nginx on loopback.

    python bench/run.py [--duration 20] [--only plain,correlated,https,idle] [--idle-users 10000]
                                      [--out bench/results.json] [--install]

What it does (see bench/README.md):

* nginx (bench/nginx.conf, one worker) on a free 127.0.0.1 port, pinned to core 1, as a child process with
  every path under a temp dir; the harness itself also stays on core 1.
* plain, correlated: lrun, then Locust (FastHttpUser, one process), each alone on core 0, 50 users, for
  ``--duration`` seconds. Requests/s come from each tool's own results (lrun ``--json``, Locust
  ``--json-file``) and are cross-checked with nginx's own request counter (``stub_status``), polled during
  the run: the total count, and the rate over the steady part of the run. CPU seconds of each generator come
  from the kernel (``wait4`` rusage).
* https: the plain loop over TLS 1.3 with keep-alive, against the same nginx on a second port, with a
  self-signed certificate for 127.0.0.1 the harness makes with ``openssl``.
* ceilings, for plain and https, each alone on core 0 like the generators: ``wrk`` (one thread, 50
  connections) and bench/ceiling.py (50 gevent greenlets of keep-alive GETs on raw sockets, no HTTP parsing).
  They are the physical references: what nginx and one core allow, and what gevent alone costs.
* idle: N users that make one request and think 30 s; the generator's RSS once all N are idle, minus its RSS
  with 1 user, divided by N - 1: KiB per idle user.

Every child (nginx, generators) is ended by its PID at the end, on error and on Ctrl-C / SIGTERM.
All load goes to 127.0.0.1; every wait is bounded in time.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import math
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LOCUST_VENV = BENCH / ".venv-locust"
SCENARIOS = ("plain", "correlated", "https", "idle")
LOAD_SCENARIOS = ("plain", "correlated", "https")
SCENARIO_FILE = {"https": "plain", "h2": "plain"}  # https and h2 run the plain scenario against a TLS port
CEILING_SCENARIOS = ("plain", "https")  # wrk and the bare gevent loop only do GET /
LOAD_USERS = 50
POLL_INTERVAL = 0.25  # seconds between nginx stub_status reads during a run
STARTUP_GRACE = 30.0  # seconds a generator may take beyond --duration to start and stop before it is killed
TERM_GRACE = 10.0  # seconds between SIGTERM and SIGKILL


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------------------------------- children


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    extra_pids: list[int] = field(default_factory=list)  # nginx's worker, killed by PID if the master dies
    rusage: resource.struct_rusage | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        if self.proc.returncode is not None:
            return False
        try:
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.proc.returncode = -1
            return False
        if pid == 0:
            return True
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.rusage = usage
        return False

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in text[-lines:])


class Children:
    """Every process the harness starts, so that all of them end by PID whatever happens."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def start(self, name: str, argv: list[str], cpu: int, log_path: Path, env: dict[str, str] | None = None) -> Child:
        def pin() -> None:
            os.sched_setaffinity(0, {cpu})
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            if soft < hard:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

        out = open(log_path, "wb")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=pin,
                start_new_session=True,  # Ctrl-C reaches the harness only; it ends the children itself
                env=env,
                cwd=REPO,
            )
        finally:
            out.close()
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def stop(self, child: Child, sig: int = signal.SIGTERM) -> None:
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, sig)
            if not child.wait(TERM_GRACE):
                log(f"{child.name} (pid {child.pid}) did not end on {signal.Signals(sig).name}: SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
                child.wait(TERM_GRACE)
        for pid in child.extra_pids:  # normally gone with the master; if not (master killed), still ours?
            if _proc_name(pid) == "nginx":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        for child in list(reversed(self.children)):
            try:
                self.stop(child)
            except Exception as exc:  # keep ending the others
                log(f"could not stop {child.name} (pid {child.pid}): {exc}")


def _proc_name(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def proc_children(pid: int) -> list[int]:
    pids: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                pids += [int(p) for p in (task / "children").read_text().split()]
    return pids


def rss_kib(pid: int) -> tuple[int, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_times(cpu: int) -> tuple[float, float]:
    """(user + nice + system, steal) seconds core ``cpu`` has spent since boot, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            ticks = [int(v) for v in line.split()[1:]]
            hz = os.sysconf("SC_CLK_TCK")
            return (ticks[0] + ticks[1] + ticks[2]) / hz, (ticks[7] if len(ticks) > 7 else 0) / hz
    return 0.0, 0.0


def others_on(cpu: int, seconds: float = 1.0) -> float:
    """Share of core ``cpu`` that other processes used over ``seconds`` (before a measurement)."""
    busy, _ = core_times(cpu)
    time.sleep(seconds)
    return (core_times(cpu)[0] - busy) / seconds


# ------------------------------------------------------------------------------------------------------ nginx


class Nginx:
    def __init__(self, children: Children, tmp: Path, cpu: int) -> None:
        self.tmp = tmp / "nginx"
        self.tmp.mkdir()
        self.port, self.tls_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tls_url = f"https://127.0.0.1:{self.tls_port}"
        self.h2_port = free_port()
        self.h2_url = f"https://127.0.0.1:{self.h2_port}"  # HTTP/2 by ALPN (bench/http2.py)
        make_certificate(self.tmp)
        conf = (BENCH / "nginx.conf").read_text()
        conf = conf.format(prefix=self.tmp, port=self.port, tls_port=self.tls_port, h2_port=self.h2_port)
        (self.tmp / "nginx.conf").write_text(conf)
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        argv = [exe, "-c", str(self.tmp / "nginx.conf"), "-p", str(self.tmp), "-e", str(self.tmp / "error.log")]
        self.child = children.start("nginx", [*argv, "-g", "daemon off;"], cpu, tmp / "nginx.out")
        self._conn: http.client.HTTPConnection | None = None
        self.polls = 0  # each status read is itself a request nginx counts
        deadline = time.monotonic() + 10
        while True:
            if not self.child.alive():
                raise BenchError(f"nginx exited at start:\n{self.child.log_tail()}\n{self._error_log()}")
            try:
                self.requests()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError(f"nginx does not answer on {self.url}:\n{self._error_log()}") from None
                time.sleep(0.1)
        self.child.extra_pids = proc_children(self.child.pid)

    def cpu_seconds(self) -> float:
        """CPU seconds of nginx's master and worker so far."""
        total = 0.0
        for pid in (self.child.pid, *self.child.extra_pids):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += cpu_seconds(pid)
        return total

    def _error_log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.tmp / "error.log").read_text(errors="replace")[-2000:]
        return ""

    def requests(self) -> int:
        """nginx's count of requests handled so far, not counting the harness's own status reads."""
        for attempt in (1, 2):
            try:
                if self._conn is None:
                    self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                self._conn.request("GET", "/nginx_status")
                body = self._conn.getresponse().read().decode()
                self.polls += 1
                break
            except (OSError, http.client.HTTPException):
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise
        # "Active connections: 1 \nserver accepts handled requests\n 3 3 3 \nReading: ..."
        return int(body.splitlines()[2].split()[2]) - self.polls


def make_certificate(directory: Path) -> None:
    """A self-signed EC certificate for 127.0.0.1, valid one day: cert.pem and key.pem in ``directory``."""
    argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    argv += ["-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem"), "-days", "1"]
    argv += ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode:
        raise BenchError(f"openssl could not make the certificate:\n{done.stderr}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------ generators


@dataclass
class Tool:
    name: str  # "lrun", "locust", or a ceiling: "wrk", "gevent"
    available: bool
    why_not: str = ""
    version: str = ""
    python: str = ""
    argv0: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # options both tools get when the tool has them

    def load_argv(self, scenario: str, host: str, users: int, rate: int, run_time: int, out: Path) -> list[str]:
        scenario = SCENARIO_FILE.get(scenario, scenario)
        if self.name == "wrk":
            return [*self.argv0, "-t1", f"-c{users}", f"-d{run_time}s", f"{host}/"]
        if self.name == "gevent":
            return [*self.argv0, f"{host}/", "--users", str(users), "--duration", str(run_time), "--out", str(out)]
        if self.name == "lrun":
            return [
                *self.argv0,
                "run",
                str(BENCH / f"{scenario}.yaml"),
                "-H",
                host,
                "-u",
                str(users),
                "-r",
                str(rate),
                "-t",
                f"{run_time}s",
                "--json",
                str(out),
                *self.extra,
            ]
        return [
            *self.argv0,
            "-f",
            str(BENCH / "locustfiles" / f"{scenario}.py"),
            "--headless",
            "-u",
            str(users),
            "-r",
            str(rate),
            "-t",
            f"{run_time}s",
            "--host",
            host,
            "--json-file",
            str(out.with_suffix("")),
            "--only-summary",
            "--stop-timeout",
            "0",
        ]

    def results(self, out: Path) -> dict[str, Any]:
        if self.name == "wrk":
            return wrk_results(out.with_suffix(".log"))
        if self.name == "gevent":
            data = json.loads(out.read_text())
            return {"requests": data["requests"], "failures": 0, "rps": data["rps"]}
        return lrun_results(out) if self.name == "lrun" else locust_results(out)


def ceiling_tools() -> list[Tool]:
    wrk = shutil.which("wrk")
    return [
        Tool("wrk", bool(wrk), "" if wrk else "no wrk (apt-get install wrk)", argv0=[wrk or "wrk"]),
        Tool("gevent", True, argv0=[sys.executable, str(BENCH / "ceiling.py")]),
    ]


def wrk_results(log_path: Path) -> dict[str, Any]:
    """From wrk's summary: "  1234567 requests in 20.00s, ..." and "Requests/sec: 61728.35"."""
    text = log_path.read_text()
    requests = next(int(line.split()[0]) for line in text.splitlines() if " requests in " in line)
    rps = next(float(line.split()[1]) for line in text.splitlines() if line.startswith("Requests/sec:"))
    errors = sum(int(w) for line in text.splitlines() if "Non-2xx" in line for w in line.split()[-1:])
    return {"requests": requests, "failures": errors, "rps": rps}


def lrun_tool() -> Tool:
    script = Path(sys.executable).parent / "lrun"
    argv0 = [str(script)] if script.exists() else [sys.executable, "-m", "runner.cli"]
    try:
        version = subprocess.run([*argv0, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
        help_text = subprocess.run([*argv0, "run", "--help"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Tool("lrun", False, f"cannot start lrun ({exc}); run this script with lrun's Python")
    missing = [opt for opt in ("--host", "--users", "--spawn-rate", "--run-time", "--json") if opt not in help_text]
    tool = Tool("lrun", not missing, version=version, python=platform.python_version(), argv0=argv0)
    if "--only-summary" in help_text:  # as Locust gets: no periodic table during the run
        tool.extra.append("--only-summary")
    if missing:
        tool.why_not = "`lrun run` is not there yet" if not help_text else f"`lrun run` lacks {', '.join(missing)}"
    return tool


def locust_tool(create: bool) -> Tool:
    exe = LOCUST_VENV / "bin" / "locust"
    if not exe.exists():
        if not create:
            return Tool("locust", False, f"no Locust in {LOCUST_VENV}")
        log(f"creating {LOCUST_VENV} and installing Locust into it (first use)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(LOCUST_VENV)], check=True, timeout=300)
        pip = [str(LOCUST_VENV / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "locust"], check=True, timeout=900)
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    # "locust 2.47.0 from /path (Python 3.11.7)"
    words = (out.stdout or out.stderr).split()
    version = words[1] if len(words) > 1 else "?"
    python = words[-1].rstrip(")") if words else "?"
    return Tool("locust", out.returncode == 0, "" if out.returncode == 0 else out.stderr, version, python, [str(exe)])


def lrun_results(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    total = data.get("total", data)
    return {
        "requests": int(total["requests"]),
        "failures": int(total.get("failures", 0)),
        "rps": float(total["rps"]),
        "percentiles_ms": total.get("percentiles"),
    }


def locust_results(path: Path) -> dict[str, Any]:
    if not path.exists() and path.with_suffix(".json").exists():
        path = path.with_suffix(".json")
    entries = json.loads(path.read_text())
    requests = sum(e["num_requests"] for e in entries)
    failures = sum(e["num_failures"] for e in entries)
    start = min(e["start_time"] for e in entries)
    last = max(e["last_request_timestamp"] or start for e in entries)
    histogram: dict[int, int] = {}
    for e in entries:
        for ms, count in e["response_times"].items():
            histogram[int(float(ms))] = histogram.get(int(float(ms)), 0) + count
    return {
        "requests": requests,
        "failures": failures,
        # Locust's own "Aggregated" req/s: requests / (last request - start of the stats)
        "rps": requests / (last - start) if last > start else 0.0,
        "percentiles_ms": percentiles(histogram),
    }


def percentiles(histogram: dict[int, int]) -> dict[str, float]:
    total = sum(histogram.values())
    result: dict[str, float] = {}
    if not total:
        return result
    for p in (50, 90, 95, 99):
        need, seen = math.ceil(total * p / 100), 0
        for ms in sorted(histogram):
            seen += histogram[ms]
            if seen >= need:
                result[f"p{p}"] = ms
                break
    return result


# ---------------------------------------------------------------------------------------------- measurements


def load_run(children: Children, nginx: Nginx, tool: Tool, scenario: str, duration: int, tmp: Path, cpu: int) -> dict:
    out = tmp / f"{tool.name}-{scenario}.json"
    host = {"https": nginx.tls_url, "h2": nginx.h2_url}.get(scenario, nginx.url)
    argv = tool.load_argv(scenario, host, LOAD_USERS, LOAD_USERS, duration, out)
    log(f"{scenario}: {tool.name}, {LOAD_USERS} users, {duration} s, core {cpu}")
    samples = [(time.monotonic(), nginx.requests())]
    nginx_cpu = next(iter(os.sched_getaffinity(0)))  # the harness runs on nginx's core
    gen_before, nginx_core_before = core_times(cpu), core_times(nginx_cpu)
    ours_before = nginx.cpu_seconds() + sum(os.times()[:2])
    started = time.monotonic()
    child = children.start(f"{tool.name} {scenario}", argv, cpu, tmp / f"{tool.name}-{scenario}.log")
    deadline = started + duration + STARTUP_GRACE
    last_cpu = 0.0
    timed_out = False
    while child.alive():
        if time.monotonic() > deadline:
            log(f"{tool.name} {scenario} still running after {duration + STARTUP_GRACE:.0f} s: stopping it")
            timed_out = True
            children.stop(child)
            break
        with contextlib.suppress(OSError):
            last_cpu = cpu_seconds(child.pid)
        samples.append((time.monotonic(), nginx.requests()))
        time.sleep(POLL_INTERVAL)
    wall = time.monotonic() - started
    samples.append((time.monotonic(), nginx.requests()))
    children.stop(child)
    cpu_used = child.rusage.ru_utime + child.rusage.ru_stime if child.rusage else last_cpu
    # CPU time that processes other than ours took on either core (tick granularity: ±0.1 s is nothing)
    core_busy, core_steal = (a - b for a, b in zip(core_times(cpu), gen_before, strict=True))
    others = max(0.0, core_busy - cpu_used)
    nginx_core_busy = core_times(nginx_cpu)[0] - nginx_core_before[0]
    ours = nginx.cpu_seconds() + sum(os.times()[:2]) - ours_before
    others_nginx_core = max(0.0, nginx_core_busy - ours) if nginx_cpu != cpu else 0.0
    result: dict[str, Any] = {
        "exit_code": child.proc.returncode,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu_used, 2),
        "cpu_share": round(cpu_used / wall, 2),  # below ~0.9: the generator waited (on nginx, or the machine)
        "nginx_cpu_s": round(ours, 2),
        "others_cpu_s_generator_core": round(others, 2),
        "others_cpu_s_nginx_core": round(others_nginx_core, 2),
        "steal_s_generator_core": round(core_steal, 2),
        "nginx_requests": samples[-1][1] - samples[0][1],
        "nginx_rps": steady_rate(samples),
    }
    if timed_out or child.proc.returncode not in (0, 1):  # 1: the run had failures, results still written
        result["error"] = f"exit code {child.proc.returncode}" + (" (timed out)" if timed_out else "")
        log(f"{tool.name} {scenario} failed ({result['error']}):\n{child.log_tail()}")
    try:
        result.update(tool.results(out))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        result.setdefault("error", f"no results: {exc!r}")
        log(f"{tool.name} {scenario}: cannot read its results ({exc!r}):\n{child.log_tail()}")
    if max(others, others_nginx_core, core_steal) > 0.05 * wall:
        result["noise"] = (
            f"other processes took {others:.1f} s of CPU on the generator's core and {others_nginx_core:.1f} s on "
            f"nginx's, hypervisor steal {core_steal:.1f} s, in {wall:.0f} s"
        )
        log(f"{tool.name} {scenario}: {result['noise']}: its numbers are low")
    if result.get("requests"):
        result["cpu_us_per_request"] = round(cpu_used / result["requests"] * 1e6, 1)
        result["nginx_vs_tool_count"] = round(result["nginx_requests"] / result["requests"], 4)
    return result


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rps (the lower middle one for an even count), with every round's numbers."""
    if len(runs) == 1:
        return runs[0]
    ranked = sorted(runs, key=lambda r: r.get("rps") or 0.0)
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    chosen["rounds"] = [
        {k: r.get(k) for k in ("rps", "nginx_rps", "cpu_us_per_request", "noise") if r.get(k) is not None} for r in runs
    ]
    return chosen


def steady_rate(samples: list[tuple[float, int]]) -> float | None:
    """Requests/s nginx saw over the steady part of a run: from 1 s after its first request to 1 s before its last.

    Sampled by the harness's clock every POLL_INTERVAL; the trimming leaves the ramp-up and the shutdown out.
    """
    active = [i for i in range(1, len(samples)) if samples[i][1] > samples[i - 1][1]]
    if not active:
        return None
    first, last = samples[active[0] - 1][0], samples[active[-1]][0]
    trim = 1.0 if last - first > 4 else 0.0
    inside = [s for s in samples if first + trim <= s[0] <= last - trim]
    if len(inside) < 2:
        inside = samples[active[0] - 1 : active[-1] + 1]
    (t0, n0), (t1, n1) = inside[0], inside[-1]
    return round((n1 - n0) / (t1 - t0), 1) if t1 > t0 else None


def idle_rss(children: Children, nginx: Nginx, tool: Tool, users: int, tmp: Path, cpu: int, timeout: float) -> dict:
    """RSS of the generator once `users` users have each made their one request and are thinking."""
    out = tmp / f"{tool.name}-idle-{users}.json"
    run_time = int(timeout) + 60  # the harness stops it as soon as it has measured
    argv = tool.load_argv("idle", nginx.url, users, users, run_time, out)
    log(f"idle: {tool.name}, {users} user(s), core {cpu}")
    before = nginx.requests()
    started = time.monotonic()
    child = children.start(f"{tool.name} idle {users}", argv, cpu, tmp / f"{tool.name}-idle-{users}.log")
    result: dict[str, Any] = {"users": users}
    try:
        rss_history: list[int] = []
        spawned_at = None
        settle_deadline = None
        while True:
            now = time.monotonic()
            if not child.alive():
                result["error"] = f"exited early with code {child.proc.returncode}"
                log(f"{tool.name} idle {users}: {result['error']}:\n{child.log_tail()}")
                return result
            done = nginx.requests() - before
            rss, hwm = rss_kib(child.pid)
            rss_history.append(rss)
            if spawned_at is None and done >= users:
                spawned_at = now
                settle_deadline = now + 20  # all users idle: wait for a steady RSS, 20 s at most
                result["spawn_s"] = round(now - started, 2)
            recent = rss_history[-int(3 / 0.5) :]  # the last 3 s
            steady = len(recent) >= 6 and (max(recent) - min(recent)) <= max(256, 0.005 * max(recent))
            if spawned_at is not None and ((steady and now - spawned_at >= 2) or now > settle_deadline):
                break
            if spawned_at is None and now - started > timeout:
                result["error"] = f"only {done} of {users} users made their request in {timeout:.0f} s"
                log(f"{tool.name} idle {users}: {result['error']}; measuring anyway")
                break
            time.sleep(0.5)
        result.update(rss_kib=rss, hwm_kib=hwm, requests=done, cpu_s=round(cpu_seconds(child.pid), 2))
        return result
    finally:
        children.stop(child)


def idle_per_user(
    children: Children, nginx: Nginx, tool: Tool, users: int, tmp: Path, cpu: int, timeout: float
) -> dict:
    base = idle_rss(children, nginx, tool, 1, tmp, cpu, timeout)
    time.sleep(1)
    full = idle_rss(children, nginx, tool, users, tmp, cpu, timeout)
    result: dict[str, Any] = {"baseline_1_user": base, "loaded": full}
    if "rss_kib" in base and "rss_kib" in full:
        result["kib_per_user"] = round((full["rss_kib"] - base["rss_kib"]) / (users - 1), 2)
        # the other method: the peak RSS (VmHWM) difference, which also counts what spawning took for a while
        result["kib_per_user_peak"] = round((full["hwm_kib"] - base["hwm_kib"]) / (users - 1), 2)
        if "error" in full:
            result["kib_per_user_note"] = full["error"]
    return result


# ------------------------------------------------------------------------------------------------ the report


def fmt(value: Any, spec: str = ",.0f") -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        return value
    return format(value, spec)


def ratio(a: Any, b: Any) -> float | None:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
        return round(a / b, 2)
    return None


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(results: dict[str, Any]) -> str:
    parts = []
    load = [s for s in LOAD_SCENARIOS if s in results["scenarios"]]
    if load:
        rows = [
            [
                "scenario",
                "lrun rps",
                "Locust rps",
                "ratio",
                "lrun nginx rps",
                "Locust nginx rps",
                "nginx ratio",
                "lrun CPU s",
                "Locust CPU s",
                "lrun µs/req",
                "Locust µs/req",
                "fails lrun/Locust",
                "wrk rps",
                "gevent rps",
                "lrun/gevent",
            ]
        ]
        for s in load:
            lr, lo = results["scenarios"][s].get("lrun", {}), results["scenarios"][s].get("locust", {})
            rows.append(
                [
                    s,
                    fmt(lr.get("rps")),
                    fmt(lo.get("rps")),
                    fmt(ratio(lr.get("rps"), lo.get("rps")), ".2f"),
                    fmt(lr.get("nginx_rps")),
                    fmt(lo.get("nginx_rps")),
                    fmt(ratio(lr.get("nginx_rps"), lo.get("nginx_rps")), ".2f"),
                    fmt(lr.get("cpu_s"), ".1f"),
                    fmt(lo.get("cpu_s"), ".1f"),
                    fmt(lr.get("cpu_us_per_request"), ".0f"),
                    fmt(lo.get("cpu_us_per_request"), ".0f"),
                    f"{fmt(lr.get('failures'), 'd')}/{fmt(lo.get('failures'), 'd')}",
                    fmt(results["scenarios"][s].get("wrk", {}).get("rps")),
                    fmt(results["scenarios"][s].get("gevent", {}).get("rps")),
                    fmt(results["scenarios"][s].get("ratio_rps_vs_gevent"), ".2f"),
                ]
            )
        parts.append(table(rows))
        notes = []
        for s in load:
            for name in ("lrun", "locust", "wrk", "gevent"):
                r = results["scenarios"][s].get(name, {})
                if not r:
                    continue
                if "error" in r or "skipped" in r:
                    notes.append(f"  {s} {name}: {r.get('error') or r.get('skipped')}")
                    continue
                if "rounds" in r:
                    each = ", ".join(fmt(x.get("rps")) for x in r["rounds"])
                    notes.append(f"  {s} {name}: rps of the rounds {each}; the median round is shown")
                    noisy = [x["noise"] for x in r["rounds"] if "noise" in x]
                    if noisy:
                        notes.append(f"  {s} {name}: NOISY in {len(noisy)} round(s): {noisy[0]}")
                elif "noise" in r:
                    notes.append(f"  {s} {name}: NOISY: {r['noise']}")
                if "nginx_vs_tool_count" in r:
                    notes.append(
                        f"  {s} {name}: {r['requests']:,} requests reported, nginx counted "
                        f"{r['nginx_requests']:,} (x{r['nginx_vs_tool_count']})"
                    )
        parts.append("\n".join(notes))
    if "idle" in results["scenarios"]:
        idle = results["scenarios"]["idle"]
        lr, lo = idle.get("lrun", {}), idle.get("locust", {})

        def rss(r: dict, key: str) -> Any:
            value = r.get(key, {}).get("rss_kib")
            return value / 1024 if value else None

        rows = [
            [
                "idle users",
                "lrun KiB/user",
                "Locust KiB/user",
                "ratio",
                "lrun / Locust KiB/user by peak RSS",
                "lrun RSS 1 / N (MiB)",
                "Locust RSS 1 / N (MiB)",
                "lrun spawn s",
                "Locust spawn s",
            ]
        ]
        rows.append(
            [
                f"{idle['users']:,}",
                fmt(lr.get("kib_per_user"), ".1f"),
                fmt(lo.get("kib_per_user"), ".1f"),
                fmt(ratio(lr.get("kib_per_user"), lo.get("kib_per_user")), ".2f"),
                f"{fmt(lr.get('kib_per_user_peak'), '.1f')} / {fmt(lo.get('kib_per_user_peak'), '.1f')}",
                f"{fmt(rss(lr, 'baseline_1_user'), '.0f')} / {fmt(rss(lr, 'loaded'), '.0f')}",
                f"{fmt(rss(lo, 'baseline_1_user'), '.0f')} / {fmt(rss(lo, 'loaded'), '.0f')}",
                fmt(lr.get("loaded", {}).get("spawn_s"), ".1f"),
                fmt(lo.get("loaded", {}).get("spawn_s"), ".1f"),
            ]
        )
        parts.append(table(rows))
        notes = [
            f"  idle {n}: {r.get('skipped') or r.get('kib_per_user_note') or r.get('loaded', {}).get('error')}"
            for n, r in (("lrun", lr), ("locust", lo))
            if r.get("skipped") or r.get("kib_per_user_note") or r.get("loaded", {}).get("error")
        ]
        parts.append("\n".join(notes))
    parts.append(
        "ratio = lrun / Locust (one run, or the median round), one core each: > 1 means lrun is faster (rps)\n"
        "or, for KiB/user, heavier. wrk and gevent (bench/ceiling.py: raw keep-alive GETs, no parsing) are the\n"
        "ceilings on the same core; lrun/gevent is the share of the bare gevent loop lrun reaches.\n"
        "µs/req = generator CPU per request. Runs vary by 5-15 %; rerun before quoting."
    )
    return "\n\n".join(p for p in parts if p)


# ------------------------------------------------------------------------------------------------------- main


def machine_info(lrun: Tool, locust: Tool, cores: tuple[int, int]) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nginx_v = subprocess.run([shutil.which("nginx") or "nginx", "-v"], capture_output=True, text=True).stderr.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "lrun": lrun.version or None,
        "lrun_python": lrun.python or None,
        "locust": locust.version or None,
        "locust_python": locust.python or None,
        "nginx": nginx_v.split("/", 1)[-1] if nginx_v else None,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "generator_core": cores[0],
        "nginx_core": cores[1],
    }


def ensure_nginx(install: bool) -> None:
    if shutil.which("nginx") or Path("/usr/sbin/nginx").exists():
        return
    if not install:
        print(
            "nginx is not installed. Install it with:\n\n    apt-get install -y nginx\n\n"
            "(or run this script with --install to let it run apt-get).",
            file=sys.stderr,
        )
        sys.exit(2)
    if os.geteuid() != 0:
        print("--install needs root: sudo apt-get install -y nginx", file=sys.stderr)
        sys.exit(2)
    log("installing nginx with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "nginx"], check=True, env=env, timeout=900)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=20, help="seconds per load run (default 20)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios, comma-separated (default: all)")
    parser.add_argument("--rounds", type=int, default=1, help="load runs per tool, interleaved; the median is shown")
    parser.add_argument("--idle-users", type=int, default=10000, help="users in the idle run (default 10000)")
    parser.add_argument("--idle-timeout", type=float, default=60, help="seconds for all idle users to start")
    parser.add_argument("--tools", default="lrun,locust", help="generators to run (default lrun,locust)")
    parser.add_argument("--out", default=str(BENCH / "results.json"), help="JSON results (default bench/results.json)")
    parser.add_argument("--no-ceilings", action="store_true", help="skip the wrk and bare-gevent ceiling runs")
    parser.add_argument("--install", action="store_true", help="apt-get install nginx if it is missing")
    parser.add_argument("--keep", metavar="DIR", help="copy the generators' logs and raw results to DIR")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    tools_wanted = [t.strip() for t in args.tools.split(",") if t.strip()]
    if bad := [s for s in only if s not in SCENARIOS]:
        parser.error(f"unknown scenario {bad[0]!r} (choose from {', '.join(SCENARIOS)})")
    if bad := [t for t in tools_wanted if t not in ("lrun", "locust")]:
        parser.error(f"unknown tool {bad[0]!r} (lrun, locust)")
    if args.duration < 3 or args.idle_users < 2 or args.rounds < 1:
        parser.error("--duration must be at least 3, --idle-users at least 2 and --rounds at least 1")

    ensure_nginx(args.install)
    cpus = sorted(os.sched_getaffinity(0))
    gen_cpu, nginx_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (cpus[0], cpus[0])
    if len(cpus) < 2:
        log("only one core: nginx and the generator share it; the numbers are not comparable to 2-core runs")
    os.sched_setaffinity(0, {nginx_cpu})  # the harness polls from nginx's core, never the generator's

    lrun = lrun_tool() if "lrun" in tools_wanted else Tool("lrun", False, "not selected (--tools)")
    locust = (
        locust_tool(create="locust" in tools_wanted)
        if "locust" in tools_wanted
        else Tool("locust", False, "not selected")
    )
    for tool in (lrun, locust):
        if tool.name in tools_wanted:
            log(f"{tool.name}: {tool.version or '?'}" + ("" if tool.available else f" -- skipped: {tool.why_not}"))
    tools = [t for t in (lrun, locust) if t.available]
    if not tools:
        log("no generator to run")
        return 2

    busy = others_on(gen_cpu)
    if busy > 0.05:
        log(f"core {gen_cpu} is {busy:.0%} busy before the benchmark started: the machine is not idle")
    results: dict[str, Any] = {
        "machine": machine_info(lrun, locust, (gen_cpu, nginx_cpu)),
        "settings": {
            "duration_s": args.duration,
            "rounds": args.rounds,
            "users": LOAD_USERS,
            "idle_users": args.idle_users,
        },
        "scenarios": {},
    }
    children = Children()

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    interrupted = False
    try:
        with tempfile.TemporaryDirectory(prefix="lrun-bench-") as tmp_name:
            tmp = Path(tmp_name)
            nginx = Nginx(children, tmp, nginx_cpu)
            log(f"nginx {results['machine']['nginx']} on {nginx.url}, pid {nginx.child.pid}, core {nginx_cpu}")
            for scenario in only:
                entry: dict[str, Any] = results["scenarios"].setdefault(scenario, {})
                runs: dict[str, list[dict[str, Any]]] = {}
                for round_ in range(1 if scenario == "idle" else args.rounds):
                    if args.rounds > 1 and scenario != "idle":
                        log(f"{scenario}: round {round_ + 1} of {args.rounds}")
                    ceilings = ceiling_tools() if scenario in CEILING_SCENARIOS and not args.no_ceilings else []
                    for tool in (lrun, locust, *ceilings):  # interleaved, so that a noisy minute hits all
                        if not tool.available:
                            entry[tool.name] = {"skipped": tool.why_not}
                            continue
                        time.sleep(1)
                        if scenario == "idle":
                            entry["users"] = args.idle_users
                            entry[tool.name] = idle_per_user(
                                children, nginx, tool, args.idle_users, tmp, gen_cpu, args.idle_timeout
                            )
                        else:
                            run = load_run(children, nginx, tool, scenario, args.duration, tmp, gen_cpu)
                            runs.setdefault(tool.name, []).append(run)
                for name, tool_runs in runs.items():
                    entry[name] = median_run(tool_runs)
                if scenario == "idle":
                    entry.setdefault("users", args.idle_users)
                    entry["ratio_kib_per_user"] = ratio(
                        entry.get("lrun", {}).get("kib_per_user"), entry.get("locust", {}).get("kib_per_user")
                    )
                else:
                    entry["ratio_rps"] = ratio(entry.get("lrun", {}).get("rps"), entry.get("locust", {}).get("rps"))
                    entry["ratio_rps_vs_gevent"] = ratio(
                        entry.get("lrun", {}).get("rps"), entry.get("gevent", {}).get("rps")
                    )
                    entry["ratio_nginx_rps"] = ratio(
                        entry.get("lrun", {}).get("nginx_rps"), entry.get("locust", {}).get("nginx_rps")
                    )
                    entry["ratio_cpu_per_request"] = ratio(
                        entry.get("lrun", {}).get("cpu_us_per_request"),
                        entry.get("locust", {}).get("cpu_us_per_request"),
                    )
            children.stop_all()
            err = nginx._error_log().strip()
            if err:
                results["nginx_error_log_tail"] = err[-1000:]
            if args.keep:
                shutil.copytree(tmp, args.keep, dirs_exist_ok=True)
                log(f"logs and raw results copied to {args.keep}")
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping every child")
    except BenchError as exc:
        log(str(exc))
        return 2
    finally:
        children.stop_all()
    if interrupted:
        return 130
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(report(results))
    print(f"\nresults: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
