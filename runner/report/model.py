"""Typed models of the results file: the contract between a run and its reports, and the source of
``schemas/results.schema.json``. Every key is documented here, by its field's description (a test makes sure).

Every model allows keys it does not know (a newer lrun's optional keys, the runner's ``extra=``), so a reader
tolerates them; a known key of the wrong type is refused. Numbers keep their JSON type (``int | float``), so a file
read and written again is the same file.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from runner.report.capacity_model import Capacity
from runner.report.goal_model import GoalOutcome

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
    """All response times of an entry in buckets: enough to compute any other percentile or to merge runs."""

    counts: dict[str, int] = Field(
        description="Response times per bucket, keyed by the bucket's lower bound in integer microseconds (every µs "
        "below 1,024 µs; above, 10 significant bits: at most 1/512 of the value wide)."
    )
    count: int = Field(description="Response times counted in all buckets.")
    min: Number | None = Field(None, description="The shortest response time in milliseconds (exact); null when empty.")
    max: Number | None = Field(None, description="The longest response time in milliseconds (exact); null when empty.")
    sum: Number = Field(0, description="The sum of the response times in milliseconds, for the mean.")
    sumsq: Number = Field(0, description="The sum of their squares (ms²), for the standard deviation.")


class PointTimings(_Open):
    """Where the time of an interval's responses went: the average of each phase, in milliseconds (3 decimals)."""

    responses: int = Field(description="Responses timed in the interval (requests with no response are not).")
    dns_ms: Ms = Field(None, description="Average time resolving the host name (0 on a kept-alive connection).")
    connect_ms: Ms = Field(None, description="Average time in the TCP connection (0 on a kept-alive connection).")
    tls_ms: Ms = Field(None, description="Average time in the TLS handshake (0 on a kept-alive connection).")
    send_ms: Ms = Field(None, description="Average time writing the request.")
    ttfb_ms: Ms = Field(None, description="Average time waiting for the first byte of the response.")
    receive_ms: Ms = Field(None, description="Average time from the first to the last byte of the response.")


class Point(_Open):
    """One interval of a series (one second, coarser for long runs: at most 3,600 points); ``total_*`` are
    cumulative at ``t``. Times are in milliseconds, null where the interval had no request."""

    t: Epoch = Field(description="The end of the interval, epoch seconds; the point covers [t - interval_s, t).")
    interval_s: Number = Field(description="Seconds covered (the first and the last point may cover less).")
    users: int = Field(description="Users running when the point was taken.")
    requests: int = Field(description="Requests that ended in the interval.")
    failures: int = Field(description="Failed requests in the interval.")
    rps: Number = Field(description="Requests per second over the interval.")
    failures_per_s: Number = Field(description="Failures per second over the interval.")
    avg_ms: Ms = Field(None, description="The interval's average response time.")
    p50_ms: Ms = Field(None, description="The interval's median response time.")
    p95_ms: Ms = Field(None, description="The interval's 95th percentile response time.")
    p99_ms: Ms = Field(None, description="The interval's 99th percentile response time.")
    percentiles: dict[str, Ms] = Field(
        {}, description='The interval\'s response time at each percentile, keyed "50" … "100" as in an entry.'
    )
    total_requests: int = Field(0, description="Requests from the start of the statistics to t.")
    total_failures: int = Field(0, description="Failures from the start of the statistics to t.")
    total_avg_ms: Ms = Field(None, description="Average response time from the start of the statistics to t.")
    total_median_ms: Ms = Field(None, description="Median response time from the start of the statistics to t.")
    total_min_ms: Ms = Field(None, description="Shortest response time from the start of the statistics to t.")
    total_max_ms: Ms = Field(None, description="Longest response time from the start of the statistics to t.")
    total_avg_bytes: Number | None = Field(
        None, description="Average response size in bytes from the start of the statistics to t; null without one."
    )
    timings: PointTimings | None = Field(
        None,
        description="Where the interval's time went, per phase (as an entry's timings, averages only); null when no "
        "response was timed in it (and in results written before lrun kept it).",
    )


class PhaseTime(_Open):
    """One phase of the responses' time, in milliseconds (3 decimals), null without responses."""

    avg_ms: Ms = Field(None, description="Average time in the phase.")
    min_ms: Ms = Field(None, description="Shortest time in the phase.")
    max_ms: Ms = Field(None, description="Longest time in the phase.")
    percentiles: dict[str, Ms] = Field({}, description="Time in the phase at each percentile, keyed as in an entry.")


class Timings(_Open):
    """Where the responses' time went, as k6 and Artillery split it; the phases add up to the response time. A
    response on a kept-alive connection spent 0 in dns, connect and tls (those count as 0 in avg and percentiles);
    redirects followed add up. Requests that got no response are not in it."""

    responses: int = Field(description="Responses timed.")
    new_connections: int = Field(description="Of those, how many opened a new connection (the others reused one).")
    dns: PhaseTime = Field(description="Resolving the host name (0 for an IP address).")
    connect: PhaseTime = Field(description="The TCP connection (the connect() call).")
    tls: PhaseTime = Field(description="The TLS handshake (0 for http://).")
    send: PhaseTime = Field(description="Writing the request.")
    ttfb: PhaseTime = Field(description="Waiting: from the request written to the first byte of the response.")
    receive: PhaseTime = Field(description="From the first byte to the last byte of the response.")


class Entry(_Open):
    """The statistics of one (method, name), of a transaction, or of all requests ("Aggregated"). Times are in
    milliseconds (3 decimals), null without requests; rates are per second of ``measured_s``."""

    type: str = Field("request", description='"request", or "transaction" (in ``transactions``).')
    method: str = Field(description='The HTTP method ("GET"), the protocol of a measured call, or "" for the total.')
    name: str = Field(description='The request\'s name ("/items"), the transaction\'s, or "Aggregated" for the total.')
    requests: int = Field(description="Requests (or transactions) that ended and were counted.")
    failures: int = Field(description="Of those, how many failed.")
    failure_ratio: Number = Field(description="failures / requests, 6 decimals (0.0 without requests).")
    rps: Number = Field(description="Requests per second over measured_s.")
    failures_per_s: Number = Field(description="Failures per second over measured_s.")
    avg_ms: Ms = Field(None, description="Average response time.")
    min_ms: Ms = Field(None, description="Shortest response time.")
    max_ms: Ms = Field(None, description="Longest response time.")
    median_ms: Ms = Field(None, description="Median response time.")
    stddev_ms: Ms = Field(None, description="Standard deviation of the response times (population).")
    avg_bytes: Number | None = Field(None, description="Average response size in bytes; null without requests.")
    total_bytes: int = Field(0, description="Bytes of all responses.")
    retries: int = Field(
        0,
        description="Requests sent again on a new connection because a kept-alive one was found closed before any "
        "byte arrived (idempotent methods, once): the server saw requests + retries.",
    )
    http2: int = Field(
        0, description="Of the requests, how many went over HTTP/2 (negotiated by ALPN on https); the rest HTTP/1.1."
    )
    think_s: Number | None = Field(
        None, description="Transactions only: seconds of think time inside, not counted in their times."
    )
    percentiles: dict[str, Ms] = Field(
        {},
        description='Response time at each percentile, keyed "50", "66", "75", "80", "90", "95", "98", "99", '
        '"99.9", "99.99", "100".',
    )
    histogram: Histogram | None = Field(None, description="All response times in buckets.")
    timings: Timings | None = Field(
        None, description="HTTP requests only: each response's time split into dns, connect, tls, send, ttfb, receive."
    )
    series: list[Point] | None = Field(
        None, description="Only with --csv-full-history: this entry's points since its first request."
    )


class Failure(_Open):
    """A group of failed requests with the same method, name and message."""

    method: str = Field(description="The failed request's method.")
    name: str = Field(description="The failed request's name.")
    message: str = Field(description="What went wrong (status, checkpoint, connection error …).")
    count: int = Field(description="Failures in this group.")
    first_seen: Epoch | None = Field(None, description="When the first of them happened, epoch seconds.")
    last_seen: Epoch | None = Field(None, description="When the last of them happened, epoch seconds.")
    other: bool = Field(False, description="True for the one group counting every failure past the 500 groups kept.")


class ExceptionGroup(_Open):
    """A group of exceptions raised in users (Python steps, hooks, lrun itself) with the same type and message."""

    type: str = Field(description="The exception's class name.")
    message: str = Field(description="The exception's message.")
    count: int = Field(description="Exceptions in this group.")
    traceback: str = Field("", description="The traceback of the first one seen.")
    first_seen: Epoch | None = Field(None, description="When the first was raised, epoch seconds.")
    last_seen: Epoch | None = Field(None, description="When the last was raised, epoch seconds.")
    users: list[str] = Field([], description="The user types it happened in.")
    nodes: list[str] = Field([], description='Where it happened: "local", or the workers.')
    other: bool = Field(False, description="True for the one group counting everything past the 500 groups kept.")


class Verdict(_Open):
    """A threshold's verdict (``runner.thresholds.evaluate``)."""

    expression: str = Field(description='The threshold as written ("p95 < 300ms").')
    request: str | None = Field(
        None, description="The request (or transaction) it is about; null: all requests (the total)."
    )
    metric: str = Field(
        description="The metric judged: p50 … p100, avg, min, max, median, errors, error_rate, requests, "
        "failures, rps, failures_per_s or arrivals_dropped."
    )
    operator: str = Field(description='The comparison: "<", "<=", ">", ">=" or "==".')
    limit: Number = Field(
        description="The limit in the metric's unit: milliseconds for times, a ratio (0.01 for 1%) for rates."
    )
    actual: Number | None = Field(None, description="The measured value; null when there was no data (it fails).")
    passed: bool = Field(description="The measured value meets the limit.")
    detail: str = Field("", description="The verdict for people: what was measured, or why nothing was.")
    abort: bool = Field(False, description="A failing threshold stops the run early.")


class WindowBreach(_Open):
    """A time an SLO window failed: from the first failing window to the first that passed again."""

    start: Epoch = Field(description="End of the first window that failed, epoch seconds.")
    end: Epoch | None = Field(
        None, description="End of the first window that passed again, epoch seconds; null: still failing at the end."
    )
    worst: Number = Field(description="The worst window value in the breach, in the metric's unit (as limit).")
    worst_at: Epoch = Field(description="End of the window with the worst value, epoch seconds.")
    windows: int = Field(description="Windows (judged one a second) that failed in the breach.")
    counted: bool = Field(
        description="It lasted for_windows windows in a row: it fails the run (and, with abort, stopped it)."
    )


class WindowVerdict(_Open):
    """A live SLO window (a threshold with ``over``): judged every second on the last over_s seconds."""

    expression: str = Field(description='The threshold as written ("p95 < 300ms over 10s", "… for 3").')
    request: str | None = Field(None, description="The request (or transaction) it is about; null: the total.")
    metric: str = Field(description="The metric judged (as in thresholds).")
    operator: str = Field(description='The comparison: "<", "<=", ">", ">=" or "==".')
    limit: Number = Field(description="The limit in the metric's unit: ms for times, a ratio for rates.")
    over_s: int = Field(description="The window's length in seconds.")
    for_windows: int = Field(1, description="Windows in a row a breach must last to count.")
    delay_s: Number = Field(0, description="Seconds after the start before the first window was judged.")
    abort: bool = Field(False, description="A counted breach stops the run.")
    judged: int = Field(0, description="Windows judged (one a second; a window without data is not).")
    worst: Number | None = Field(None, description="The worst window value of the run; null when none was judged.")
    worst_at: Epoch | None = Field(None, description="End of the worst window, epoch seconds.")
    breaches: list[WindowBreach] = Field([], description="Each time the window failed, in order.")
    passed: bool = Field(description="Windows were judged and no breach counted.")
    aborted: bool = Field(False, description="A breach of this window stopped the run.")


class Stage(_Open):
    """A stage of the load asked for: ``users`` reached linearly over ``duration`` seconds."""

    duration: Number = Field(description="Seconds the stage lasts.")
    users: int = Field(description="Users running at the end of the stage.")


class Load(_Open):
    """The load asked for, as the runner was given it; null (or absent) what does not apply."""

    users: int | None = Field(None, description="Users asked for (closed model).")
    spawn_rate: Number | None = Field(None, description="Users started per second.")
    run_time_s: Number | None = Field(None, description="The run time asked for, in seconds; null: no limit.")
    iterations: int | None = Field(None, description="Iterations per user asked for; null: no limit.")
    stages: list[Stage] | None = Field(None, description="The stages of the load, in order.")


class TargetFigures(_Open):
    """A monitored process in one sample (or at its peak); null where unknown (not running, the first CPU sample)."""

    cpu_percent: Number | None = Field(None, description="CPU in % of one core (200: two busy cores).")
    rss_bytes: Number | None = Field(None, description="Resident memory in bytes.")
    processes: int | None = Field(None, description="How many processes it stood for.")


class Sample(_Open):
    """CPU and memory at one time; a merged point averages CPU and keeps the largest memory; null where unknown."""

    t: Epoch = Field(description="When it was taken, epoch seconds.")
    process_cpu_percent: Number | None = Field(None, description="lrun's CPU in % of one core (200: two cores).")
    process_rss_bytes: int | None = Field(None, description="lrun's resident memory in bytes.")
    system_cpu_percent: Number | None = Field(None, description="The machine's CPU in % of all cores.")
    system_memory_used_bytes: int | None = Field(None, description="The machine's memory in use: total - available.")
    system_memory_total_bytes: int | None = Field(None, description="The machine's memory in bytes.")
    targets: dict[str, TargetFigures] = Field({}, description="Each monitored process, by its spec.")


class Target(_Open):
    """A process the scenario's ``monitor`` watched."""

    spec: str = Field(description='As given: a name ("nginx") or a pid ("1234").')
    label: str = Field(description='How reports name it ("1234 (nginx)").')
    pid: int | None = Field(None, description="The pid asked for; null for a name.")
    name: str | None = Field(None, description="The process name asked for or found.")
    pids: list[int] = Field([], description="The processes it stood for at the end.")
    found: bool = Field(False, description="It was seen at least once.")


class ResourcePeak(_Open):
    """The largest sample values of a run."""

    process_cpu_percent: Number | None = Field(None, description="lrun's highest CPU, % of one core.")
    process_rss_bytes: Number | None = Field(None, description="lrun's largest resident memory in bytes.")
    system_cpu_percent: Number | None = Field(None, description="The machine's highest CPU, % of all cores.")
    system_memory_used_bytes: Number | None = Field(None, description="The machine's most memory in use, in bytes.")
    targets: dict[str, TargetFigures] = Field({}, description="Each monitored process's peaks, by its spec.")


class Resources(_Open):
    """CPU and memory of lrun, the machine and monitored processes over the run (``runner.monitor.local``)."""

    interval_s: Number = Field(
        description="Seconds per point (1; doubles when a long run's points are merged, at most 3,600 points)."
    )
    cpu_count: int | None = Field(None, description="The machine's cores; null where unknown.")
    available: bool = Field(True, description="False where psutil cannot read this system (no figures then).")
    series: list[Sample] = Field([], description="A sample per interval.")
    targets: list[Target] = Field([], description="The monitored processes.")
    peak: ResourcePeak = Field(default_factory=ResourcePeak, description="The largest sample values.")


class ResourceVerdict(_Open):
    """A resource threshold's verdict (``monitor: {thresholds: [...]}``). A breached "abort" stops the run (exit code
    1); a breached "warn" adds a warning and leaves the exit code alone."""

    expression: str = Field(description='As written ("target_memory[nginx] above 500MB for 10s").')
    metric: str = Field(
        description="generator_cpu, generator_memory, system_cpu, system_memory, target_cpu, target_memory, "
        "host_cpu, host_memory, host_load or query."
    )
    process: str | None = Field(
        None, description="The target process (or remote host, or query) it is about; null: every target."
    )
    above: str = Field(description="The limit as written.")
    limit: Number = Field(description="The limit in its unit.")
    unit: str = Field(
        description='"percent" (CPU, or memory given as a percentage), "bytes", or "number" (a remote query).'
    )
    for_s: Number = Field(description="Seconds above the limit that make a breach.")
    action: Literal["warn", "abort"] = Field(description="What a breach does: warn, or stop the run.")
    peak: Number | None = Field(None, description="The highest value seen; null without a sample.")
    above_s: Number = Field(0, description="Seconds above the limit in all.")
    breached_at: Epoch | None = Field(None, description="When it was breached, epoch seconds; null: never.")
    passed: bool = Field(description="Never breached.")
    detail: str = Field("", description="The verdict for people.")


class Arrivals(_Open):
    """Open model: how the arrivals the schedule called for were started. An arrival that started more than
    ``late_tolerance_ms`` after its intended start is late."""

    planned: int = Field(description="Arrivals the schedule called for.")
    started: int = Field(description="Arrivals started.")
    dropped: int | None = Field(
        None, description="Planned, never started (k6's dropped_iterations); absent in older files."
    )
    late: int = Field(0, description="Started late.")
    late_for_slot: int = Field(0, description="Of the late: waited for a free slot (max_users were busy).")
    late_by_lrun: int = Field(0, description="Of the late: a slot was free, yet lrun started them late.")
    late_tolerance_ms: Ms = Field(None, description="The delay after the intended start above which a start is late.")
    max_late_ms: Ms = Field(None, description="The latest start after its intended start.")
    jitter_p50_ms: Ms = Field(
        None, description="Median start delay of the arrivals that found a slot free: the scheduler's precision."
    )
    jitter_p99_ms: Ms = Field(None, description="99th percentile of that start delay.")
    jitter_max_ms: Ms = Field(None, description="The largest of that start delay.")
    waiting_at_end: int = Field(0, description="Never started: still queued when the run ended.")


class SlowSpawn(_Open):
    """The slowest spawn that missed its rate."""

    users: int = Field(description="Users spawned.")
    asked_rate: Number = Field(description="Users per second asked for.")
    reached_rate: Number = Field(description="Users per second reached.")


class Saturation(_Open):
    """Was lrun itself the bottleneck? Its event loop's lag (how late a 100 ms timer fired) and its spawning."""

    saturated: bool = Field(description="lrun was judged saturated at some time: its figures may be its own limits.")
    reasons: list[str] = Field([], description="Why, for people.")
    loop_lag_p50_ms: Ms = Field(None, description="Median loop lag over the run; null without a probe.")
    loop_lag_p99_ms: Ms = Field(None, description="99th percentile loop lag over the run.")
    loop_lag_max_ms: Ms = Field(None, description="The largest loop lag.")
    loop_lag_worst_window_ms: Ms = Field(None, description="The worst median loop lag of a 3 s window.")
    loop_lag_limit_ms: Ms = Field(None, description="A 3 s median lag above this is saturation.")
    probes: int = Field(0, description="Loop lag probes taken.")
    saturated_s: Number = Field(0, description="Seconds judged saturated.")
    spawn: SlowSpawn | None = Field(None, description="The slowest spawn that missed its rate; null: none did.")
    arrivals_slipped: int = Field(0, description="Open model: arrivals lrun started late with a slot free.")


class RemoteHost(_Open):
    """A host's metrics endpoint scraped during the run (``monitor.hosts``)."""

    name: str = Field(description="Its name in the scenario.")
    url: str = Field("", description="The URL scraped, without its query string.")
    scrapes: int = Field(0, description="Scrapes that answered.")
    failures: int = Field(0, description="Scrapes that failed.")
    last_error: str | None = Field(None, description="The last failure's message; null when the last one answered.")


class RemoteQuery(RemoteHost):
    """A Prometheus query asked during the run (``monitor.prometheus``)."""

    query: str = Field("", description="The PromQL query.")


HostFigures = dict[str, Number | None]  # cpu_percent, memory_used_bytes, load1 …: null where it did not answer


class RemotePoint(_Open):
    """Remote figures at one time; null values are gaps (the endpoint did not answer)."""

    t: Number = Field(description="When they were scraped, epoch seconds.")
    hosts: dict[str, HostFigures] = Field(
        {}, description="Per host: cpu_percent, memory_used_bytes, load1 …, null where it did not answer."
    )
    queries: dict[str, Number | None] = Field({}, description="Per query: its value, null where it did not answer.")


class RemotePeak(_Open):
    """The largest remote figures of the run."""

    hosts: dict[str, HostFigures] = Field({}, description="Per host: the largest of each figure.")
    queries: dict[str, Number | None] = Field({}, description="Per query: its largest value.")


class Remote(_Open):
    """Remote monitoring (``monitor.hosts`` and ``monitor.prometheus``, ``runner.monitor.remote``)."""

    interval_s: Number = Field(description="Seconds between scrapes.")
    hosts: list[RemoteHost] = Field([], description="The hosts scraped.")
    queries: list[RemoteQuery] = Field([], description="The Prometheus queries asked.")
    series: list[RemotePoint] = Field([], description="The figures over time.")
    peak: RemotePeak = Field(default_factory=RemotePeak, description="The largest figures.")


class IntendedTimes(_Open):
    """Open model: response times measured from each arrival's intended start (milliseconds, null when empty)."""

    avg_ms: Ms = Field(None, description="Average.")
    max_ms: Ms = Field(None, description="Longest.")
    median_ms: Ms = Field(None, description="Median.")
    percentiles: dict[str, Ms] = Field({}, description="At each percentile, keyed as in an entry.")


class IntendedEntry(IntendedTimes):
    """Response times from the intended start of one (method, name)."""

    method: str = Field(description="The request's method.")
    name: str = Field(description="The request's name.")


class FromIntendedStart(_Open):
    """Open model: response times counted from when each arrival should have started (no coordinated omission)."""

    total: IntendedTimes = Field(default_factory=IntendedTimes, description="Of all requests.")
    requests: list[IntendedEntry] = Field([], description="Per (method, name).")


class Transactions(_Open):
    """Transactions, as entries of type "transaction" (method ""); TPS is ``total.rps``."""

    total: Entry = Field(description="All transactions together.")
    entries: list[Entry] = Field([], description="Per transaction name.")
    series: list[Point] = Field([], description="Transactions per interval.")
    errors: list[Failure] = Field([], description="Failed transactions, grouped by name and message.")


class CheckCount(_Open):
    """How often one checkpoint of one request passed and failed."""

    method: str = Field(description="The request's method.")
    name: str = Field(description="The request's name.")
    check: str = Field(description='The checkpoint ("status 200", "jsonpath $.ok equals true").')
    passed: int = Field(description="Times it passed.")
    failed: int = Field(description="Times it failed.")


class Release(_Open):
    """A rendezvous point letting a group of users go."""

    t: Number = Field(description="When, epoch seconds.")
    released: int = Field(description="Users let go.")
    reason: Literal["policy", "timeout", "stopping"] = Field(
        description="Why: enough users arrived, the timeout passed, or the run was stopping."
    )
    waited_ms: Ms = Field(None, description="The longest wait of the group.")


class Rendezvous(_Open):
    """A rendezvous point: where users wait for each other, then go together."""

    name: str = Field(description="Its name in the scenario.")
    policy: str = Field(description='When it lets users go ("50 users", "80% of all users").')
    timeout_s: Number | None = Field(None, description="The longest wait before it lets the waiting go; null: none.")
    arrivals: int = Field(0, description="Users that reached it.")
    releases: list[Release] = Field([], description="Its releases, in order.")


class Pool(_Open):
    """A data pool some user type reads, with what this test handed out."""

    name: str = Field(description="Its name in the scenario.")
    source: str = Field(description='The CSV file\'s path, or "inline".')
    rows: int = Field(description="Rows it holds.")
    order: str = Field(description='"sequential", "random" or "unique".')
    update: str = Field(description='When a user takes a new row: "each_iteration", "each_occurrence" or "once".')
    when_empty: str = Field(description='"cycle", "keep_last", "stop_user" or "stop_test".')
    handed_out: int = Field(0, description="Rows users took.")
    dry: bool = Field(False, description="A user once found no row left.")
    dry_at: Number | None = Field(None, description="When it first ran dry, epoch seconds; null: never.")
    users_stopped: int = Field(0, description="Users that stopped because the pool had no row for them.")
    waits: int = Field(0, description="Times a user found no free row (unique + cycle) and waited for one.")
    wait_time: Number = Field(0, description="Seconds users waited for a row in all.")


class InterruptedRequest(_Open):
    """Requests of one (method, name) in flight when the run stopped."""

    method: str = Field(description="The request's method.")
    name: str = Field(description="The request's name.")
    count: int = Field(description="How many were cut off.")


class Interrupted(_Open):
    """Requests in flight when the run stopped: sent, their answer cut off, not in the statistics."""

    total: int = Field(description="All of them.")
    requests: list[InterruptedRequest] = Field([], description="Per (method, name).")


class UserCounts(_Open):
    """Users asked for beside users that ran (``users_max``): the load that actually happened."""

    asked: int | None = Field(
        None, description="The closed model's most users asked for (its stages' peak); null in the open model."
    )
    peak: int = Field(description="The most users running at once.")
    started: int | None = Field(None, description="Users started over the run (every one, however short its life).")
    ended_early: int = Field(
        0,
        description="Users that ended on their own while the test went on (stop_user, an error in on_start, no "
        "rows …).",
    )


class LoadWarning(_Open):
    """The load did not happen as planned (``runner.report.shortfalls``): the verdict says so, ``--strict`` fails."""

    kind: str = Field(
        description="arrivals_dropped, users_ended_early, users_short, worker_lost, generator_saturated or "
        "pool_users_stopped."
    )
    message: str = Field(description="What happened, for people.")
    count: int | None = Field(None, description="How many (arrivals, users, workers) it concerns; null: not a count.")


class Worker(_Open):
    """A worker of a distributed run, as the master last heard from it."""

    id: str = Field(description="Its id.")
    host: str = Field("", description="The host it runs on.")
    pid: int | None = Field(None, description="Its process id.")
    state: str = Field(description='Its state at the end ("missing" for a lost one).')
    users: int = Field(0, description="Users it ran at the end.")
    users_max: int | None = Field(None, description="The most users it ran at once.")
    users_started: int | None = Field(None, description="Every user it started, however short its life.")
    users_ended_early: int | None = Field(None, description="Its users that ended on their own while the test went on.")
    cpu_percent: Number | None = Field(None, description="Its CPU at the last heartbeat, % of one core.")
    cpu_percent_max: Number | None = Field(None, description="Its highest CPU, % of one core.")
    memory_bytes: int | None = Field(None, description="Its resident memory at the last heartbeat, in bytes.")
    memory_bytes_max: int | None = Field(None, description="Its largest resident memory, in bytes.")
    requests: int | None = Field(None, description="Requests it reported.")
    failures: int | None = Field(None, description="Failures it reported.")
    resources: list[Sample] = Field(
        [],
        description="Its CPU and memory from its heartbeats (t, process_cpu_percent, process_rss_bytes; ≤ 300 points).",
    )


class Results(_Open):
    """A results file, format ``lrun-results`` version 1: one run, written once at its end, read by every report.

    Times at the top level are ISO 8601 UTC strings with milliseconds; inside series and groups they are epoch
    seconds. Milliseconds, rates and averages are rounded to 3 decimals (µs, the histograms' resolution), ratios to
    6. A value that does not exist (the average of no requests) is null, never 0 or NaN. Optional keys (null or
    absent) are absent in older files and in runs without the feature; every reader tolerates their absence."""

    format: Literal["lrun-results"] = Field("lrun-results", description='Always "lrun-results".')
    format_version: Literal[1] = Field(1, description="The version of this format.")
    lrun_version: str = Field(description="The lrun that wrote it.")
    scenario: str = Field(description="The scenario's name.")
    scenario_file: str = Field("", description="The scenario's path.")
    host: str = Field("", description="The target (a URL's password removed).")
    command: str = Field("", description="The command line (passwords removed).")
    start: str = Field(description='When the run started, ISO 8601 UTC ("2024-05-01T12:00:00.000Z").')
    end: str = Field(description="When it ended, ISO 8601 UTC.")
    duration_s: Number = Field(description="end - start, in seconds.")
    stats_start: str | None = Field(
        None, description="When counting started, ISO 8601 UTC: start, or the reset after spawning (--reset-stats)."
    )
    measured_s: Number = Field(description="end - stats_start in seconds: what the rates are divided by.")
    load: Load = Field(default_factory=Load, description="The load asked for.")
    users_max: int = Field(0, description="The most users running at once.")
    total: Entry = Field(description='All requests together (method "", name "Aggregated").')
    requests: list[Entry] = Field([], description="One entry per (method, name), sorted by type, name, method.")
    series: list[Point] = Field([], description="All requests per interval (1 s, coarser for long runs).")
    errors: list[Failure] = Field([], description="Failed requests grouped, most frequent first.")
    exceptions: list[ExceptionGroup] = Field([], description="Exceptions grouped, most frequent first.")
    thresholds: list[Verdict] = Field([], description="The verdict of each threshold.")
    windows: list[WindowVerdict] | None = Field(
        None, description="Live SLO windows (thresholds with over): each one's breaches over time."
    )
    passed: bool = Field(description="exit_code is 0 and every threshold passed.")
    exit_code: int = Field(description="The process's exit code.")
    stop_reason: str = Field("", description="Why the run ended, for people.")
    stop_code: StopCode | None = Field(
        None, description="Why the run ended, for programs; absent in files written before it existed (read ``code``)."
    )
    warnings: list[str] | None = Field(
        None, description="What went wrong without failing the run (lrun's own CPU, resource thresholds …)."
    )
    resources: Resources | None = Field(None, description="CPU and memory of lrun, the machine, monitored processes.")
    resource_thresholds: list[ResourceVerdict] | None = Field(
        None, description="A verdict per threshold in the scenario's monitor: {thresholds: [...]}."
    )
    arrivals: Arrivals | None = Field(None, description="Open model: how the planned arrivals were started.")
    from_intended_start: FromIntendedStart | None = Field(
        None, description="Open model: response times from each arrival's intended start."
    )
    saturation: Saturation | None = Field(None, description="Was lrun itself the bottleneck?")
    remote: Remote | None = Field(None, description="Remote hosts' and Prometheus queries' figures over the run.")
    transactions: Transactions | None = Field(None, description="Transactions' statistics, when the scenario has some.")
    checks: list[CheckCount] | None = Field(
        None, description="Per request and checkpoint: how often it passed and failed."
    )
    rendezvous: list[Rendezvous] | None = Field(None, description="Each rendezvous point's arrivals and releases.")
    pools: list[Pool] | None = Field(None, description="The data pools read, with what this test handed out.")
    workers: list[Worker] | None = Field(None, description="Distributed runs: each worker.")
    interrupted: Interrupted | None = Field(None, description="Requests in flight when the run stopped.")
    user_counts: UserCounts | None = Field(None, description="Users asked for beside users that ran.")
    load_warnings: list[LoadWarning] | None = Field(
        None, description="The load did not happen as planned: the verdict says so and --strict fails the run."
    )
    capacity: Capacity | None = Field(
        None, description="lrun capacity: the search's steps and its answer (these results are its best step's)."
    )
    goal: GoalOutcome | None = Field(None, description="Goal-oriented load: how the rate reached and held its goal.")
    apdex_t_ms: Number | None = Field(
        None,
        description="Apdex's T in ms the run was given (lrun run --apdex-t): lrun report renders with it unless told "
        "another; absent: 500 ms.",
    )

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
