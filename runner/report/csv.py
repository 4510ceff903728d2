"""CSV files in Locust's layout (``--csv PREFIX``), so existing spreadsheets and scripts keep working.

Written from the results dict at the end of a run: ``PREFIX_stats.csv``, ``PREFIX_stats_history.csv``,
``PREFIX_failures.csv`` and ``PREFIX_exceptions.csv``, with Locust's headers, column order, row order (the
"Aggregated" row last) and number formats: counts and percentiles as integers, times and sizes as decimals,
history rates with six decimals, ``N/A`` for the percentiles of an entry without requests.

Where the values differ from Locust's, it is on purpose:

- the history's Requests/s, Failures/s and percentiles are those of the point's interval (a second, longer in
  long runs), the same with or without full history; Locust shows a 10 s moving average and, without full
  history, cumulative percentiles;
- percentiles come from histograms with 3 significant digits (Locust keeps 2) and are rounded to whole ms;
- the exceptions' Message is ``Type: message`` (Locust writes the message alone).
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from runner.errors import LrunError

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


def _int(value: float | None) -> int:
    return 0 if value is None else round(value)


def _percentiles(percentiles: dict[str, float | None] | None, requests: int) -> list[str | int]:
    """Locust: N/A for an entry without requests, else whole milliseconds (0 for an empty interval)."""
    if not requests:
        return ["N/A"] * len(PERCENTILE_KEYS)
    percentiles = percentiles or {}
    return [_int(percentiles.get(key)) for key in PERCENTILE_KEYS]


def stats_rows(results: dict[str, Any]) -> list[Row]:
    """``PREFIX_stats.csv`` rows, header first."""
    rows: list[Row] = [STATS_COLUMNS]
    total = {**results["total"], "method": "", "name": "Aggregated"}
    for entry in [*results.get("requests", []), total]:
        requests = entry.get("requests", 0)
        rows.append(
            [
                entry.get("method") or "",
                entry.get("name", ""),
                requests,
                entry.get("failures", 0),
                _int(entry.get("median_ms")),
                entry.get("avg_ms") or 0.0,
                entry.get("min_ms") or 0,
                entry.get("max_ms") or 0,
                entry.get("avg_bytes") or 0,
                entry.get("rps") or 0.0,
                entry.get("failures_per_s") or 0.0,
                *_percentiles(entry.get("percentiles"), requests),
            ]
        )
    return rows


def _history_row(point: dict[str, Any], users: int, method: str, name: str) -> Row:
    total_requests = point.get("total_requests", 0)
    return [
        point["t"],
        users,
        method,
        name,
        f"{point.get('rps') or 0.0:2f}",  # sic: Locust's format, six decimals
        f"{point.get('failures_per_s') or 0.0:2f}",
        *_percentiles(point.get("percentiles"), total_requests),
        total_requests,
        point.get("total_failures", 0),
        _int(point.get("total_median_ms")),
        point.get("total_avg_ms") or 0.0,
        point.get("total_min_ms") or 0,
        point.get("total_max_ms") or 0,
        point.get("total_avg_bytes") or 0,
    ]


def history_rows(results: dict[str, Any], full_history: bool = False) -> list[Row]:
    """``PREFIX_stats_history.csv`` rows: per point, each entry's row (with ``full_history``), then Aggregated.

    Entry rows need the entries' series in the results (``RequestStats(full_history=True)``); without them,
    only the Aggregated rows are written.
    """
    rows: list[Row] = [HISTORY_COLUMNS]
    entries: list[tuple[str, str, dict[int, dict[str, Any]]]] = []
    if full_history:
        for entry in results.get("requests", []):
            points = {point["t"]: point for point in entry.get("series") or []}
            entries.append((entry.get("method") or "", entry.get("name", ""), points))
    for point in results.get("series", []):
        users = point.get("users", 0)
        for method, name, points in entries:
            own = points.get(point["t"])
            if own is not None:
                rows.append(_history_row(own, users, method, name))
        rows.append(_history_row(point, users, "", "Aggregated"))
    return rows


def failure_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = [FAILURES_COLUMNS]
    for group in results.get("errors", []):
        rows.append([group.get("method", ""), group.get("name", ""), group.get("message", ""), group.get("count", 0)])
    return rows


def exception_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = [EXCEPTIONS_COLUMNS]
    for group in results.get("exceptions", []):
        kind, message = group.get("type", ""), group.get("message", "")
        text = f"{kind}: {message}" if kind and message else kind or message
        nodes = ", ".join(group.get("nodes", []))
        rows.append([group.get("count", 0), text, group.get("traceback", ""), nodes])
    return rows


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


def write_csv(results: dict[str, Any], prefix: str, full_history: bool = False) -> list[Path]:
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
