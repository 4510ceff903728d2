"""Resource monitoring: CPU and memory of lrun itself, of the machine, and of named local processes.

LoadRunner watches the load generator and the system under test; Locust does not. A load test whose generator
is saturated measures its own queueing, and a target that runs out of memory explains its errors: both belong
next to the response times.

``ResourceMonitor.sample`` is called once a second by the run loop. It reads the operating system through
``psutil`` (Linux, macOS, Windows, the BSDs): a process's CPU time (user + system) and resident memory, the
machine's CPU times and memory. ``System`` is that one seam; the tests give the monitor their own.

Percentages: a process's CPU is in percent of one core, as ``top`` shows it (a process busy on two cores shows
200 %); the machine's CPU is in percent of all its cores (0–100). Memory is in bytes: a process's resident set
(RSS), the machine's used memory (total minus available).

Targets are given by PID (``1234``) or by name (``nginx``: every process whose name, or the base name of its
first argument, is that name, ``.exe`` aside; their CPU and memory are added up, so nginx's master and workers
count as one target). Names are looked up again every ``RESOLVE_EVERY`` seconds, so a target that starts late
or restarts is found. A process lrun may not read (another user's, on macOS or Windows) counts as not running.

``ResourceRule`` is a threshold on these samples (``generator_cpu above 90% for 10s``); ``ResourceWatch`` keeps
each rule's state across samples and says when one is breached. The shape of the samples and verdicts in the
results is documented in ``runner.report.model``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

from runner.report.model import Resources, ResourceVerdict
from runner.scenario.limits import (
    CPU_METRICS,
    MEMORY_METRICS,
    NUMBER_METRICS,
    resource_limit,
)

MAX_POINTS = 3600  # like the request series: 1 s points for an hour, then pairs are merged
RESOLVE_EVERY = 5.0  # seconds between looking up targets given by name again
MIN_CPU_INTERVAL = 0.25  # seconds: CPU time is counted in 10 ms ticks; over less, one tick is noise
CORES = os.cpu_count() or 1


def cpu_percent(seconds: float, elapsed: float, cores: int = CORES) -> float:
    """CPU seconds used over ``elapsed`` wall seconds, in percent of one core: never below 0, never above
    100 % × the machine's cores (what a process can use at most, whatever the tick rounding)."""
    return min(max(0.0, seconds / max(elapsed, 1e-6) * 100), 100.0 * cores)


# ----------------------------------------------------------------------------------------------- readings


def read_process(pid: int) -> tuple[float, int] | None:
    """(CPU seconds used so far, resident bytes) of a process, or None when it does not exist or may not be read."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            times = process.cpu_times()
            return times.user + times.system, process.memory_info().rss
    except (psutil.Error, OSError):
        return None


def read_system_cpu() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot: busy is all but idle and I/O wait."""
    try:
        times = psutil.cpu_times()
    except (psutil.Error, OSError):
        return None
    # guest time is already counted in user time on Linux (psutil's own cpu_percent leaves it out too)
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    return total - times.idle - getattr(times, "iowait", 0.0), total


def read_memory() -> tuple[int, int] | None:
    """(used, total) bytes of the machine's memory: used is total minus available."""
    try:
        memory = psutil.virtual_memory()
    except (psutil.Error, OSError):
        return None
    return memory.total - memory.available, memory.total


def process_name(pid: int) -> str | None:
    try:
        return psutil.Process(pid).name()
    except (psutil.Error, OSError):
        return None


def _called(process: psutil.Process, name: str) -> bool:
    """Whether the process is called ``name``: its name, or the base name of its first argument (``.exe`` aside)."""
    own = process.info.get("name") or ""
    if name in (own, own.removesuffix(".exe")):
        return True
    try:
        argv = process.cmdline()
    except (psutil.Error, OSError):
        return False
    argv0 = os.path.basename(argv[0].replace("\\", "/")) if argv else ""
    return name in (argv0, argv0.removesuffix(".exe"))


def find_processes(name: str, *, exclude: Iterable[int] = ()) -> list[int]:
    """PIDs of the processes called ``name``: their name, or the base name of their first argument."""
    skip = set(exclude)
    return sorted(p.pid for p in psutil.process_iter(["name"]) if p.pid not in skip and _called(p, name))


class System:
    """What the monitor reads from the operating system; a test gives the monitor one of its own."""

    process = staticmethod(read_process)
    cpu = staticmethod(read_system_cpu)
    memory = staticmethod(read_memory)
    name = staticmethod(process_name)
    find = staticmethod(find_processes)


# ----------------------------------------------------------------------------------------------- sampling


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Target:
    """A process (or processes with one name) to watch besides lrun."""

    spec: str  # as the user gave it: "nginx" or "1234"
    pid: int | None = None  # given by PID
    pids: list[int] = field(default_factory=list)  # what it stands for now
    name: str | None = None  # the process name (for a PID) or the name asked for
    found: bool = False  # seen at least once
    cpu: dict[int, float] = field(default_factory=dict)  # pid -> CPU seconds at the last sample

    @property
    def label(self) -> str:
        return f"{self.spec} ({self.name})" if self.pid is not None and self.name else self.spec


def parse_target(spec: str | int) -> Target:
    text = str(spec).strip()
    if text.isdigit():
        return Target(spec=text, pid=int(text), pids=[int(text)])
    return Target(spec=text, name=text)


class ResourceMonitor:
    """CPU and memory of lrun, the machine and the targets, sampled on demand (the run loop: once a second)."""

    def __init__(
        self,
        targets: Sequence[str | int] = (),
        *,
        system: System | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        max_points: int = MAX_POINTS,
    ) -> None:
        self.system = system or System()
        self.clock = clock
        self.monotonic = monotonic
        self.max_points = max_points
        self.pid = os.getpid()
        unique = dict.fromkeys(str(t).strip() for t in targets)
        self.targets = [parse_target(t) for t in unique]
        self.points: list[dict[str, Any]] = []
        self._pending: list[dict[str, Any]] = []
        self._stride = 1  # samples per stored point (doubles each time the points are halved)
        self._last_wall = monotonic()
        own = self.system.process(self.pid)
        self.available = own is not None  # psutil can read this system
        self._last_own = self._own_cpu(own)
        self._last_system = self.system.cpu()
        self._resolved_at = -RESOLVE_EVERY
        self.last: dict[str, Any] | None = None
        self.peaks: dict[str, float] = {}
        self._resolve(self._last_wall, prime=True)

    # -- readings

    @staticmethod
    def _own_cpu(own: tuple[float, int] | None) -> float:
        if own is not None:
            return own[0]
        times = os.times()
        return times.user + times.system

    def _resolve(self, now: float, *, prime: bool = False) -> None:
        if now - self._resolved_at < RESOLVE_EVERY:
            return
        self._resolved_at = now
        for target in self.targets:
            if target.pid is not None:
                target.name = target.name or self.system.name(target.pid)
                target.pids = [target.pid]
            else:
                assert target.name is not None
                target.pids = self.system.find(target.name, exclude=[self.pid])
            if prime:
                for pid in target.pids:
                    reading = self.system.process(pid)
                    if reading is not None:
                        target.cpu[pid] = reading[0]

    def missing(self) -> list[Target]:
        """Targets not running now (after the last look-up)."""
        return [t for t in self.targets if not any(self.system.process(p) for p in t.pids)]

    def sample(self, now: float | None = None) -> dict[str, Any]:
        """Read everything once; store the sample (bounded) and return it."""
        now = self.clock() if now is None else now
        wall = self.monotonic()
        elapsed = wall - self._last_wall
        # Two samples too close (a loop that caught up after a stall) would divide a tick by nothing: CPU is
        # measured over MIN_CPU_INTERVAL at least; a sample sooner repeats the last CPU figures.
        fresh = elapsed >= MIN_CPU_INTERVAL or self.last is None
        last = self.last or {}
        own = self.system.process(self.pid)
        sample: dict[str, Any] = {
            "t": round(now, 3),
            "process_cpu_percent": last.get("process_cpu_percent"),
            "process_rss_bytes": own[1] if own else None,
            "system_cpu_percent": last.get("system_cpu_percent"),
            "system_memory_used_bytes": None,
            "system_memory_total_bytes": None,
            "targets": {},
        }
        if fresh:
            self._last_wall = wall
            own_cpu = self._own_cpu(own)
            sample["process_cpu_percent"] = _round(cpu_percent(own_cpu - self._last_own, elapsed))
            self._last_own = own_cpu
            system = self.system.cpu()
            sample["system_cpu_percent"] = None
            if system is not None and self._last_system is not None:
                busy, total = system[0] - self._last_system[0], system[1] - self._last_system[1]
                sample["system_cpu_percent"] = _round(min(100.0, max(0.0, busy / total * 100))) if total > 0 else None
            self._last_system = system
        memory = self.system.memory()
        if memory is not None:
            sample["system_memory_used_bytes"], sample["system_memory_total_bytes"] = memory
        self._resolve(wall)
        for target in self.targets:
            values = self._sample_target(target, elapsed, fresh)
            if not fresh:
                values["cpu_percent"] = (last.get("targets") or {}).get(target.spec, {}).get("cpu_percent")
            sample["targets"][target.spec] = values
        self.last = sample
        self._peak(sample)
        self._store(sample)
        return sample

    def _sample_target(self, target: Target, elapsed: float, fresh: bool = True) -> dict[str, Any]:
        cpu_total, rss_total, running = 0.0, 0, 0
        seen: dict[int, float] = {}
        for pid in target.pids:
            reading = self.system.process(pid)
            if reading is None:
                continue
            running += 1
            cpu, rss = reading
            seen[pid] = cpu
            if pid in target.cpu:
                cpu_total += max(0.0, cpu - target.cpu[pid])
            rss_total += rss
        first = running and not any(pid in target.cpu for pid in seen)  # first sight: no CPU interval yet
        if fresh:
            target.cpu = seen
        if running:
            target.found = True
        return {
            "cpu_percent": _round(cpu_percent(cpu_total, elapsed)) if running and not first else None,
            "rss_bytes": rss_total if running else None,
            "processes": running,
        }

    def _peak(self, sample: dict[str, Any]) -> None:
        def keep(key: str, value: float | None) -> None:
            if value is not None and value > self.peaks.get(key, float("-inf")):
                self.peaks[key] = value

        for key in ("process_cpu_percent", "process_rss_bytes", "system_cpu_percent", "system_memory_used_bytes"):
            keep(key, sample[key])
        for spec, values in sample["targets"].items():
            keep(f"{spec}.cpu_percent", values["cpu_percent"])
            keep(f"{spec}.rss_bytes", values["rss_bytes"])

    # -- storage, bounded like the request series

    def _store(self, sample: dict[str, Any]) -> None:
        self._pending.append(sample)
        if len(self._pending) < self._stride:
            return
        self.points.append(merge_samples(self._pending))
        self._pending = []
        if len(self.points) > self.max_points:
            self.points = [merge_samples(self.points[i : i + 2]) for i in range(0, len(self.points), 2)]
            self._stride *= 2

    def results_part(self) -> Resources:
        """The ``resources`` part of the results."""
        return Resources.model_validate(self.results())

    def results(self) -> dict[str, Any]:
        """The ``resources`` object of the results (described in ``runner.report.model``), as the web page reads it."""
        points = list(self.points)
        if self._pending:
            points.append(merge_samples(self._pending))
        return {
            "interval_s": float(self._stride),
            "cpu_count": os.cpu_count(),
            "available": self.available,
            "series": points,
            "targets": [
                {"spec": t.spec, "label": t.label, "pid": t.pid, "name": t.name, "pids": t.pids, "found": t.found}
                for t in self.targets
            ],
            "peak": {
                "process_cpu_percent": self.peaks.get("process_cpu_percent"),
                "process_rss_bytes": self.peaks.get("process_rss_bytes"),
                "system_cpu_percent": self.peaks.get("system_cpu_percent"),
                "system_memory_used_bytes": self.peaks.get("system_memory_used_bytes"),
                "targets": {
                    t.spec: {
                        "cpu_percent": self.peaks.get(f"{t.spec}.cpu_percent"),
                        "rss_bytes": self.peaks.get(f"{t.spec}.rss_bytes"),
                    }
                    for t in self.targets
                },
            },
        }


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 1) if present else None


def _top(values: Iterable[float | None]) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def merge_samples(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One point for several consecutive samples: CPU averaged, memory at its largest, ``t`` the last one's."""
    if len(samples) == 1:
        return samples[0]
    specs = list(dict.fromkeys(spec for s in samples for spec in s.get("targets", {})))
    return {
        "t": samples[-1]["t"],
        "process_cpu_percent": _mean(s["process_cpu_percent"] for s in samples),
        "process_rss_bytes": _top(s["process_rss_bytes"] for s in samples),
        "system_cpu_percent": _mean(s["system_cpu_percent"] for s in samples),
        "system_memory_used_bytes": _top(s["system_memory_used_bytes"] for s in samples),
        "system_memory_total_bytes": samples[-1]["system_memory_total_bytes"],
        "targets": {
            spec: {
                "cpu_percent": _mean(s["targets"].get(spec, {}).get("cpu_percent") for s in samples),
                "rss_bytes": _top(s["targets"].get(spec, {}).get("rss_bytes") for s in samples),
                "processes": _top(s["targets"].get(spec, {}).get("processes") for s in samples) or 0,
            }
            for spec in specs
        },
    }


# ----------------------------------------------------------------------------------------------- thresholds


def format_bytes(value: float | None, *, decimal: bool = False) -> str:
    """``612.3 MiB`` (binary units, as memory is counted), or ``642.0 MB`` with ``decimal``."""
    if value is None:
        return "no data"
    base, units = (1000, ("B", "KB", "MB", "GB", "TB")) if decimal else (1024, ("B", "KiB", "MiB", "GiB", "TiB"))
    for unit in units:
        if abs(value) < base or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= base
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class ResourceRule:
    """``generator_cpu above 90% for 10s``: a limit on one resource, held for a while, then warn or abort."""

    metric: str
    limit: float  # percent for CPU; bytes, or percent of the machine's memory, for memory
    above: str  # the limit as written
    process: str | None = None  # for target_*: one target (default: each target)
    for_s: float = 0.0
    action: str = "warn"  # or "abort"
    percent_of_memory: bool = False
    message: str | None = None  # what to say when breached (default: generated)

    @classmethod
    def build(
        cls, metric: str, above: str | float, *, process: str | int | None = None, for_s: float = 0.0, **kw: Any
    ) -> ResourceRule:
        """Parse the limit for the metric; ValueError with what to write instead."""
        limit, percent_of_memory = resource_limit(metric, above, process)
        return cls(
            metric,
            limit,
            f"{above:g}" if isinstance(above, float) else str(above),
            None if process is None else str(process),
            for_s,
            percent_of_memory=percent_of_memory,
            **kw,
        )

    @classmethod
    def of(cls, threshold: Any) -> ResourceRule:
        """The rule of a scenario's ``monitor.thresholds`` entry."""
        return cls.build(
            threshold.metric,
            threshold.above,
            process=threshold.scope,  # the process, server or query it watches
            for_s=threshold.for_,
            action=threshold.action,
            message=threshold.message,
        )

    @property
    def text(self) -> str:
        scope = f"[{self.process}]" if self.process else ""
        held = f" for {self.for_s:g}s" if self.for_s else ""
        return f"{self.metric}{scope} above {self.above}{held}"

    @property
    def is_memory(self) -> bool:
        return self.metric in MEMORY_METRICS

    def value(self, sample: dict[str, Any]) -> float | None:
        """The measured value in the rule's unit (the worst target when the rule covers every target)."""
        total = sample.get("system_memory_total_bytes")

        def memory(used: float | None) -> float | None:
            if used is None or not self.percent_of_memory:
                return used
            return used / total * 100 if total else None

        if self.metric.startswith("host_") or self.metric == "query":
            return self._remote_value(sample)
        if self.metric == "generator_cpu":
            return sample.get("process_cpu_percent")
        if self.metric == "system_cpu":
            return sample.get("system_cpu_percent")
        if self.metric == "generator_memory":
            return memory(sample.get("process_rss_bytes"))
        if self.metric == "system_memory":
            return memory(sample.get("system_memory_used_bytes"))
        key = "cpu_percent" if self.metric == "target_cpu" else "rss_bytes"
        targets = sample.get("targets") or {}
        specs = [self.process] if self.process else list(targets)
        values = [(targets.get(s) or {}).get(key) for s in specs]
        values = [v for v in values if v is not None]
        if not values:
            return None
        worst = max(values)  # type: ignore[type-var]
        return worst if key == "cpu_percent" else memory(worst)

    def _remote_value(self, sample: dict[str, Any]) -> float | None:
        """From the remote monitor's values the run adds to the sample (``hosts``, ``queries``)."""
        if self.metric == "query":
            return (sample.get("queries") or {}).get(self.process or "")
        key = {"host_cpu": "cpu_percent", "host_memory": "memory_used_bytes", "host_load": "load1"}[self.metric]
        hosts = sample.get("hosts") or {}
        values = []
        for name in [self.process] if self.process else list(hosts):
            host = hosts.get(name) or {}
            value = host.get(key)
            if value is not None and self.percent_of_memory:
                value = value / host["memory_total_bytes"] * 100 if host.get("memory_total_bytes") else None
            if value is not None:
                values.append(value)
        return max(values) if values else None

    def show(self, value: float | None) -> str:
        if value is None:
            return "no data"
        if self.metric in NUMBER_METRICS:
            return f"{value:g}"
        if self.metric in CPU_METRICS or self.percent_of_memory:
            return f"{value:.1f}%"
        return format_bytes(value, decimal=self.decimal)

    def show_limit(self) -> str:
        if self.metric in NUMBER_METRICS:
            return f"{self.limit:g}"
        if self.metric in CPU_METRICS or self.percent_of_memory:
            return f"{self.limit:g}%"
        return format_bytes(self.limit, decimal=self.decimal)

    @property
    def decimal(self) -> bool:
        """A limit written in MB / GB is shown in MB / GB; in MiB / GiB or bytes, in binary units."""
        return bool(re.search(r"[kmgt]b?$", self.above.strip(), re.IGNORECASE)) and "i" not in self.above.lower()


@dataclass
class _State:
    since: float | None = None  # start of the current stretch above the limit
    peak: float | None = None
    breached_at: float | None = None
    above_s: float = 0.0  # seconds above the limit in all
    samples: int = 0


class ResourceWatch:
    """Follows each rule over the samples; ``update`` returns the rules breached by this sample (once each)."""

    def __init__(self, rules: Sequence[ResourceRule], *, builtin: Sequence[ResourceRule] = ()) -> None:
        self.rules = list(rules)
        self.builtin = list(builtin)  # lrun's own warnings: acted on, not reported as thresholds
        self.states = {id(rule): _State() for rule in [*self.rules, *self.builtin]}

    def update(self, sample: dict[str, Any], interval: float = 1.0) -> list[tuple[ResourceRule, str]]:
        breached = []
        now = sample["t"]
        for rule in [*self.rules, *self.builtin]:
            state = self.states[id(rule)]
            value = rule.value(sample)
            if value is None:
                state.since = None
                continue
            state.samples += 1
            state.peak = value if state.peak is None else max(state.peak, value)
            if value <= rule.limit:
                state.since = None
                continue
            state.above_s += interval
            if state.since is None:
                state.since = now - interval  # the sample covers the interval before it
            if state.breached_at is None and now - state.since >= rule.for_s - 1e-6:
                state.breached_at = now
                held = f" for {now - state.since:.0f}s" if rule.for_s else ""
                breached.append((rule, f"measured {rule.show(value)}{held}, limit {rule.show_limit()}"))
        return breached

    def results_part(self) -> list[ResourceVerdict]:
        """The ``resource_thresholds`` part of the results."""
        return [ResourceVerdict.model_validate(v) for v in self.verdicts()]

    def verdicts(self) -> list[dict[str, Any]]:
        """The ``resource_thresholds`` list of the results."""
        out = []
        for rule in self.rules:
            state = self.states[id(rule)]
            passed = state.breached_at is None
            if not state.samples:
                detail = "no data"
            else:
                detail = f"peak {rule.show(state.peak)}, limit {rule.show_limit()}"
                if not passed:
                    detail += f"; above the limit for {state.above_s:.0f}s in all"
            out.append(
                {
                    "expression": rule.text,
                    "metric": rule.metric,
                    "process": rule.process,
                    "above": rule.above,
                    "limit": rule.limit,
                    "unit": "percent"
                    if rule.metric in CPU_METRICS or rule.percent_of_memory
                    else "number"
                    if rule.metric in NUMBER_METRICS
                    else "bytes",
                    "for_s": rule.for_s,
                    "action": rule.action,
                    "peak": state.peak,
                    "above_s": state.above_s,
                    "breached_at": state.breached_at,
                    "passed": passed,
                    "detail": detail,
                }
            )
        return out
