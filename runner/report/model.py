"""Typed models of the results file (``runner.report.results`` documents each key): the contract between a run and
its reports, and the source of ``schemas/results.schema.json``.

Every model allows keys it does not know (a newer lrun's optional keys, the runner's ``extra=``), so a reader
tolerates them; a known key of the wrong type is refused. Numbers keep their JSON type (``int | float``), so a file
read and written again is the same file.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_MAGNITUDE = 1e18  # any number a run writes stays far below: read back, a bigger one is refused
MAX_EPOCH = 1e11  # epoch seconds up to the year 5138: beyond, no date can be shown


def _finite(value: int | float) -> int | float:
    if not -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:  # NaN fails too
        raise ValueError(f"out of range: a number of results is finite and at most {MAX_MAGNITUDE:g}")
    return value


def _epoch(value: int | float) -> int | float:
    if not 0 <= value <= MAX_EPOCH:
        raise ValueError(f"out of range: a time in epoch seconds is between 0 and {MAX_EPOCH:g}")
    return value


Number = Annotated[int | float, AfterValidator(_finite)]
Ms = Number | None  # milliseconds, null where no value exists
Epoch = Annotated[int | float, AfterValidator(_epoch)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class StopCode(StrEnum):
    """Why a run ended, as a code beside the human ``stop_reason`` text."""

    RUN_TIME = "run_time"
    STAGES_DONE = "stages_done"
    USERS_DONE = "users_done"
    INTERRUPTED = "interrupted"
    THRESHOLD_ABORT = "threshold_abort"
    RESOURCE_ABORT = "resource_abort"
    STOP_TEST = "stop_test"
    POOL_DRY = "pool_dry"
    ERROR = "error"
    STOPPED = "stopped"


ABORTS = frozenset({StopCode.THRESHOLD_ABORT, StopCode.RESOURCE_ABORT, StopCode.STOP_TEST})

_PREFIXES: tuple[tuple[str, StopCode], ...] = (
    ("run time reached", StopCode.RUN_TIME),
    ("stages completed", StopCode.STAGES_DONE),
    ("all users finished", StopCode.USERS_DONE),
    ("interrupted", StopCode.INTERRUPTED),
    ("terminated", StopCode.INTERRUPTED),
    ("resource threshold", StopCode.RESOURCE_ABORT),
    ("threshold", StopCode.THRESHOLD_ABORT),
    ("stop_test", StopCode.STOP_TEST),
    ("data pool", StopCode.POOL_DRY),
    ("stopped", StopCode.STOPPED),
)


def stop_code(reason: str) -> StopCode:
    """The code of a stop reason as the runner words it; the one place that reads the text."""
    for prefix, code in _PREFIXES:
        if reason.startswith(prefix):
            return code
    return StopCode.ERROR  # setup failed, no worker could run the scenario, a worker's own failure …


class Histogram(_Open):
    counts: dict[str, int]
    count: int
    min: Number | None = None
    max: Number | None = None
    sum: Number = 0
    sumsq: Number = 0


class Point(_Open):
    """One interval of a series; ``total_*`` are cumulative at ``t``."""

    t: Epoch
    interval_s: Number
    users: int
    requests: int
    failures: int
    rps: Number
    failures_per_s: Number
    avg_ms: Ms = None
    p50_ms: Ms = None
    p95_ms: Ms = None
    p99_ms: Ms = None
    percentiles: dict[str, Ms] = {}
    total_requests: int = 0
    total_failures: int = 0
    total_avg_ms: Ms = None
    total_median_ms: Ms = None
    total_min_ms: Ms = None
    total_max_ms: Ms = None
    total_avg_bytes: Number | None = None


class Entry(_Open):
    """The statistics of one (method, name), of a transaction, or of all requests ("Aggregated")."""

    type: str = "request"
    method: str
    name: str
    requests: int
    failures: int
    failure_ratio: Number
    rps: Number
    failures_per_s: Number
    avg_ms: Ms = None
    min_ms: Ms = None
    max_ms: Ms = None
    median_ms: Ms = None
    stddev_ms: Ms = None
    avg_bytes: Number | None = None
    total_bytes: int = 0
    retries: int = 0
    think_s: Number | None = None
    percentiles: dict[str, Ms] = {}
    histogram: Histogram | None = None
    series: list[Point] | None = None


class Failure(_Open):
    method: str
    name: str
    message: str
    count: int
    first_seen: Epoch | None = None
    last_seen: Epoch | None = None
    other: bool = False


class ExceptionGroup(_Open):
    type: str
    message: str
    count: int
    traceback: str = ""
    first_seen: Epoch | None = None
    last_seen: Epoch | None = None
    users: list[str] = []
    nodes: list[str] = []
    other: bool = False


class Verdict(_Open):
    """A threshold's verdict (``runner.thresholds.evaluate``)."""

    expression: str
    request: str | None = None
    metric: str
    operator: str
    limit: Number
    actual: Number | None = None
    passed: bool
    detail: str = ""
    abort: bool = False


class Stage(_Open):
    """A stage of the load asked for: ``users`` reached linearly over ``duration`` seconds."""

    duration: Number
    users: int


class Load(_Open):
    users: int | None = None
    spawn_rate: Number | None = None
    run_time_s: Number | None = None
    iterations: int | None = None
    stages: list[Stage] | None = None


class TargetFigures(_Open):
    """A monitored process in one sample (or at its peak)."""

    cpu_percent: Number | None = None
    rss_bytes: Number | None = None
    processes: int | None = None


class Sample(_Open):
    t: Epoch
    process_cpu_percent: Number | None = None
    process_rss_bytes: int | None = None
    system_cpu_percent: Number | None = None
    system_memory_used_bytes: int | None = None
    system_memory_total_bytes: int | None = None
    targets: dict[str, TargetFigures] = {}


class Target(_Open):
    spec: str
    label: str
    pid: int | None = None
    name: str | None = None
    pids: list[int] = []
    found: bool = False


class ResourcePeak(_Open):
    """The largest sample values of a run."""

    process_cpu_percent: Number | None = None
    process_rss_bytes: Number | None = None
    system_cpu_percent: Number | None = None
    system_memory_used_bytes: Number | None = None
    targets: dict[str, TargetFigures] = {}


class Resources(_Open):
    interval_s: Number
    cpu_count: int | None = None
    available: bool = True
    series: list[Sample] = []
    targets: list[Target] = []
    peak: ResourcePeak = Field(default_factory=ResourcePeak)


class ResourceVerdict(_Open):
    expression: str
    metric: str
    process: str | None = None
    above: str
    limit: Number
    unit: str  # "percent", "bytes", "number" (a remote query)
    for_s: Number
    action: Literal["warn", "abort"]
    peak: Number | None = None
    above_s: Number = 0
    breached_at: Epoch | None = None
    passed: bool
    detail: str = ""


class Arrivals(_Open):
    planned: int
    started: int
    dropped: int | None = None  # planned, never started (k6's dropped_iterations); absent in older files
    late: int = 0
    late_for_slot: int = 0
    late_by_lrun: int = 0
    late_tolerance_ms: Ms = None
    max_late_ms: Ms = None
    jitter_p50_ms: Ms = None
    jitter_p99_ms: Ms = None
    jitter_max_ms: Ms = None
    waiting_at_end: int = 0


class SlowSpawn(_Open):
    users: int
    asked_rate: Number
    reached_rate: Number


class Saturation(_Open):
    saturated: bool
    reasons: list[str] = []
    loop_lag_p50_ms: Ms = None
    loop_lag_p99_ms: Ms = None
    loop_lag_max_ms: Ms = None
    loop_lag_worst_window_ms: Ms = None
    loop_lag_limit_ms: Ms = None
    probes: int = 0
    saturated_s: Number = 0
    spawn: SlowSpawn | None = None
    arrivals_slipped: int = 0


class RemoteHost(_Open):
    name: str
    url: str = ""
    scrapes: int = 0
    failures: int = 0
    last_error: str | None = None


class RemoteQuery(RemoteHost):
    query: str = ""


HostFigures = dict[str, Number | None]  # cpu_percent, memory_used_bytes, load1 …: null where it did not answer


class RemotePoint(_Open):
    t: Number
    hosts: dict[str, HostFigures] = {}
    queries: dict[str, Number | None] = {}


class RemotePeak(_Open):
    hosts: dict[str, HostFigures] = {}
    queries: dict[str, Number | None] = {}


class Remote(_Open):
    interval_s: Number
    hosts: list[RemoteHost] = []
    queries: list[RemoteQuery] = []
    series: list[RemotePoint] = []
    peak: RemotePeak = Field(default_factory=RemotePeak)


class IntendedTimes(_Open):
    """Open model: response times measured from each arrival's intended start."""

    avg_ms: Ms = None
    max_ms: Ms = None
    median_ms: Ms = None
    percentiles: dict[str, Ms] = {}


class IntendedEntry(IntendedTimes):
    method: str
    name: str


class FromIntendedStart(_Open):
    total: IntendedTimes = Field(default_factory=IntendedTimes)
    requests: list[IntendedEntry] = []


class Transactions(_Open):
    total: Entry
    entries: list[Entry] = []
    series: list[Point] = []
    errors: list[Failure] = []


class CheckCount(_Open):
    method: str
    name: str
    check: str
    passed: int
    failed: int


class Release(_Open):
    t: Number
    released: int
    reason: Literal["policy", "timeout", "stopping"]
    waited_ms: Ms = None


class Rendezvous(_Open):
    name: str
    policy: str
    timeout_s: Number | None = None
    arrivals: int = 0
    releases: list[Release] = []


class Pool(_Open):
    name: str
    source: str
    rows: int
    order: str
    update: str
    when_empty: str
    handed_out: int = 0
    dry: bool = False
    dry_at: Number | None = None
    users_stopped: int = Field(0, description="Users that stopped because the pool had no row for them.")
    waits: int = Field(0, description="Times a user found no free row (unique + cycle) and waited for one.")
    wait_time: Number = Field(0, description="Seconds users waited for a row in all.")


class InterruptedRequest(_Open):
    method: str
    name: str
    count: int


class Interrupted(_Open):
    """Requests in flight when the run stopped: sent, their answer cut off, not in the statistics."""

    total: int
    requests: list[InterruptedRequest] = []


class UserCounts(_Open):
    """Users asked for beside users that ran (``users_max``): the load that actually happened."""

    asked: int | None = None  # the closed model's most users asked (its stages' peak); null in the open model
    peak: int
    started: int | None = None  # users started over the run (every one, however short its life)
    ended_early: int = 0  # ended on their own while the test went on (stop_user, an error in on_start, no rows …)


class LoadWarning(_Open):
    """The load did not happen as planned (``runner.report.shortfalls``): the verdict says so, ``--strict`` fails."""

    kind: str  # arrivals_dropped, users_ended_early, users_short, worker_lost, generator_saturated, pool_users_stopped
    message: str
    count: int | None = None


class Worker(_Open):
    id: str
    host: str = ""
    pid: int | None = None
    state: str
    users: int = 0
    users_max: int | None = None
    users_started: int | None = None  # every user it started, however short its life
    users_ended_early: int | None = None
    cpu_percent: Number | None = None
    cpu_percent_max: Number | None = None
    memory_bytes: int | None = None
    memory_bytes_max: int | None = None
    requests: int | None = None
    failures: int | None = None
    resources: list[Sample] = []


class Results(_Open):
    """A results file, format ``lrun-results`` version 1."""

    format: Literal["lrun-results"] = "lrun-results"
    format_version: Literal[1] = 1
    lrun_version: str
    scenario: str
    scenario_file: str = ""
    host: str = ""
    command: str = ""
    start: str
    end: str
    duration_s: Number
    stats_start: str | None = None
    measured_s: Number
    load: Load = Field(default_factory=Load)
    users_max: int = 0
    total: Entry
    requests: list[Entry] = []
    series: list[Point] = []
    errors: list[Failure] = []
    exceptions: list[ExceptionGroup] = []
    thresholds: list[Verdict] = []
    passed: bool
    exit_code: int
    stop_reason: str = ""
    stop_code: StopCode | None = None  # absent in files written before lrun had it: read ``code``
    warnings: list[str] | None = None
    resources: Resources | None = None
    resource_thresholds: list[ResourceVerdict] | None = None
    arrivals: Arrivals | None = None
    from_intended_start: FromIntendedStart | None = None
    saturation: Saturation | None = None
    remote: Remote | None = None
    transactions: Transactions | None = None
    checks: list[CheckCount] | None = None
    rendezvous: list[Rendezvous] | None = None
    pools: list[Pool] | None = None
    workers: list[Worker] | None = None
    interrupted: Interrupted | None = None
    user_counts: UserCounts | None = None
    load_warnings: list[LoadWarning] | None = None

    @classmethod
    def required(cls) -> frozenset[str]:
        """The keys every results file has."""
        return frozenset(name for name, field in cls.model_fields.items() if field.is_required())

    @property
    def code(self) -> StopCode:
        """Why the run ended, also for a file without ``stop_code``."""
        return self.stop_code or stop_code(self.stop_reason)

    def to_dict(self) -> dict[str, Any]:
        """The results as the file holds them: the keys that were given, with their JSON types."""
        return self.model_dump(mode="json", exclude_unset=True)


def results_schema() -> dict[str, Any]:
    """The JSON Schema of a results file (``lrun schema --results``)."""
    schema = Results.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "lrun results"
    return schema


def results_schema_text() -> str:
    return json.dumps(results_schema(), indent=2, ensure_ascii=False) + "\n"
