"""The results of a run: one ``model.Results``, written as JSON (``--json FILE``), read by every report and CI check.

Format ``lrun-results``, version 1. Times at the top level are ISO 8601 UTC strings; inside the series and
the error groups they are epoch seconds. Milliseconds, rates and averages are rounded to 3 decimals (µs for
times, the resolution of the histograms); ratios to 6. A value that does not exist — the average of no
requests, a percentile of an empty interval — is ``null``, never 0 or NaN; the file is strict JSON.

Top level::

    format            "lrun-results"
    format_version    1
    lrun_version      the lrun that wrote it
    scenario          scenario name;  scenario_file  its path;  host  the target;  command  the command line
    start, end        ISO 8601 UTC, millisecond precision ("2024-05-01T12:00:00.000Z")
    duration_s        end - start
    stats_start       when counting started: start, or the reset after spawning (--reset-stats)
    measured_s        end - stats_start: what the rates (rps, failures_per_s) are divided by
    load              the load asked for (users, spawn rate, run time, stages …), as given by the runner
    users_max         the most users running at once
    total             ENTRY of all requests together (name "Aggregated", method "")
    requests          ENTRY per (method, name), sorted by type, name, method
    series            POINT per second (coarser for long runs: see ``runner.stats.series``)
    errors            FAILURE groups, most frequent first
    exceptions        EXCEPTION groups, most frequent first
    thresholds        the verdict of each threshold (``runner.thresholds.evaluate``)
    passed            exit_code == 0 and every threshold passed
    exit_code         the process's exit code;  stop_reason  why the run ended (text for people)
    stop_code         why the run ended, for programs: run_time, stages_done, users_done, interrupted,
                      threshold_abort, resource_abort, stop_test, pool_dry, error, stopped (``model.StopCode``;
                      absent in files written before it existed: ``Results.code`` derives it)
    (extra keys)      what the runner adds with ``extra=``; the optional keys below

The typed models of all of it are in ``runner.report.model`` (``schemas/results.schema.json`` is generated from
them); ``build_results`` and ``read_json`` return them, validated.

Optional keys (absent in older files and in runs without the feature; every reader tolerates their absence)::

    warnings          [text]: what went wrong without failing the run (lrun's own CPU, resource thresholds …)
    resources         RESOURCES: CPU and memory of lrun, the machine and monitored processes (``runner.monitor``)
    resource_thresholds   RESOURCE_VERDICT per threshold in the scenario's ``monitor: {thresholds: [...]}``
    arrivals, from_intended_start   open model: arrival counts; response times from the intended start.
                      arrivals: {"planned", "started", "late" (started over "late_tolerance_ms" after the
                      intended start), "late_for_slot" (of those: waited for a free slot, max_users busy),
                      "late_by_lrun" (of those: a slot was free, lrun started them late), "max_late_ms",
                      "jitter_p50_ms", "jitter_p99_ms", "jitter_max_ms" (start delay of the arrivals that found a
                      slot free: the scheduler's precision), "waiting_at_end", "dropped" (never started)}
    saturation        was lrun itself the bottleneck? {"saturated" (bool), "reasons" [text], "loop_lag_p50_ms",
                      "loop_lag_p99_ms", "loop_lag_max_ms" (how late a 100 ms timer fired, over the run),
                      "loop_lag_worst_window_ms" (the worst median of 3 s), "loop_lag_limit_ms" (a 3 s median
                      above it is saturation), "probes", "saturated_s" (seconds judged saturated), "spawn" (null,
                      or the slowest spawn that missed its rate: {"users", "asked_rate", "reached_rate"}),
                      "arrivals_slipped" (open model: arrivals lrun started late with a slot free)}
    remote            monitor.hosts / monitor.prometheus (``runner.monitor_remote``): {"interval_s", "hosts":
                      [{"name", "url", "scrapes", "failures", "last_error"}], "queries": [{… "query"}], "series":
                      [{"t", "hosts": {name: {cpu_percent, memory_used_bytes, …}}, "queries": {name: value}}],
                      "peak": {"hosts", "queries"}}; null values are gaps (the endpoint did not answer)
    transactions      {"total": ENTRY, "entries": [ENTRY], "series": [POINT], "errors": [FAILURE]}; ENTRY with
                      "type": "transaction", method "", and "think_s" (think time inside it, not counted in its
                      times). TPS is ``transactions.total.rps``
    checks            [{"method", "name", "check", "passed", "failed"}]: per request and checkpoint description
                      ("status 200", "jsonpath $.ok equals true"), how often it passed and failed
    rendezvous        [{"name", "policy" ("50 users", "80% of all users"), "timeout_s", "arrivals",
                      "releases": [{"t" (epoch s), "released", "reason" ("policy" | "timeout" | "stopping"),
                      "waited_ms" (the longest wait of the group)}]}]
    pools             [{"name", "source" (file path or "inline"), "rows", "order" ("sequential" | "random" |
                      "unique"), "update" ("each_iteration" | "each_occurrence" | "once"), "when_empty" ("cycle" |
                      "keep_last" | "stop_user" | "stop_test"), "handed_out", "dry" (bool), "dry_at" (epoch s or
                      null)}]
    user_counts       {"asked" (null in the open model), "peak", "started" (every user, however short its life),
                      "ended_early" (ended on their own while the test went on)}
    interrupted       {"total", "requests": [{"method", "name", "count"}]}: requests in flight when the run
                      stopped (sent; their answers are not in the statistics)
    load_warnings     [{"kind", "message", "count"}]: the load did not happen as planned (``report.shortfalls``);
                      the verdict says so and ``--strict`` fails the run
    workers           distributed runs: [{"id", "host", "pid", "state" ("missing" for a lost one), "users",
                      "users_max", "cpu_percent", "cpu_percent_max", "memory_bytes", "memory_bytes_max",
                      "requests", "failures", "resources": [{"t", "process_cpu_percent", "process_rss_bytes"}]
                      (from its heartbeats, at most 300 points)}]

ENTRY::

    type              "request" (later also "transaction")
    method, name      "GET", "/items" ("" and "Aggregated" for the total)
    requests, failures            counts
    failure_ratio     failures / requests (0.0 without requests)
    rps, failures_per_s           per second over measured_s
    avg_ms, min_ms, max_ms, median_ms, stddev_ms   response times (stddev: population); null without requests
    avg_bytes, total_bytes        response sizes (avg null without requests)
    retries           requests sent again on a new connection, a kept-alive one found closed before any byte
                      arrived (idempotent methods only, once): the server saw requests + retries
    percentiles       {"50", "66", "75", "80", "90", "95", "98", "99", "99.9", "99.99", "100": ms or null}
    histogram         ``Histogram.to_dict()``: {"counts": {"bucket_µs": n}, "count", "min", "max", "sum", "sumsq"},
                      enough to compute any other percentile or to merge runs
    series            (only with --csv-full-history) this entry's POINTs since its first request

POINT: ``t`` (end of the interval, epoch s), ``interval_s``, ``users``, ``requests``, ``failures``, ``rps``,
``failures_per_s``, ``avg_ms``, ``p50_ms``, ``p95_ms``, ``p99_ms``, ``percentiles`` (as in ENTRY) of the interval;
``total_requests``, ``total_failures``, ``total_avg_ms``, ``total_median_ms``, ``total_min_ms``, ``total_max_ms``,
``total_avg_bytes`` cumulative at ``t``.

FAILURE: ``method``, ``name``, ``message``, ``count``, ``first_seen``, ``last_seen`` (epoch s), ``other``
(true for the one group counting everything past the bound of 500 groups).

EXCEPTION: ``type``, ``message``, ``count``, ``traceback`` (the first one seen), ``first_seen``, ``last_seen``,
``users`` (user types it happened in), ``nodes`` ("local", or the workers), ``other`` (as for failures).

RESOURCES::

    interval_s        seconds per point (1; doubles when a long run's points are merged, at most 3,600 points)
    cpu_count         the machine's cores;  available  false where psutil cannot read this system
    series            SAMPLE per interval
    targets           [{"spec" (as given: "nginx", "1234"), "label" ("1234 (nginx)"), "pid" (null for a name),
                      "name", "pids" (the processes it stood for at the end), "found" (seen at least once)}]
    peak              {"process_cpu_percent", "process_rss_bytes", "system_cpu_percent", "system_memory_used_bytes",
                      "targets": {spec: {"cpu_percent", "rss_bytes"}}}: the largest sample values

SAMPLE: ``t`` (epoch s), ``process_cpu_percent`` (lrun, % of one core: 200 is two busy cores),
``process_rss_bytes``, ``system_cpu_percent`` (the machine, % of all cores), ``system_memory_used_bytes`` (total
minus available), ``system_memory_total_bytes``, ``targets``: {spec: {"cpu_percent", "rss_bytes", "processes"
(how many were running)}}. A merged point averages CPU and keeps the largest memory. null where unknown (a
target not running, the first sample of a target's CPU).

RESOURCE_VERDICT: ``expression`` ("target_memory[nginx] above 500MB for 10s"), ``metric`` (generator_cpu,
generator_memory, system_cpu, system_memory, target_cpu, target_memory), ``process`` (or null: every target),
``above`` (as written), ``limit`` (percent, or bytes), ``unit`` ("percent" | "bytes"), ``for_s``, ``action``
("warn" | "abort"), ``peak``, ``above_s`` (seconds above the limit in all), ``breached_at`` (epoch s, or null),
``passed`` (never breached), ``detail`` (text). A breached "abort" stops the run (stop_reason "resource
threshold …", exit code 1); a breached "warn" adds a warning and does not change the exit code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

import runner
from runner.errors import LrunError
from runner.redact import redact
from runner.report.model import Results, stop_code
from runner.report.reading import MAX_BYTES, parse_results_text

log = logging.getLogger("lrun")

if TYPE_CHECKING:
    from runner.stats import RequestStats

FORMAT = "lrun-results"
FORMAT_VERSION = 1


def iso_time(epoch: float) -> str:
    """Epoch seconds as ISO 8601 UTC with milliseconds: ``2024-05-01T12:00:00.000Z``."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Measured:
    """What the statistics say at the end of a run: enough to judge thresholds before the results are built."""

    stats_start: float
    measured_s: float
    snapshot: dict[str, Any]


def measure(stats: RequestStats, start: float, end: float) -> Measured:
    stats_start = max(start, stats.start_time)
    measured = max(0.0, end - stats_start)
    return Measured(stats_start, measured, stats.snapshot(duration=measured))


def build_results(
    stats: RequestStats,
    *,
    scenario: str,
    scenario_file: str,
    host: str,
    start: float,
    end: float,
    users_max: int,
    load: dict[str, Any],
    command: str,
    thresholds: list[dict[str, Any]],
    stop_reason: str,
    exit_code: int,
    extra: dict[str, Any] | None = None,
    measured: Measured | None = None,
) -> Results:
    """The results of a finished (or interrupted) run, built once: every report reads this object, and the JSON file
    is its dump (see the module docstring). ``measured`` is ``measure(stats, start, end)`` when the caller judged
    thresholds on it first."""
    m = measured or measure(stats, start, end)
    snapshot = m.snapshot
    results: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lrun_version": runner.__version__,
        "scenario": scenario,
        "scenario_file": scenario_file,
        "host": redact(host),  # a URL's password stays out of the results
        "command": redact(command),
        "start": iso_time(start),
        "end": iso_time(end),
        "duration_s": round(max(0.0, end - start), 3),
        "stats_start": iso_time(m.stats_start),
        "measured_s": round(m.measured_s, 3),
        "load": load,
        "users_max": users_max,
        "total": snapshot["total"],
        "requests": snapshot["requests"],
        "series": snapshot["series"],
        "errors": snapshot["errors"],
        "exceptions": snapshot["exceptions"],
        "thresholds": thresholds,
        "passed": exit_code == 0 and all(t.get("passed") for t in thresholds),
        "exit_code": exit_code,
        "stop_reason": stop_reason,
        "stop_code": stop_code(stop_reason).value,
    }
    for key, value in (extra or {}).items():
        if key in results:
            raise ValueError(f"extra result {key!r} would replace a field of the results format")
        results[key] = value
    try:
        return Results.model_validate(results)
    except ValidationError as exc:  # lrun's own contract broken: an lrun bug. Keep the run's figures, drop the part
        broken = {str(e["loc"][0]) for e in exc.errors() if e["loc"]} - set(Results.required())
        log.error(
            "results do not match runner.report.model (an lrun bug, please report it): %s; left out: %s",
            _first(exc),
            ", ".join(sorted(broken)) or "nothing",
        )
        if not broken:
            raise
        return Results.model_validate({k: v for k, v in results.items() if k not in broken})


def write_json(results: Results, path: str | os.PathLike[str]) -> None:
    """Write ``results`` to ``path`` atomically: a reader sees the old file or the whole new one."""
    path = Path(path)
    text = json.dumps(results.to_dict(), indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    directory = path.parent if str(path.parent) else Path(".")
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes it 0600; give it a normal file's mode
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_json(path: str | os.PathLike[str]) -> Results:
    """Read and validate a results file; ``LrunError`` saying what is wrong for a missing, truncated, foreign or
    invalid file."""
    try:
        if Path(path).stat().st_size > MAX_BYTES:  # not read at all
            raise LrunError(f"{path}: larger than {MAX_BYTES // 2**20} MiB: not a results file lrun wrote")
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LrunError(f"{path}: no such results file") from None
    except IsADirectoryError:
        raise LrunError(f"{path}: is a directory, not a results file") from None
    except UnicodeDecodeError:
        raise LrunError(f"{path}: not an lrun results file (not UTF-8 text)") from None
    except OSError as exc:
        raise LrunError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not text.strip():
        raise LrunError(f"{path}: empty file, not lrun results (was the run interrupted while writing?)")
    try:
        data = parse_results_text(text)
    except json.JSONDecodeError as exc:
        truncated = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        why = "truncated: the JSON ends early" if truncated else f"not JSON ({exc.msg}, line {exc.lineno})"
        raise LrunError(f"{path}: {why}; not a complete lrun results file") from None
    except ValueError as exc:
        raise LrunError(f"{path}: not valid lrun results: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LrunError(f'{path}: not an lrun results file (no "format": "{FORMAT}" in it)')
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise LrunError(
                f"{path}: results format version {version}, written by a newer lrun; this one reads version "
                f"{FORMAT_VERSION}"
            )
        raise LrunError(f"{path}: unknown results format version {version!r}; this lrun reads {FORMAT_VERSION}")
    try:
        return Results.model_validate(data)
    except ValidationError as exc:
        raise LrunError(f"{path}: not valid lrun results: {_first(exc)}") from None


def _first(exc: ValidationError) -> str:
    """The first problem of a validation error, in one line: ``checks.0.name: Field required (and 3 more)``."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"
