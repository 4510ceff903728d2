"""Console output a Locust user recognises: the statistics table, the percentile table, the error report.

Everything here renders plain dicts shaped like the results (``runner.report.results``): the same code prints
the live tables during a run and the summary at the end, and never touches a runner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

PERCENTILE_COLUMNS = ("50", "66", "75", "80", "90", "95", "98", "99", "99.9", "99.99", "100")
NAME_WIDTH = 60


def _ms(value: float | None) -> str:
    if value is None:
        return "N/A"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def _name(method: str, name: str) -> str:
    text = f"{method:<8} {name}" if method else f"{'':<8} {name}"
    return text if len(text) <= NAME_WIDTH + 9 else text[: NAME_WIDTH + 6] + "..."


def _width(entries: list[Mapping[str, Any]]) -> int:
    """The name column fits the longest name (between 24 and NAME_WIDTH + 9 characters)."""
    longest = max((len(_name(e.get("method") or "", e["name"])) for e in entries), default=0)
    return min(max(longest, 24), NAME_WIDTH + 9)


def _rows(entries: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(entries, key=lambda e: (e.get("type", "request") != "request", e["name"], e.get("method") or ""))


def stats_table(entries: Iterable[Mapping[str, Any]], total: Mapping[str, Any], *, rps_key: str = "rps") -> str:
    """Type, name, requests, fails, avg, min, max, median, req/s, failures/s — one row per request name."""
    entries = _rows(entries)
    width = _width(entries)
    head = (
        f"{'Type     Name':<{width}} {'# reqs':>8} {'# fails':>14} | {'Avg':>7} {'Min':>7} {'Max':>7} {'Med':>7} "
        f"| {'req/s':>8} {'failures/s':>11}"
    )
    rule = "-" * len(head)
    lines = [head, rule]

    def row(entry: Mapping[str, Any]) -> str:
        requests, failures = entry.get("requests", 0), entry.get("failures", 0)
        ratio = failures / requests * 100 if requests else 0.0
        return (
            f"{_name(entry.get('method') or '', entry['name']):<{width}} {requests:>8} "
            f"{f'{failures}({ratio:.2f}%)':>14} | {_ms(entry.get('avg_ms')):>7} {_ms(entry.get('min_ms')):>7} "
            f"{_ms(entry.get('max_ms')):>7} {_ms(entry.get('median_ms')):>7} "
            f"| {entry.get(rps_key) or 0:>8.2f} {entry.get('failures_per_s') or 0:>11.2f}"
        )

    lines += [row(entry) for entry in entries]
    lines += [rule, row({**total, "method": "", "name": "Aggregated"})]
    return "\n".join(lines)


def percentile_table(entries: Iterable[Mapping[str, Any]], total: Mapping[str, Any]) -> str:
    """Response time percentiles (ms) per request name and for all together."""
    entries = _rows(entries)
    width = _width(entries)
    head = f"{'Type     Name':<{width}} " + " ".join(f"{c + '%':>7}" for c in PERCENTILE_COLUMNS) + f" {'# reqs':>8}"
    rule = "-" * len(head)

    def row(entry: Mapping[str, Any]) -> str:
        values = entry.get("percentiles") or {}
        cells = " ".join(f"{_ms(values.get(c)):>7}" for c in PERCENTILE_COLUMNS)
        return f"{_name(entry.get('method') or '', entry['name']):<{width}} {cells} {entry.get('requests', 0):>8}"

    lines = ["Response time percentiles (approximated, ms)", head, rule]
    lines += [row(entry) for entry in entries]
    lines += [rule, row({**total, "method": "", "name": "Aggregated"})]
    return "\n".join(lines)


def error_report(errors: Iterable[Mapping[str, Any]]) -> str:
    """Failures grouped by message, most frequent first; empty when there were none."""
    errors = sorted(errors, key=lambda e: -e.get("count", 0))
    if not errors:
        return ""
    lines = ["Error report", f"{'# occurrences':>14}  Error", "-" * 80]
    for error in errors:
        where = f"{error.get('method') or ''} {error.get('name') or ''}".strip()
        lines.append(f"{error.get('count', 0):>14}  {where}: {error.get('message', '')}")
    return "\n".join(lines)


def summary(results: Mapping[str, Any]) -> str:
    """The end-of-run text: statistics, percentiles, errors, thresholds and the verdict."""
    entries = results.get("requests") or []
    total = results.get("total") or {"name": "Aggregated", "requests": 0}
    parts = [stats_table(entries, total), "", percentile_table(entries, total)]
    errors = error_report(results.get("errors") or [])
    if errors:
        parts += ["", errors]
    retries = retry_line(entries, total)
    if retries:
        parts += ["", retries]
    exceptions = results.get("exceptions") or []
    if exceptions:
        parts += ["", "Exceptions inside users"]
        parts += [f"{e.get('count', 0):>14}  {e.get('message', '')}" for e in exceptions]
    transactions = results.get("transactions") or {}
    if transactions.get("entries"):
        tps = transactions["total"].get("rps") or 0.0
        parts += ["", f"Transactions (think time excluded): {tps:.2f} per second"]
        parts += [stats_table(transactions["entries"], transactions["total"]), ""]
        parts += [percentile_table(transactions["entries"], transactions["total"])]
    for point in results.get("rendezvous") or []:
        releases = point["releases"]
        groups = ", ".join(f"{r['released']} ({r['reason']})" for r in releases[:8])
        more = f" … {len(releases) - 8} more" if len(releases) > 8 else ""
        parts += [
            "",
            f"Rendezvous {point['name']} ({point['policy']}): {point['arrivals']} arrivals, "
            f"{len(releases)} release{'s' if len(releases) != 1 else ''}{': ' + groups + more if releases else ''}",
        ]
    for pool in results.get("pools") or []:
        parts += [pool_line(pool)]
    arrivals = results.get("arrivals")
    if arrivals:
        parts += ["", _open_model(arrivals, results)]
    saturation = saturation_line(results.get("saturation"))
    if saturation:
        parts += ["", saturation]
    resources = results.get("resources")
    if resources and resources.get("series"):
        parts += ["", resource_summary(resources)]
    remote = remote_summary(results.get("remote"))
    if remote:
        parts += ["", remote]
    thresholds = results.get("thresholds") or []
    resource_thresholds = results.get("resource_thresholds") or []
    if thresholds or resource_thresholds:
        parts += ["", "Thresholds"]
        for verdict in thresholds:
            mark = "pass" if verdict["passed"] else "FAIL"
            scope = f" [{verdict['request']}]" if verdict.get("request") else ""
            parts.append(f"  {mark}  {verdict['expression']}{scope}: {verdict.get('detail', '')}")
        for verdict in resource_thresholds:
            mark = "pass" if verdict["passed"] else "FAIL" if verdict.get("action") == "abort" else "warn"
            parts.append(f"  {mark}  {verdict['expression']}: {verdict.get('detail', '')}")
    parts += ["", verdict_line(results)]
    return "\n".join(parts)


def pool_line(pool: Mapping[str, Any]) -> str:
    """A unique pool hands each row out once (per cycle); the others hand rows out as often as users ask."""
    dry = ", ran out of rows" if pool.get("dry") else ""
    rows, handed = pool.get("rows", 0), pool.get("handed_out", 0)
    if pool.get("order") == "unique":
        return f"Data pool {pool['name']} (unique): {handed} of {rows} rows handed out{dry}"
    times = "time" if handed == 1 else "times"
    return f"Data pool {pool['name']} ({pool.get('order')}, {rows} rows): rows handed out {handed} {times}{dry}"


def _open_model(arrivals: Mapping[str, Any], results: Mapping[str, Any]) -> str:
    intended = (results.get("from_intended_start") or {}).get("total") or {}
    service = (results.get("total") or {}).get("percentiles") or {}
    tolerance = arrivals.get("late_tolerance_ms")
    lines = [
        "Open model",
        f"  arrivals: {arrivals['planned']} planned, {arrivals['started']} started, {arrivals['late']} late "
        f"(over {_ms(tolerance)} ms; max {_ms(arrivals['max_late_ms'])} ms), "
        f"{arrivals['waiting_at_end']} still waiting at the end",
    ]
    if arrivals.get("jitter_p50_ms") is not None:
        lines.append(
            f"  start jitter (arrivals with a free slot): p50 {_ms(arrivals['jitter_p50_ms'])} ms, "
            f"p99 {_ms(arrivals.get('jitter_p99_ms'))} ms, max {_ms(arrivals.get('jitter_max_ms'))} ms"
        )
    for q in ("50", "95", "99"):
        measured = (intended.get("percentiles") or {}).get(q)
        lines.append(f"  p{q}: {_ms(service.get(q))} ms service time, {_ms(measured)} ms from the intended start")
    if arrivals.get("late_for_slot", arrivals["late"] if tolerance is None else 0):
        lines.append(
            f"  {arrivals.get('late_for_slot', arrivals['late'])} late arrivals waited for a free user slot "
            "(max_users): the system kept up less than planned"
        )
    if arrivals.get("late_by_lrun"):
        lines.append(
            f"  {arrivals['late_by_lrun']} late arrivals found a user slot free: lrun itself started them late"
        )
    return "\n".join(lines)


def saturation_line(saturation: Mapping[str, Any] | None) -> str:
    """Whether lrun itself was the bottleneck, with the event loop's measured lag; empty when unknown."""
    if not saturation or saturation.get("loop_lag_p50_ms") is None:
        return ""
    lag = (
        f"event loop lag p50 {_ms(saturation['loop_lag_p50_ms'])} ms, p99 {_ms(saturation.get('loop_lag_p99_ms'))} "
        f"ms, max {_ms(saturation.get('loop_lag_max_ms'))} ms"
    )
    if not saturation.get("saturated"):
        return f"Load generator: kept up ({lag})"
    reasons = "; ".join(saturation.get("reasons") or [])
    return (
        f"Load generator: SATURATED ({lag}): {reasons}.\n"
        "  Response times include lrun's own waiting: give lrun a core of its own or spread the users (--processes)"
    )


def retry_line(entries: Iterable[Mapping[str, Any]], total: Mapping[str, Any]) -> str:
    """The requests sent again on a new connection (a kept-alive one found closed); empty where there were none."""
    if not total.get("retries"):
        return ""
    named = [f"{e.get('method') or ''} {e['name']} {e['retries']}".lstrip() for e in entries if e.get("retries")]
    return (
        f"Retries: {total['retries']} requests sent again on a new connection, a kept-alive one found closed "
        f"(the server saw requests + retries): {', '.join(named)}"
    )


def _mib(value: float | None) -> str:
    return "N/A" if value is None else f"{value / 2**20:.0f} MiB"


def _pct(value: float | None) -> str:
    return "N/A" if value is None else f"{value:.0f}%"


def resource_summary(resources: Mapping[str, Any]) -> str:
    """Peak CPU and memory of lrun, the machine and each monitored process."""
    peak = resources.get("peak") or {}
    last = (resources.get("series") or [{}])[-1]
    own_cpu, own_memory = _pct(peak.get("process_cpu_percent")), _mib(peak.get("process_rss_bytes"))
    lines = ["Resources (peak)", f"  lrun:    cpu {own_cpu} of a core, memory {own_memory}"]
    if peak.get("system_cpu_percent") is not None:
        lines.append(
            f"  machine: cpu {_pct(peak.get('system_cpu_percent'))} of {resources.get('cpu_count') or '?'} cores, "
            f"memory {_mib(peak.get('system_memory_used_bytes'))} of {_mib(last.get('system_memory_total_bytes'))}"
        )
    for target in resources.get("targets") or []:
        values = (peak.get("targets") or {}).get(target["spec"]) or {}
        if not target.get("found"):
            lines.append(f"  {target.get('label') or target['spec']}: not found")
            continue
        lines.append(
            f"  {target.get('label') or target['spec']}: cpu {_pct(values.get('cpu_percent'))} of a core, "
            f"memory {_mib(values.get('rss_bytes'))}"
        )
    return "\n".join(lines)


def remote_summary(remote: Mapping[str, Any] | None) -> str:
    """Peak figures of the monitored servers (``monitor.hosts``) and queries (``monitor.prometheus``); "" if none."""
    if not remote:
        return ""
    peak = remote.get("peak") or {}
    lines = []
    for host in remote.get("hosts") or []:
        values = (peak.get("hosts") or {}).get(host["name"]) or {}
        if not host.get("scrapes"):
            lines.append(f"  {host['name']}: no data ({host.get('last_error') or 'never answered'})")
            continue
        load = values.get("load1")
        lines.append(
            f"  {host['name']}: cpu {_pct(values.get('cpu_percent'))}, memory {_mib(values.get('memory_used_bytes'))}"
            f" of {_mib(values.get('memory_total_bytes'))}, load {'N/A' if load is None else f'{load:.2f}'}"
        )
    for query in remote.get("queries") or []:
        value = (peak.get("queries") or {}).get(query["name"])
        lines.append(f"  {query['name']}: {'no data' if value is None else f'{value:g}'}")
    return "\n".join(["Monitored servers (peak)", *lines]) if lines else ""


def verdict_line(results: Mapping[str, Any]) -> str:
    total = results.get("total") or {}
    requests, failures = total.get("requests", 0), total.get("failures", 0)
    state = "PASSED" if results.get("passed") else "FAILED"
    duration = results.get("duration_s", 0.0)
    return (
        f"{state}: {requests} requests, {failures} failed, {total.get('rps') or 0:.1f} req/s over {duration:.1f}s"
        f" ({results.get('stop_reason', '')}); exit code {results.get('exit_code', 0)}"
    )


def progress_line(
    elapsed: float,
    run_time: float | None,
    users: int,
    rps: float,
    failure_ratio: float,
    *,
    resources: Mapping[str, Any] | None = None,
) -> str:
    """One line for a terminal: elapsed / run time, users, current req/s, errors, lrun's CPU and memory."""

    def clock(seconds: float) -> str:
        minutes, secs = divmod(int(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"

    limit = f"/{clock(run_time)}" if run_time else ""
    line = f"{clock(elapsed)}{limit}  users {users}  {rps:.1f} req/s  errors {failure_ratio * 100:.2f}%"
    if resources:
        cpu, rss = resources.get("process_cpu_percent"), resources.get("process_rss_bytes")
        if cpu is not None:
            line += f"  lrun cpu {cpu:.0f}%"
        if rss is not None:
            line += f" mem {rss / 2**20:.0f} MiB"
        machine = resources.get("system_cpu_percent")
        if machine is not None:
            line += f"  machine cpu {machine:.0f}%"
    return line
