"""Checkpoint verdicts of one run: passed and failed counts per (method, name, checkpoint).

The compiled scenario names its checkpoints (``CompiledScenario.checkpoints``); a request closure bumps the
counters at its checkpoints' slots. A worker sends ``deltas()``; the master ``merge``s them, like transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runner.report.model import CheckCount

CheckKey = tuple[str, str, str]  # (method, request name, checkpoint description)


class CheckStats:
    def __init__(self, keys: Sequence[CheckKey] = ()) -> None:
        self.keys = list(keys)
        self.counts: list[list[int]] = [[0, 0] for _ in self.keys]  # [passed, failed] by checkpoint slot
        self._sent: list[list[int]] = [[0, 0] for _ in self.keys]  # counts already reported to a master
        self._merged: dict[CheckKey, list[int]] = {}  # from workers

    def results(self) -> list[CheckCount]:
        """Verdicts by request and checkpoint (this process's and the workers'), for the results."""
        merged = {k: list(v) for k, v in self._merged.items()}
        for key, (passed, failed) in zip(self.keys, self.counts, strict=True):
            counts = merged.setdefault(key, [0, 0])
            counts[0] += passed
            counts[1] += failed
        return [
            CheckCount(method=m, name=n, check=c, passed=ok, failed=bad)
            for (m, n, c), (ok, bad) in merged.items()
            if ok or bad
        ]

    def deltas(self) -> list[list[Any]]:
        """Verdicts since the last call, as ``[method, name, check, passed, failed]`` rows (a worker's report)."""
        rows = []
        for key, counts, sent in zip(self.keys, self.counts, self._sent, strict=True):
            passed, failed = counts[0] - sent[0], counts[1] - sent[1]
            if passed or failed:
                rows.append([*key, passed, failed])
                sent[:] = counts
        return rows

    def merge(self, rows: list[list[Any]]) -> None:
        """Add a worker's ``deltas``."""
        for method, name, check, passed, failed in rows:
            counts = self._merged.setdefault((str(method), str(name), str(check)), [0, 0])
            counts[0] += int(passed)
            counts[1] += int(failed)


class _Scratch:
    """Counters nobody reads: a user outside a run (debug, a test's runtime) counts its verdicts here."""

    def __getitem__(self, slot: int) -> list[int]:
        return [0, 0]


SCRATCH: Any = _Scratch()
