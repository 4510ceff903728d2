"""``--jsonl FILE``: the run's per-second samples as JSON lines, written while it runs.

A line a second, flushed as it is written (``tail -f`` or a log shipper follows the test live)::

    {"t": 1767225600.0, "users": 20, "requests": 118, "failures": 0, "rps": 117.2, "p50_ms": 4.1, "p95_ms": 9.8,
     "total_requests": 2301, "total_failures": 3}

``requests`` and ``failures`` are those counted since the line before, so the lines add up to the results'
totals: the last line (``"final": true``) is written at the end from the results, with what the last moments
added. ``rps`` and the percentiles are over the last seconds, as the console shows them. A distributed run's
master writes the cluster's figures, a report interval late.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from runner.errors import RunError
from runner.outputs.handler import Output

if TYPE_CHECKING:
    from runner.config import RunSettings
    from runner.live.view import LiveView
    from runner.report.model import Results


class JsonLinesOutput(Output):
    setting, option = "jsonl", "--jsonl"

    def __init__(self, path: str) -> None:
        self.path = path
        self.file: IO[str] | None = None
        self.requests = 0  # counted so far, in the lines written
        self.failures = 0

    @classmethod
    def of(cls, settings: RunSettings) -> Output | None:
        return cls(settings.jsonl) if settings.jsonl else None

    def start(self, view: LiveView) -> None:
        try:
            self.file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (open for the run, closed by stop)
        except OSError as exc:
            raise RunError(f"--jsonl {self.path}: cannot write: {exc.strerror or exc}") from None

    def tick(self, view: LiveView, now: float) -> None:
        then = now - view.lag
        total = view.total
        p50, p95 = total.current_percentile(50, then), total.current_percentile(95, then)
        self._line(
            {"t": round(then, 3), "users": view.users},
            total.num_requests,
            total.num_failures,
            {
                "rps": round(total.current_rps(then), 3),
                "p50_ms": None if p50 is None else round(p50, 3),
                "p95_ms": None if p95 is None else round(p95, 3),
            },
        )

    def finish(self, results: Results, files: Sequence[str]) -> None:
        total = results.total
        self._line({"t": results.series[-1].t if results.series else None, "final": True}, total.requests,
                   total.failures, {})  # fmt: skip

    def _line(self, head: dict[str, Any], requests: int, failures: int, tail: dict[str, Any]) -> None:
        if self.file is None:
            return
        if requests < self.requests:  # the statistics were reset (--reset-stats, the web UI): count anew
            self.requests = self.failures = 0
        line = {
            **head,
            "requests": requests - self.requests,
            "failures": failures - self.failures,
            **tail,
            "total_requests": requests,
            "total_failures": failures,
        }
        self.requests, self.failures = requests, failures
        self.file.write(json.dumps(line, separators=(",", ":"), allow_nan=False) + "\n")
        self.file.flush()

    def stop(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
