"""Top errors per request: for each request that failed, its failure rate and its most frequent messages, with
when its failures were first and last seen (the flat failures table lists every group; this reads per request)."""

from __future__ import annotations

from typing import Any

from runner.report.model import Failure, Results

TOP = 3  # messages shown per request


def top_errors(results: Results) -> list[dict[str, Any]]:
    """One row per failing request, most failures first: its counts, top messages and first/last seen."""
    groups: dict[str, list[Failure]] = {}
    for failure in results.errors:
        groups.setdefault(f"{failure.method} {failure.name}".strip(), []).append(failure)
    requests = {f"{e.method} {e.name}".strip(): e for e in results.requests}
    rows = []
    for label, failures in groups.items():
        failed = sum(f.count for f in failures)
        entry = requests.get(label)
        firsts = [f.first_seen for f in failures if f.first_seen is not None]
        lasts = [f.last_seen for f in failures if f.last_seen is not None]
        ranked = sorted(failures, key=lambda f: (-f.count, f.message))
        rows.append(
            {
                "request": label,
                "failed": failed,
                "ratio": failed / entry.requests if entry and entry.requests else None,
                "top": [(f.message, f.count, f.count / failed if failed else 0.0) for f in ranked[:TOP]],
                "more": len(ranked) - TOP if len(ranked) > TOP else 0,
                "first_seen": min(firsts) if firsts else None,
                "last_seen": max(lasts) if lasts else None,
            }
        )
    return sorted(rows, key=lambda r: (-r["failed"], r["request"]))
