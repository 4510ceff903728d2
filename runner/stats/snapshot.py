"""The statistics so far, typed: what ``RequestStats.snapshot`` hands out and thresholds read.

The entries are the results' own models (``runner.report.model``), validated once when the snapshot is made, so a
reader gets attributes, not dict keys, and the results take them as they are (same keys set, same JSON).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from runner.report.model import Arrivals, Entry, ExceptionGroup, Failure, Point, Transactions

_ENTRIES = TypeAdapter(list[Entry])
_POINTS = TypeAdapter(list[Point])
_FAILURES = TypeAdapter(list[Failure])
_EXCEPTIONS = TypeAdapter(list[ExceptionGroup])


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The "total", "requests", "series", "errors" and "exceptions" parts of the results; ``transactions`` and
    ``arrivals`` are the other figures a threshold may read (set by whoever has them: ``live.assemble``)."""

    total: Entry
    requests: list[Entry]
    series: list[Point]
    errors: list[Failure]
    exceptions: list[ExceptionGroup]
    transactions: Transactions | None = None
    arrivals: Arrivals | None = None

    @classmethod
    def of(cls, data: dict[str, Any]) -> Snapshot:
        """From the plain parts ``RequestStats`` computes."""
        return cls(
            total=Entry.model_validate(data["total"]),
            requests=_ENTRIES.validate_python(data["requests"]),
            series=_POINTS.validate_python(data["series"]),
            errors=_FAILURES.validate_python(data["errors"]),
            exceptions=_EXCEPTIONS.validate_python(data["exceptions"]),
        )

    @classmethod
    def of_results(cls, results: dict[str, Any]) -> Snapshot:
        """What thresholds read of a results document as the JSON file holds it (``lrun capacity`` judges its steps
        so): its entries, transactions and arrivals; the series, errors and exceptions are left empty."""
        transactions, arrivals = results.get("transactions"), results.get("arrivals")
        return cls(
            total=Entry.model_validate(results["total"]),
            requests=_ENTRIES.validate_python(results.get("requests") or []),
            series=[],
            errors=[],
            exceptions=[],
            transactions=Transactions.model_validate(transactions) if transactions is not None else None,
            arrivals=Arrivals.model_validate(arrivals) if arrivals is not None else None,
        )
