"""Resource monitoring: psutil readings, the bounded sample series, and resource thresholds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import run_lrun
from runner.monitor.local import (
    ResourceMonitor,
    ResourceRule,
    ResourceWatch,
    cpu_percent,
    find_processes,
    format_bytes,
    merge_samples,
    read_memory,
    read_process,
    read_system_cpu,
)
from runner.scenario.limits import parse_size

LINUX = Path("/proc/self/stat").exists()
needs_proc = pytest.mark.skipif(not LINUX, reason="compares with Linux's /proc")
TICKS = 100  # the fake system counts CPU in ticks like Linux
PAGE = 4096


@pytest.fixture
def sleeper() -> Any:
    """A process of our own to watch, ended by its PID."""
    process = subprocess.Popen(["sleep", "30"])
    try:
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)


# ----------------------------------------------------------------------------------------------- real readings


def test_reads_this_process_and_the_machine() -> None:
    cpu, rss = read_process(os.getpid())
    assert cpu > 0 and rss > 10 * 2**20  # a Python process with pydantic and gevent loaded
    busy, total = read_system_cpu()
    assert 0 < busy < total
    used, memory = read_memory()
    assert 0 < used < memory
    assert read_process(2**22 + 12345) is None  # above pid_max: never exists


def test_finds_processes_by_name_and_pid(sleeper: subprocess.Popen) -> None:
    time.sleep(0.1)  # let exec replace the forked Python
    assert sleeper.pid in find_processes("sleep")
    assert os.getpid() not in find_processes("sleep")
    monitor = ResourceMonitor([str(sleeper.pid), "sleep", "no-such-process-here"])
    sample = monitor.sample()
    by_pid, by_name, absent = (sample["targets"][k] for k in (str(sleeper.pid), "sleep", "no-such-process-here"))
    assert by_pid["processes"] == 1 and by_pid["rss_bytes"] > 0 and by_pid["cpu_percent"] == 0.0
    assert by_name["processes"] >= 1 and by_name["rss_bytes"] >= by_pid["rss_bytes"]
    assert absent == {"cpu_percent": None, "rss_bytes": None, "processes": 0}
    assert [t.spec for t in monitor.missing()] == ["no-such-process-here"]
    targets = {t["spec"]: t for t in monitor.results()["targets"]}
    assert targets[str(sleeper.pid)]["label"] == f"{sleeper.pid} (sleep)" and targets[str(sleeper.pid)]["found"]
    assert targets["no-such-process-here"]["found"] is False


def test_own_cpu_is_measured_over_the_interval() -> None:
    monitor = ResourceMonitor()
    monitor.sample()
    spin_until = time.process_time() + 0.3
    while time.process_time() < spin_until:
        pass
    sample = monitor.sample()
    assert sample["process_cpu_percent"] > 20  # 0.3 s of CPU in at most a few seconds of wall time
    assert sample["process_rss_bytes"] > 0 and sample["system_cpu_percent"] is not None
    assert sample["system_memory_total_bytes"] > sample["system_memory_used_bytes"] > 0


BUSY_HALF = """
import select, sys, time
while True:  # busy about half of the time; on a line from the parent, say how much CPU it has used
    spin = time.monotonic() + 0.02
    while time.monotonic() < spin:
        pass
    if select.select([sys.stdin], [], [], 0.02)[0]:
        if not sys.stdin.readline():
            break
        print(time.process_time(), flush=True)
"""


def _proc_cpu_seconds(pid: int) -> float:
    """The /proc reading lrun used before psutil: utime + stime of /proc/PID/stat, in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@needs_proc
def test_cpu_agrees_with_the_old_proc_reading_and_the_process_itself() -> None:
    """A child busy about half of the time: psutil's figure, the old /proc figure and the child's own count agree."""
    child = subprocess.Popen(
        [sys.executable, "-c", BUSY_HALF], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None

    def own_count() -> float:
        child.stdin.write("?\n")  # type: ignore[union-attr]
        child.stdin.flush()  # type: ignore[union-attr]
        return float(child.stdout.readline())  # type: ignore[union-attr]

    try:
        time.sleep(0.5)  # past the interpreter's start
        monitor = ResourceMonitor([str(child.pid)])
        monitor.sample()
        wall, old, own = time.monotonic(), _proc_cpu_seconds(child.pid), own_count()
        time.sleep(3)
        new_percent = monitor.sample()["targets"][str(child.pid)]["cpu_percent"]
        elapsed = time.monotonic() - wall
        old_percent = (_proc_cpu_seconds(child.pid) - old) / elapsed * 100
        own_percent = (own_count() - own) / elapsed * 100
    finally:
        child.kill()
        child.wait(timeout=10)
    assert 10 < own_percent < 65, own_percent  # busy, and about half (less when the machine is shared)
    assert abs(new_percent - old_percent) < 3, (new_percent, old_percent)
    assert abs(new_percent - own_percent) < 3, (new_percent, own_percent)


# ----------------------------------------------------------------------------------------------- a fake system


class FakeSystem:
    """The readings the monitor takes from the operating system, set by the test, and a clock to move."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.processes: dict[int, tuple[str, float, int]] = {}  # pid -> (name, CPU seconds, RSS bytes)
        self.set_system(busy=0, idle=0)
        self.used, self.total = 750 * 1024, 1000 * 1024  # MemTotal 1000 kB, MemAvailable 250 kB
        self.set_process(os.getpid(), "python3", cpu_s=1.0, rss_pages=100)

    def set_process(self, pid: int, comm: str, *, cpu_s: float, rss_pages: int) -> None:
        self.processes[pid] = (comm, int(cpu_s * TICKS) / TICKS, rss_pages * PAGE)  # counted in whole ticks

    def end(self, pid: int) -> None:
        del self.processes[pid]

    def set_system(self, *, busy: int, idle: int) -> None:
        self.ticks = (float(busy), float(busy + idle))

    # -- what ResourceMonitor reads

    def process(self, pid: int) -> tuple[float, int] | None:
        found = self.processes.get(pid)
        return None if found is None else found[1:]

    def cpu(self) -> tuple[float, float]:
        return self.ticks

    def memory(self) -> tuple[int, int]:
        return self.used, self.total

    def name(self, pid: int) -> str | None:
        return self.processes[pid][0] if pid in self.processes else None

    def find(self, name: str, *, exclude: Any = ()) -> list[int]:
        return sorted(pid for pid, (comm, _, _) in self.processes.items() if comm == name and pid not in exclude)

    def monitor(self, targets: list[str], **options: Any) -> ResourceMonitor:
        return ResourceMonitor(targets, system=self, clock=lambda: self.now, monotonic=lambda: self.now, **options)  # type: ignore[arg-type]


def test_cpu_and_memory_arithmetic() -> None:
    proc = FakeSystem()
    proc.set_process(4242, "nginx", cpu_s=10.0, rss_pages=50)
    proc.set_process(4243, "nginx", cpu_s=20.0, rss_pages=70)
    monitor = proc.monitor(["nginx", "4242"])
    proc.now += 2.0
    proc.set_process(os.getpid(), "python3", cpu_s=2.0, rss_pages=200)  # 1 s of CPU in 2 s: 50 %
    proc.set_process(4242, "nginx", cpu_s=11.0, rss_pages=60)  # 1 s
    proc.set_process(4243, "nginx", cpu_s=23.0, rss_pages=70)  # 3 s: 200 % of a core together
    proc.set_system(busy=30, idle=70)
    sample = monitor.sample()
    assert sample["process_cpu_percent"] == 50.0
    assert sample["process_rss_bytes"] == 200 * PAGE
    assert sample["system_cpu_percent"] == 30.0
    assert (sample["system_memory_used_bytes"], sample["system_memory_total_bytes"]) == (750 * 1024, 1000 * 1024)
    assert sample["targets"]["nginx"] == {"cpu_percent": 200.0, "rss_bytes": 130 * PAGE, "processes": 2}
    assert sample["targets"]["4242"] == {"cpu_percent": 50.0, "rss_bytes": 60 * PAGE, "processes": 1}
    assert monitor.results()["targets"][1]["label"] == "4242 (nginx)"


def test_cpu_from_samples_too_close_is_not_a_glitch() -> None:
    """Two samples 1 ms apart (a run loop catching up after a stall) once showed "5786 % of a core"."""
    proc = FakeSystem()
    proc.set_process(4242, "nginx", cpu_s=10.0, rss_pages=50)
    monitor = proc.monitor(["4242"])
    proc.now += 1.0
    proc.set_process(os.getpid(), "python3", cpu_s=1.5, rss_pages=100)  # 0.5 s in 1 s: 50 %
    proc.set_process(4242, "nginx", cpu_s=10.25, rss_pages=50)  # 25 %
    proc.set_system(busy=40, idle=60)
    first = monitor.sample()
    assert (first["process_cpu_percent"], first["targets"]["4242"]["cpu_percent"]) == (50.0, 25.0)
    proc.now += 0.001
    proc.set_process(os.getpid(), "python3", cpu_s=1.5 + 6 / TICKS, rss_pages=300)  # a few ticks in 1 ms
    proc.set_process(4242, "nginx", cpu_s=10.25 + 6 / TICKS, rss_pages=50)
    proc.set_system(busy=46, idle=60)
    close = monitor.sample()
    # the CPU figures of the last interval long enough to measure; memory is read afresh
    assert (close["process_cpu_percent"], close["targets"]["4242"]["cpu_percent"]) == (50.0, 25.0)
    assert close["system_cpu_percent"] == 40.0 and close["process_rss_bytes"] == 300 * PAGE
    proc.now += 1.0  # the next sample measures over the whole 1.001 s since the last real reading
    later = monitor.sample()
    assert later["process_cpu_percent"] == round(6 / TICKS / 1.001 * 100, 1)
    assert later["system_cpu_percent"] == round(6 / 6 * 100, 1)


def test_cpu_never_exceeds_the_cores() -> None:
    proc = FakeSystem()
    monitor = proc.monitor([])
    proc.now += 1.0
    proc.set_process(os.getpid(), "python3", cpu_s=1.0 + 500, rss_pages=100)  # 500 s of CPU in 1 s: impossible
    assert monitor.sample()["process_cpu_percent"] == 100.0 * (os.cpu_count() or 1)
    assert cpu_percent(-1.0, 1.0) == 0.0 and cpu_percent(0.5, 1.0) == 50.0 and cpu_percent(3.0, 1.0, cores=2) == 200.0


def test_an_aborting_cpu_rule_ignores_samples_too_close() -> None:
    proc = FakeSystem()
    monitor = proc.monitor([])
    watch = ResourceWatch([ResourceRule.build("generator_cpu", "90%", action="abort")])
    cpu = 1.0
    for step in range(20):  # 10 % of a core, sampled after a stall: one real sample, then a burst 1 ms apart
        proc.now += 1.0 if step % 5 == 0 else 0.001
        cpu += 0.1 if step % 5 == 0 else 2 / TICKS
        proc.set_process(os.getpid(), "python3", cpu_s=cpu, rss_pages=100)
        assert watch.update(monitor.sample()) == []
    (verdict,) = watch.verdicts()
    assert verdict["passed"] and verdict["peak"] < 20


def test_a_target_that_ends_or_starts_late() -> None:
    proc = FakeSystem()
    proc.set_process(4242, "nginx", cpu_s=10.0, rss_pages=50)
    monitor = proc.monitor(["4242", "postgres"])
    proc.now += 1.0
    assert monitor.sample()["targets"]["postgres"]["processes"] == 0
    proc.end(4242)  # ended
    proc.set_process(5000, "postgres", cpu_s=3.0, rss_pages=10)
    proc.now += 10.0  # past RESOLVE_EVERY: names are looked up again
    sample = monitor.sample()
    assert sample["targets"]["4242"] == {"cpu_percent": None, "rss_bytes": None, "processes": 0}
    # seen for the first time: its memory is known, its CPU needs a second reading
    assert sample["targets"]["postgres"] == {"cpu_percent": None, "rss_bytes": 10 * PAGE, "processes": 1}
    proc.set_process(5000, "postgres", cpu_s=4.0, rss_pages=10)
    proc.now += 1.0
    assert monitor.sample()["targets"]["postgres"]["cpu_percent"] == 100.0


def test_series_stays_bounded_and_keeps_peaks() -> None:
    proc = FakeSystem()
    monitor = proc.monitor([], max_points=8)
    cpu = 1.0
    for second in range(1, 101):
        proc.now += 1.0
        cpu += 0.9 if second == 50 else 0.1  # one spike of 90 %
        proc.set_process(os.getpid(), "python3", cpu_s=cpu, rss_pages=1000 + second)
        monitor.sample()
    results = monitor.results()
    assert len(results["series"]) <= 8 + 1
    assert results["interval_s"] >= 16
    assert results["series"][-1]["t"] == proc.now
    assert results["peak"]["process_cpu_percent"] == 90.0  # the peak survives merging
    assert max(p["process_rss_bytes"] for p in results["series"]) == 1100 * PAGE  # memory keeps its largest
    cpus = [p["process_cpu_percent"] for p in results["series"]]
    assert all(9.0 <= c < 90.0 for c in cpus), cpus  # CPU is averaged


def test_merge_samples_averages_cpu_and_keeps_the_most_memory() -> None:
    a = {"t": 1, "process_cpu_percent": 10.0, "process_rss_bytes": 5, "system_cpu_percent": None}
    a |= {"system_memory_used_bytes": 7, "system_memory_total_bytes": 9, "targets": {"x": {"cpu_percent": 4.0}}}
    b = {**a, "t": 2, "process_cpu_percent": 30.0, "process_rss_bytes": 3, "targets": {}}
    merged = merge_samples([a, b])
    assert merged["t"] == 2 and merged["process_cpu_percent"] == 20.0 and merged["process_rss_bytes"] == 5
    assert merged["system_cpu_percent"] is None
    assert merged["targets"]["x"] == {"cpu_percent": 4.0, "rss_bytes": None, "processes": 0}


# ----------------------------------------------------------------------------------------------- thresholds


def sample(t: float, cpu: float | None = None, rss: float | None = None, **targets: float) -> dict[str, Any]:
    return {
        "t": t,
        "process_cpu_percent": cpu,
        "process_rss_bytes": rss,
        "system_cpu_percent": None,
        "system_memory_used_bytes": 600,
        "system_memory_total_bytes": 1000,
        "targets": {name: {"cpu_percent": None, "rss_bytes": value} for name, value in targets.items()},
    }


def test_sizes_and_limits_are_read_as_written() -> None:
    assert parse_size("500MB") == 500e6 and parse_size("512MiB") == 512 * 2**20
    assert parse_size("1.5 GiB") == 1.5 * 2**30 and parse_size("2k") == 2000 and parse_size(1024) == 1024
    assert format_bytes(1536) == "1.5 KiB" and format_bytes(640e6, decimal=True) == "640.0 MB"
    rule = ResourceRule.build("target_memory", "500MB", process="nginx", action="abort")
    assert (rule.limit, rule.text, rule.show(612e6)) == (500e6, "target_memory[nginx] above 500MB", "612.0 MB")
    assert ResourceRule.build("generator_cpu", "90%", for_s=10).text == "generator_cpu above 90% for 10s"
    assert ResourceRule.build("system_memory", "80%").percent_of_memory
    for metric, above, message in [
        ("generator_cpu", "lots", "above: 'lots' is not a percentage: write 90%"),
        ("target_memory", "5 parsecs", "above: '5 parsecs' is not a size"),
        ("target_mem", "5MB", "unknown metric 'target_mem' (did you mean 'target_memory'?)"),
    ]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
            ResourceRule.build(metric, above)
    with pytest.raises(ValueError, match="'process' applies to target_cpu and target_memory"):
        ResourceRule.build("generator_cpu", "90%", process="nginx")


def test_a_limit_must_hold_for_its_duration() -> None:
    rule = ResourceRule.build("generator_cpu", "90%", for_s=3)
    watch = ResourceWatch([rule])
    cpus = [95, 95, 50, 95, 95, 95, 95, 99]  # a break at the third second restarts the count
    breached = {t: watch.update(sample(t, cpu=c)) for t, c in enumerate(cpus, start=1)}
    assert [t for t, b in breached.items() if b] == [6]  # seconds 4, 5, 6 above: breached once
    assert breached[6][0][1] == "measured 95.0% for 3s, limit 90%"
    verdict = watch.verdicts()[0]
    assert verdict["passed"] is False and verdict["breached_at"] == 6 and verdict["peak"] == 99
    assert verdict["above_s"] == 7 and verdict["detail"] == "peak 99.0%, limit 90%; above the limit for 7s in all"


def test_target_and_percent_of_memory_rules() -> None:
    one = ResourceRule.build("target_memory", "1KB", process="db")
    each = ResourceRule.build("target_memory", "1KB")  # the worst target counts
    machine = ResourceRule.build("system_memory", "50%")
    watch = ResourceWatch([one, each, machine], builtin=[ResourceRule.build("generator_cpu", "10%")])
    hits = watch.update(sample(1, cpu=50, db=500, web=5000))
    assert [rule for rule, _ in hits] == [each, machine, watch.builtin[0]]
    assert hits[1][1] == "measured 60.0%, limit 50%"
    verdicts = watch.verdicts()
    assert [v["passed"] for v in verdicts] == [True, False, False]  # the built-in rule is not a threshold
    assert verdicts[0]["detail"] == "peak 500 B, limit 1.0 KB"
    assert ResourceWatch([one]).verdicts()[0]["detail"] == "no data"


# ----------------------------------------------------------------------------------------------- in a real run


@needs_proc
def test_a_run_records_resources_and_stops_on_an_aborting_limit(
    tmp_path: Path, demo_url: str, sleeper: subprocess.Popen
) -> None:
    scenario = tmp_path / "monitored.yaml"
    scenario.write_text(
        """
host: demo
users: {u: {think: 20ms, sequence: [{get: /items}]}}
monitor:
  processes: [sleep]
  thresholds:
    - {metric: generator_memory, above: 1MB}                  # always crossed: a warning
    - {metric: system_cpu, above: 100%}                       # never crossed
    - {metric: target_memory, process: sleep, above: 1KB, for: 2s, action: abort}
"""
    )
    out = tmp_path / "r.json"
    result = run_lrun(
        "run", str(scenario), "-H", demo_url, "-u", "2", "-t", "30s", "--monitor", str(sleeper.pid),
        "--json", str(out), "--only-summary",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    results = json.loads(out.read_text())
    assert results["stop_reason"].startswith("resource threshold target_memory[sleep] above 1KB for 2s failed")
    assert results["duration_s"] < 10
    resources = results["resources"]
    assert resources["interval_s"] == 1.0 and len(resources["series"]) >= 2
    last = resources["series"][-1]
    assert last["process_rss_bytes"] > 2**20 and last["system_memory_total_bytes"] > 0
    assert last["targets"][str(sleeper.pid)]["rss_bytes"] > 0 and last["targets"]["sleep"]["processes"] >= 1
    verdicts = {v["metric"]: v for v in results["resource_thresholds"]}
    assert verdicts["generator_memory"]["passed"] is False and verdicts["generator_memory"]["action"] == "warn"
    assert verdicts["system_cpu"]["passed"] is True
    assert verdicts["target_memory"]["passed"] is False and verdicts["target_memory"]["breached_at"]
    assert any("resource threshold generator_memory above 1MB" in w for w in results["warnings"])
    assert "Resources (peak)" in result.stdout and "FAIL  target_memory[sleep] above 1KB for 2s" in result.stdout


def test_the_progress_line_shows_lrun_and_the_machine() -> None:
    from runner.report.console import progress_line

    sample = {"process_cpu_percent": 45.4, "process_rss_bytes": 60 * 2**20, "system_cpu_percent": 71.0}
    line = progress_line(75, 120, 10, 42.0, 0.01, resources=sample)
    assert line == "1:15/2:00  users 10  42.0 req/s  errors 1.00%  lrun cpu 45% mem 60 MiB  machine cpu 71%"
    assert progress_line(75, None, 10, 42.0, 0.0).endswith("errors 0.00%")  # before the first sample
