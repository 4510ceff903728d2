"""The results of a run: one ``model.Results``, built once (``build_results``), written as JSON (``--json FILE``)
and read back validated (``read_json``) by every report and CI check.

What each key means, its unit and when it is null is documented once, by the models' field descriptions in
``runner.report.model``, and so in ``schemas/results.schema.json`` (``lrun schema --results``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
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
    from runner.stats import RequestStats, Snapshot

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
    snapshot: Snapshot


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
    is its dump (each key described in ``runner.report.model``). ``measured`` is ``measure(stats, start, end)`` when
    the caller judged thresholds on it first."""
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
        "total": snapshot.total,
        "requests": snapshot.requests,
        "series": snapshot.series,
        "errors": snapshot.errors,
        "exceptions": snapshot.exceptions,
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


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')  # JSON strings, escapes included


def _ends_early(text: str) -> bool:
    """The text stops inside a string, an object or an array: the start of a JSON document, cut (``"p95": 12.``
    fails on the cut number, not at the end)."""
    outside = _STRINGS.sub("", text)
    return '"' in outside or outside.count("{") + outside.count("[") > outside.count("}") + outside.count("]")


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
        truncated = exc.pos >= len(text.rstrip()) or _ends_early(text)
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
