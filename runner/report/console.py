"""Console output a Locust user recognises: the statistics table, the percentile table, the error report.

Everything here renders the typed results (``runner.report.model``): the same code prints the live tables during a
run (``Entry`` of the live snapshot) and the summary at the end, and never touches a runner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runner.report.breakdown import timing_table
from runner.report.formats import clock, fmt_bytes, fmt_percent
from runner.report.model import (
    Arrivals,
    Entry,
    Failure,
    Pool,
    Remote,
    Resources,
    Results,
    Saturation,
    TargetFigures,
)
from runner.report.windows import breach_lines

PERCENTILE_COLUMNS = ("50", "66", "75", "80", "90", "95", "98", "99", "99.9", "99.99", "100")
NAME_WIDTH = 60


def _ms(value: float | None) -> str:
    if value is None:
        return "N/A"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def _name(method: str, name: str) -> str:
    text = f"{method:<8} {name}" if method else f"{'':<8} {name}"
    return text if len(text) <= NAME_WIDTH + 9 else text[: NAME_WIDTH + 6] + "..."


def _width(entries: Sequence[Entry]) -> int:
    """The name column fits the longest name (between 24 and NAME_WIDTH + 9 characters)."""
    longest = max((len(_name(e.method, e.name)) for e in entries), default=0)
    return min(max(longest, 24), NAME_WIDTH + 9)


def _rows(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e.type != "request", e.name, e.method))


def _aggregated(total: Entry) -> Entry:
    return total.model_copy(update={"method": "", "name": "Aggregated"})


def stats_table(entries: Iterable[Entry], total: Entry) -> str:
    """Type, name, requests, fails, avg, min, max, median, req/s, failures/s — one row per request name."""
    entries = _rows(entries)
    width = _width(entries)
    head = (
        f"{'Type     Name':<{width}} {'# reqs':>8} {'# fails':>14} | {'Avg':>7} {'Min':>7} {'Max':>7} {'Med':>7} "
        f"| {'req/s':>8} {'failures/s':>11}"
    )
    rule = "-" * len(head)
    lines = [head, rule]

    def row(entry: Entry) -> str:
        requests, failures = entry.requests, entry.failures
        ratio = failures / requests * 100 if requests else 0.0
        return (
            f"{_name(entry.method, entry.name):<{width}} {requests:>8} "
            f"{f'{failures}({ratio:.2f}%)':>14} | {_ms(entry.avg_ms):>7} {_ms(entry.min_ms):>7} "
            f"{_ms(entry.max_ms):>7} {_ms(entry.median_ms):>7} "
            f"| {entry.rps:>8.2f} {entry.failures_per_s:>11.2f}"
        )

    lines += [row(entry) for entry in entries]
    lines += [rule, row(_aggregated(total))]
    return "\n".join(lines)


def percentile_table(entries: Iterable[Entry], total: Entry) -> str:
    """Response time percentiles (ms) per request name and for all together."""
    entries = _rows(entries)
    width = _width(entries)
    head = f"{'Type     Name':<{width}} " + " ".join(f"{c + '%':>7}" for c in PERCENTILE_COLUMNS) + f" {'# reqs':>8}"
    rule = "-" * len(head)

    def row(entry: Entry) -> str:
        cells = " ".join(f"{_ms(entry.percentiles.get(c)):>7}" for c in PERCENTILE_COLUMNS)
        return f"{_name(entry.method, entry.name):<{width}} {cells} {entry.requests:>8}"

    lines = ["Response time percentiles (approximated, ms)", head, rule]
    lines += [row(entry) for entry in entries]
    lines += [rule, row(_aggregated(total))]
    return "\n".join(lines)


def error_report(errors: Iterable[Failure]) -> str:
    """Failures grouped by message, most frequent first; empty when there were none."""
    errors = sorted(errors, key=lambda e: -e.count)
    if not errors:
        return ""
    lines = ["Error report", f"{'# occurrences':>14}  Error", "-" * 80]
    for error in errors:
        where = f"{error.method} {error.name}".strip()
        lines.append(f"{error.count:>14}  {where}: {error.message}")
    return "\n".join(lines)


def summary(results: Results) -> str:
    """The end-of-run text: statistics, percentiles, errors, thresholds and the verdict."""
    entries, total = results.requests, results.total
    parts = [stats_table(entries, total), "", percentile_table(entries, total)]
    breakdown = timing_table(entries, total)
    if breakdown:
        parts += ["", breakdown]
    errors = error_report(results.errors)
    if errors:
        parts += ["", errors]
    retries = retry_line(entries, total)
    if retries:
        parts += ["", retries]
    protocols = protocol_line(entries, total)
    if protocols:
        parts += ["", protocols]
    if results.exceptions:
        parts += ["", "Exceptions inside users"]
        parts += [f"{e.count:>14}  {e.message}" for e in results.exceptions]
    transactions = results.transactions
    if transactions and transactions.entries:
        parts += ["", f"Transactions (think time excluded): {transactions.total.rps:.2f} per second"]
        parts += [stats_table(transactions.entries, transactions.total), ""]
        parts += [percentile_table(transactions.entries, transactions.total)]
    for point in results.rendezvous or []:
        releases = point.releases
        groups = ", ".join(f"{r.released} ({r.reason})" for r in releases[:8])
        more = f" … {len(releases) - 8} more" if len(releases) > 8 else ""
        parts += [
            "",
            f"Rendezvous {point.name} ({point.policy}): {point.arrivals} arrivals, "
            f"{len(releases)} release{'s' if len(releases) != 1 else ''}{': ' + groups + more if releases else ''}",
        ]
    for pool in results.pools or []:
        parts += [pool_line(pool)]
    if results.arrivals:
        parts += ["", _open_model(results.arrivals, results)]
    saturation = saturation_line(results.saturation)
    if saturation:
        parts += ["", saturation]
    if results.resources and results.resources.series:
        parts += ["", resource_summary(results.resources)]
    remote = remote_summary(results.remote)
    if remote:
        parts += ["", remote]
    resource_thresholds = results.resource_thresholds or []
    if results.thresholds or resource_thresholds:
        parts += ["", "Thresholds"]
        for verdict in results.thresholds:
            mark = "pass" if verdict.passed else "FAIL"
            scope = f" [{verdict.request}]" if verdict.request else ""
            parts.append(f"  {mark}  {verdict.expression}{scope}: {verdict.detail}")
        for rv in resource_thresholds:
            mark = "pass" if rv.passed else "FAIL" if rv.action == "abort" else "warn"
            parts.append(f"  {mark}  {rv.expression}: {rv.detail}")
        parts += breach_lines(results)
    users = users_line(results)
    if users:
        parts += ["", users]
    cut = interrupted_line(results)
    if cut:
        parts += ["", cut]
    if results.load_warnings:
        parts += ["", "Load not as planned"]
        parts += [f"  {w.kind}: {w.message}" for w in results.load_warnings]
    parts += ["", verdict_line(results)]
    return "\n".join(parts)


def users_line(results: Results) -> str:
    """Users that ran beside users asked; "" for a file without the counts."""
    users = results.user_counts
    if users is None:
        return ""
    asked = f" of {users.asked} asked" if users.asked is not None else ""
    started = f", {users.started} started in all" if users.started is not None else ""
    early = f", {users.ended_early} ended early" if users.ended_early else ""
    return f"Users: at most {users.peak} running at once{asked}{started}{early}"


def interrupted_line(results: Results) -> str:
    """Requests in flight when the run stopped (sent, their answers not counted); "" when there were none."""
    cut = results.interrupted
    if cut is None or not cut.total:
        return ""
    named = ", ".join(f"{r.method} {r.name} {r.count}".lstrip() for r in cut.requests[:8])
    more = f" … {len(cut.requests) - 8} more" if len(cut.requests) > 8 else ""
    return (
        f"Interrupted: {cut.total} requests were in flight when the run stopped (sent, not in the statistics; "
        f"--stop-timeout lets them finish): {named}{more}"
    )


def pool_line(pool: Pool) -> str:
    """A unique pool hands each row out once (per cycle); the others hand rows out as often as users ask."""
    dry = ", ran out of rows" if pool.dry else ""
    if pool.users_stopped:
        dry += f"; WARNING: {pool.users_stopped} user{'s' if pool.users_stopped != 1 else ''} stopped for lack of rows"
    if pool.waits:
        dry += f"; users waited for a row {pool.waits} time{'s' if pool.waits != 1 else ''} ({pool.wait_time:.1f}s)"
    rows, handed = pool.rows, pool.handed_out
    if pool.order == "unique":
        return f"Data pool {pool.name} (unique): {handed} of {rows} rows handed out{dry}"
    times = "time" if handed == 1 else "times"
    return f"Data pool {pool.name} ({pool.order}, {rows} rows): rows handed out {handed} {times}{dry}"


def _open_model(arrivals: Arrivals, results: Results) -> str:
    intended = results.from_intended_start.total.percentiles if results.from_intended_start else {}
    service = results.total.percentiles
    tolerance = arrivals.late_tolerance_ms
    lines = [
        "Open model",
        f"  arrivals: {arrivals.planned} planned, {arrivals.started} started, {arrivals.late} late "
        f"(over {_ms(tolerance)} ms; max {_ms(arrivals.max_late_ms)} ms), "
        f"{arrivals.waiting_at_end} still waiting at the end"
        + (f", {arrivals.dropped} never started" if arrivals.dropped is not None else ""),
    ]
    if arrivals.jitter_p50_ms is not None:
        lines.append(
            f"  start jitter (arrivals with a free slot): p50 {_ms(arrivals.jitter_p50_ms)} ms, "
            f"p99 {_ms(arrivals.jitter_p99_ms)} ms, max {_ms(arrivals.jitter_max_ms)} ms"
        )
    for q in ("50", "95", "99"):
        lines.append(
            f"  p{q}: {_ms(service.get(q))} ms service time, {_ms(intended.get(q))} ms from the intended start"
        )
    given = "late_for_slot" in arrivals.model_fields_set  # a file from before it existed: every late one waited
    waited = arrivals.late_for_slot if given else arrivals.late
    if waited and (given or tolerance is None):
        lines.append(
            f"  {waited} late arrivals waited for a free user slot (max_users): the system kept up less than planned"
        )
    if arrivals.late_by_lrun:
        lines.append(f"  {arrivals.late_by_lrun} late arrivals found a user slot free: lrun itself started them late")
    return "\n".join(lines)


def saturation_line(saturation: Saturation | None) -> str:
    """Whether lrun itself was the bottleneck, with the event loop's measured lag; empty when unknown."""
    if not saturation or saturation.loop_lag_p50_ms is None:
        return ""
    lag = (
        f"event loop lag p50 {_ms(saturation.loop_lag_p50_ms)} ms, p99 {_ms(saturation.loop_lag_p99_ms)} "
        f"ms, max {_ms(saturation.loop_lag_max_ms)} ms"
    )
    if not saturation.saturated:
        return f"Load generator: kept up ({lag})"
    reasons = "; ".join(saturation.reasons)
    return (
        f"Load generator: SATURATED ({lag}): {reasons}.\n"
        "  Response times include lrun's own waiting: give lrun a core of its own or spread the users (--processes)"
    )


def retry_line(entries: Iterable[Entry], total: Entry) -> str:
    """The requests sent again on a new connection (a kept-alive one found closed); empty where there were none."""
    if not total.retries:
        return ""
    named = [f"{e.method} {e.name} {e.retries}".lstrip() for e in entries if e.retries]
    return (
        f"Retries: {total.retries} requests sent again on a new connection, a kept-alive one found closed "
        f"(the server saw requests + retries): {', '.join(named)}"
    )


def protocol_line(entries: Iterable[Entry], total: Entry) -> str:
    """How many requests went over HTTP/2 and HTTP/1.1, where any went over HTTP/2; empty otherwise."""
    if not total.http2:
        return ""
    mixed = [f"{e.method} {e.name} {e.http2}/{e.requests}" for e in entries if 0 < e.http2 < e.requests]
    line = f"Protocols: HTTP/2 {total.http2} requests, HTTP/1.1 {total.requests - total.http2}"
    return line + (f" (HTTP/2 of all in: {', '.join(mixed)})" if mixed else "")


def _mib(value: float | None) -> str:
    return fmt_bytes(value, missing="N/A")


def _pct(value: float | None) -> str:
    return fmt_percent(value, missing="N/A")


def resource_summary(resources: Resources) -> str:
    """Peak CPU and memory of lrun, the machine and each monitored process."""
    peak = resources.peak
    last = resources.series[-1] if resources.series else None
    own_cpu, own_memory = _pct(peak.process_cpu_percent), _mib(peak.process_rss_bytes)
    lines = ["Resources (peak)", f"  lrun:    cpu {own_cpu} of a core, memory {own_memory}"]
    if peak.system_cpu_percent is not None:
        lines.append(
            f"  machine: cpu {_pct(peak.system_cpu_percent)} of {resources.cpu_count or '?'} cores, "
            f"memory {_mib(peak.system_memory_used_bytes)} of {_mib(last.system_memory_total_bytes if last else None)}"
        )
    for target in resources.targets:
        label = target.label or target.spec
        if not target.found:
            lines.append(f"  {label}: not found")
            continue
        values = peak.targets.get(target.spec) or TargetFigures()
        lines.append(f"  {label}: cpu {_pct(values.cpu_percent)} of a core, memory {_mib(values.rss_bytes)}")
    return "\n".join(lines)


def remote_summary(remote: Remote | None) -> str:
    """Peak figures of the monitored servers (``monitor.hosts``) and queries (``monitor.prometheus``); "" if none."""
    if not remote:
        return ""
    lines = []
    for host in remote.hosts:
        values = remote.peak.hosts.get(host.name) or {}
        if not host.scrapes:
            lines.append(f"  {host.name}: no data ({host.last_error or 'never answered'})")
            continue
        load = values.get("load1")
        lines.append(
            f"  {host.name}: cpu {_pct(values.get('cpu_percent'))}, memory {_mib(values.get('memory_used_bytes'))}"
            f" of {_mib(values.get('memory_total_bytes'))}, load {'N/A' if load is None else f'{load:.2f}'}"
        )
    for query in remote.queries:
        value = remote.peak.queries.get(query.name)
        lines.append(f"  {query.name}: {'no data' if value is None else f'{value:g}'}")
    return "\n".join(["Monitored servers (peak)", *lines]) if lines else ""


def verdict_line(results: Results) -> str:
    """PASSED or FAILED, and what went wrong with the load itself ("PASSED with warnings: …")."""
    total = results.total
    state = "PASSED" if results.passed else "FAILED"
    noted = results.load_warnings or []
    if noted:
        more = f" (and {len(noted) - 2} more)" if len(noted) > 2 else ""
        state += " with warnings: " + "; ".join(w.message for w in noted[:2]) + more + " —"
    else:
        state += ":"
    return (
        f"{state} {total.requests} requests, {total.failures} failed, {total.rps:.1f} req/s over "
        f"{results.duration_s:.1f}s ({results.stop_reason}); exit code {results.exit_code}"
    )


def progress_line(
    elapsed: float,
    run_time: float | None,
    users: int,
    rps: float,
    failure_ratio: float,
    *,
    resources: Mapping[str, Any] | None = None,
    asked: int | None = None,
) -> str:
    """One line for a terminal: elapsed / run time, users (of those asked), current req/s, errors, lrun's CPU
    and memory."""

    limit = f"/{clock(run_time)}" if run_time else ""
    of = f"/{asked}" if asked is not None and asked != users else ""
    line = f"{clock(elapsed)}{limit}  users {users}{of}  {rps:.1f} req/s  errors {failure_ratio * 100:.2f}%"
    if resources:
        cpu, rss = resources.get("process_cpu_percent"), resources.get("process_rss_bytes")
        if cpu is not None:
            line += f"  lrun cpu {cpu:.0f}%"
        if rss is not None:
            line += f" mem {fmt_bytes(rss)}"
        machine = resources.get("system_cpu_percent")
        if machine is not None:
            line += f"  machine cpu {machine:.0f}%"
    return line
