"""CSV files in Locust's layout (``--csv PREFIX``), so existing spreadsheets and scripts keep working.

Written from the results (``runner.report.model.Results``) at the end of a run: ``PREFIX_stats.csv``,
``PREFIX_stats_history.csv``, ``PREFIX_failures.csv`` and ``PREFIX_exceptions.csv``, with Locust's headers, column
order, row order (the "Aggregated" row last) and number formats: counts and percentiles as integers, times and sizes
as decimals, history rates with six decimals, ``N/A`` for the percentiles of an entry without requests.

Where the values differ from Locust's, it is on purpose:

- the history's Requests/s, Failures/s and percentiles are those of the point's interval (a second, longer in
  long runs), the same with or without full history; Locust shows a 10 s moving average and, without full
  history, cumulative percentiles;
- percentiles come from histograms with 3 significant digits (Locust keeps 2) and are rounded to whole ms;
- the exceptions' Message is ``Type: message`` (Locust writes the message alone);
- a text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (a request name, an error
  message) gets a leading ``'``, OWASP's rule against CSV injection: a spreadsheet shows it as text instead of
  running it as a formula. Numbers are written as they are.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from runner.errors import LrunError
from runner.report.model import Point, Results

PERCENTILE_KEYS = ("50", "66", "75", "80", "90", "95", "98", "99", "99.9", "99.99", "100")
PERCENTILE_HEADERS = [f"{key}%" for key in PERCENTILE_KEYS]
STATS_COLUMNS = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    *PERCENTILE_HEADERS,
]
HISTORY_COLUMNS = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    *PERCENTILE_HEADERS,
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
]
FAILURES_COLUMNS = ["Method", "Name", "Error", "Occurrences"]
EXCEPTIONS_COLUMNS = ["Count", "Message", "Traceback", "Nodes"]

Row = Sequence[str | int | float]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: str | int | float) -> str | int | float:
    """A text cell a spreadsheet would run as a formula, as text (OWASP: a leading ``'``)."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def _safe(rows: list[Row]) -> list[Row]:
    return [[cell(value) for value in row] for row in rows]


def _int(value: float | None) -> int:
    return 0 if value is None else round(value)


def _percentiles(percentiles: dict[str, float | None], requests: int) -> list[str | int]:
    """Locust: N/A for an entry without requests, else whole milliseconds (0 for an empty interval)."""
    if not requests:
        return ["N/A"] * len(PERCENTILE_KEYS)
    return [_int(percentiles.get(key)) for key in PERCENTILE_KEYS]


def stats_rows(results: Results) -> list[Row]:
    """``PREFIX_stats.csv`` rows, header first."""
    rows: list[Row] = [STATS_COLUMNS]
    total = results.total.model_copy(update={"method": "", "name": "Aggregated"})
    for entry in [*results.requests, total]:
        rows.append(
            [
                entry.method,
                entry.name,
                entry.requests,
                entry.failures,
                _int(entry.median_ms),
                entry.avg_ms or 0.0,
                entry.min_ms or 0,
                entry.max_ms or 0,
                entry.avg_bytes or 0,
                entry.rps or 0.0,
                entry.failures_per_s or 0.0,
                *_percentiles(entry.percentiles, entry.requests),
            ]
        )
    return _safe(rows)


def _history_row(point: Point, users: int, method: str, name: str) -> Row:
    return [
        point.t,
        users,
        method,
        name,
        f"{point.rps:2f}",  # sic: Locust's format, six decimals
        f"{point.failures_per_s:2f}",
        *_percentiles(point.percentiles, point.total_requests),
        point.total_requests,
        point.total_failures,
        _int(point.total_median_ms),
        point.total_avg_ms or 0.0,
        point.total_min_ms or 0,
        point.total_max_ms or 0,
        point.total_avg_bytes or 0,
    ]


def history_rows(results: Results, full_history: bool = False) -> list[Row]:
    """``PREFIX_stats_history.csv`` rows: per point, each entry's row (with ``full_history``), then Aggregated.

    Entry rows need the entries' series in the results (``RequestStats(full_history=True)``); without them,
    only the Aggregated rows are written.
    """
    rows: list[Row] = [HISTORY_COLUMNS]
    entries: list[tuple[str, str, dict[float, Point]]] = []
    if full_history:
        for entry in results.requests:
            points = {point.t: point for point in entry.series or []}
            entries.append((entry.method, entry.name, points))
    for point in results.series:
        for method, name, points in entries:
            own = points.get(point.t)
            if own is not None:
                rows.append(_history_row(own, point.users, method, name))
        rows.append(_history_row(point, point.users, "", "Aggregated"))
    return _safe(rows)


def failure_rows(results: Results) -> list[Row]:
    rows: list[Row] = [FAILURES_COLUMNS]
    rows += [[group.method, group.name, group.message, group.count] for group in results.errors]
    return _safe(rows)


def exception_rows(results: Results) -> list[Row]:
    rows: list[Row] = [EXCEPTIONS_COLUMNS]
    for group in results.exceptions:
        kind, message = group.type, group.message
        text = f"{kind}: {message}" if kind and message else kind or message
        rows.append([group.count, text, group.traceback, ", ".join(group.nodes)])
    return _safe(rows)


def _write(path: Path, rows: Iterable[Row]) -> None:
    """Write atomically (a temp file renamed over ``path``); Locust's dialect: ``excel``, CRLF line ends."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            csv.writer(out).writerows(rows)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temp, 0o666 & ~mask)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def write_csv(results: Results, prefix: str, full_history: bool = False) -> list[Path]:
    """Write the four CSV files for ``results``; returns their paths. ``LrunError`` when they cannot be written."""
    files = {
        Path(f"{prefix}_stats.csv"): stats_rows(results),
        Path(f"{prefix}_stats_history.csv"): history_rows(results, full_history),
        Path(f"{prefix}_failures.csv"): failure_rows(results),
        Path(f"{prefix}_exceptions.csv"): exception_rows(results),
    }
    for path, rows in files.items():
        try:
            _write(path, rows)
        except OSError as exc:
            raise LrunError(f"cannot write {path}: {exc.strerror or exc}") from None
    return list(files)
