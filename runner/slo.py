"""Live SLO windows: thresholds judged every second on a sliding window while the test runs.

``p95 < 300ms over 10s`` is judged once a second (after its ``delay``) on the requests of the last 10 whole
seconds — on a master, every worker's, merged (the master reads seconds a report interval late, ``Live.lag``, when
the workers' seconds are in). A failing window opens a *breach*; the first window that passes again closes it. A
breach *counts* once it lasted ``for`` windows in a row ((for - 1) × over seconds of failing windows): a counted
breach fails the run, and with ``abort: true`` stops it. A window without data (no request ended in it, for a
time or the error rate) is not judged: it neither opens nor closes a breach.

``Slo.tick`` is the one periodic task ``runner.drive`` runs; ``results`` and ``verdict`` are what the results
get (``windows``, and each window threshold's line in ``thresholds``); ``live`` is the web UI's view.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runner.report.formats import fmt_time
from runner.scenario.windows import window_text
from runner.stats import RequestStats
from runner.stats.entry import RING_SLACK, WINDOW
from runner.stats.period import Period
from runner.stats.windows import SecondRing, window_value
from runner.thresholds import Rule, parse_rule

log = logging.getLogger("lrun")
CATCH_UP = WINDOW + RING_SLACK  # seconds back a statistics entry keeps each second's requests


@dataclass
class Breach:
    start: int  # end of the first window that failed (epoch s)
    worst: float
    worst_at: int
    end: int | None = None  # end of the first window that passed again; None: still failing
    windows: int = 1  # failed judgements
    counted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "worst": round(self.worst, 6),
            "worst_at": self.worst_at,
            "windows": self.windows,
            "counted": self.counted,
        }


@dataclass
class Window:
    """One window threshold and its verdict so far."""

    rule: Rule
    request: str | None
    over: int
    for_windows: int
    delay: float
    abort: bool
    text: str  # as the results say it: "p95 < 300ms over 10s for 3"
    judged: int = 0
    value: float | None = None  # the last window's
    worst: float | None = None
    worst_at: int | None = None
    breaches: list[Breach] = field(default_factory=list)
    aborted: bool = False

    @property
    def open(self) -> Breach | None:
        return self.breaches[-1] if self.breaches and self.breaches[-1].end is None else None

    @property
    def scope(self) -> str:
        return f" [{self.request}]" if self.request else ""

    def worse(self, a: float, b: float) -> bool:
        """``a`` is further on the failing side than ``b``."""
        op = self.rule.op
        if op in ("<", "<="):
            return a > b
        if op in (">", ">="):
            return a < b
        return abs(a - self.rule.limit) > abs(b - self.rule.limit)

    @property
    def passed(self) -> bool:
        return self.judged > 0 and not any(b.counted for b in self.breaches)

    def detail(self) -> str:
        if not self.judged:
            what = f"no request named {self.request!r}" if self.request else "no request"
            return f"no window judged ({what} ended after the delay of {self.delay:g}s)"
        shown = self.rule.show(self.worst)
        when = fmt_time(self.worst_at).split(" ")[1] if self.worst_at else ""
        counted = [b for b in self.breaches if b.counted]
        if not self.breaches:
            return f"{self.judged} windows judged, worst {shown} (window ending {when})"
        said = f"breached {len(self.breaches)} time{'s' if len(self.breaches) != 1 else ''} in {self.judged} windows"
        if not counted:
            said += f" (never for {self.for_windows} in a row)"
        elif len(counted) != len(self.breaches):
            said += f" ({len(counted)} of them for {self.for_windows} in a row)"
        aborted = "; aborted the run" if self.aborted else ""
        return f"{said}, worst {shown} (window ending {when}){aborted}"


class Slo:
    """The window thresholds of a run, fed from its statistics once a second (``tick``)."""

    def __init__(
        self,
        windows: list[Window],
        sources: Callable[[], list[RequestStats]],
        *,
        started: Callable[[], float],
        lag: float,
        stop: Callable[[str], None],
        notify: Callable[[str], None] = lambda text: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.windows = windows
        self.sources = sources  # the request and transaction statistics (their entries are created as they come)
        self.started = started
        self.lag = lag
        self.stop = stop
        self.notify = notify
        self.clock = clock
        self.rings: dict[str | None, SecondRing] = {}
        for window in windows:
            ring = self.rings.setdefault(window.request, SecondRing(window.over))
            ring.size = max(ring.size, window.over)
        self.next_second: int | None = None  # the first second not read yet

    @classmethod
    def of(cls, thresholds: list[Any], **kwargs: Any) -> Slo | None:
        """The window thresholds of a scenario's ``thresholds`` (None when it has none)."""
        windows = [
            Window(
                parse_rule(t.expect),
                t.request,
                int(t.over),
                t.for_windows,
                t.delay,
                t.abort,
                window_text(t.expect, t.over, t.for_windows),
            )
            for t in thresholds
            if t.over is not None
        ]
        return cls(windows, **kwargs) if windows else None

    # -------------------------------------------------------------------------------------------- judging

    def tick(self) -> None:
        """Read the seconds completed since the last tick and judge each window that ends with one of them."""
        end = int(self.clock() - self.lag)  # seconds before this are complete (a master's: every worker's)
        first = self.next_second if self.next_second is not None else int(self.started())
        for second in range(max(first, end - CATCH_UP), end):  # after a stall: every second the entries still hold
            self._read(second)
            self._judge(second + 1)
        self.next_second = max(first, end)

    def _read(self, second: int) -> None:
        for request, ring in self.rings.items():
            period = Period()
            for entry in self._entries(request):
                period.merge(entry.interval(second, second + 1))
            ring.push(second, period)

    def _entries(self, request: str | None) -> list[Any]:
        stats = self.sources()
        if request is None:
            return [stats[0].total]
        return [
            entry
            for source in stats
            for (method, name), entry in list(source.entries.items())
            if request in (name, f"{method} {name}".strip())
        ]

    def _judge(self, end: int) -> None:
        started = self.started()
        for window in self.windows:
            if end < started + window.delay or window.aborted:
                continue
            span = end - max(end - window.over, started)
            value = window_value(window.rule.metric, self.rings[window.request].window(end, window.over), span)
            window.value = value
            if value is None:
                continue
            window.judged += 1
            if window.worst is None or window.worse(value, window.worst):
                window.worst, window.worst_at = value, end
            if window.rule.passes(value):
                self._recovered(window, end)
            else:
                self._failed(window, value, end)

    def _failed(self, window: Window, value: float, end: int) -> None:
        breach = window.open
        if breach is None:
            breach = Breach(end, value, end)
            window.breaches.append(breach)
            log.warning(
                "SLO window %s%s breached: %s in the %ds ending %s",
                window.text,
                window.scope,
                window.rule.show(value),
                window.over,
                _clock(end),
            )
        else:
            breach.windows += 1
            if window.worse(value, breach.worst):
                breach.worst, breach.worst_at = value, end
        if not breach.counted and end - breach.start >= (window.for_windows - 1) * window.over:
            breach.counted = True
            said = f"{window.rule.show(value)} in the {window.over}s ending {_clock(end)}"
            if window.for_windows > 1:
                said += f", failing since {_clock(breach.start)}"
            if window.abort:
                window.aborted = True
                self.stop(f"threshold {window.text}{window.scope} failed ({said})")
                self.notify(f"threshold {window.text}{window.scope} tripped ({said}): abort")
            else:
                self.notify(f"threshold {window.text}{window.scope} tripped ({said})")

    def _recovered(self, window: Window, end: int) -> None:
        breach = window.open
        if breach is None:
            return
        breach.end = end
        log.info(
            "SLO window %s%s recovered at %s after %ds (worst %s)",
            window.text,
            window.scope,
            _clock(end),
            end - breach.start,
            window.rule.show(breach.worst),
        )

    # -------------------------------------------------------------------------------------------- reading

    def results(self) -> list[dict[str, Any]]:
        """The ``windows`` part of the results."""
        return [
            {
                "expression": w.text,
                "request": w.request,
                "metric": w.rule.metric,
                "operator": w.rule.op,
                "limit": w.rule.limit,
                "over_s": w.over,
                "for_windows": w.for_windows,
                "delay_s": w.delay,
                "abort": w.abort,
                "judged": w.judged,
                "worst": None if w.worst is None else round(w.worst, 6),
                "worst_at": w.worst_at,
                "breaches": [b.as_dict() for b in w.breaches],
                "passed": w.passed,
                "aborted": w.aborted,
            }
            for w in self.windows
        ]

    def verdict(self, index: int) -> dict[str, Any]:
        """The ``thresholds`` line of the ``index`` th window threshold: its worst window is its measured value."""
        w = self.windows[index]
        return {
            "expression": w.text,
            "request": w.request,
            "metric": w.rule.metric,
            "operator": w.rule.op,
            "limit": w.rule.limit,
            "actual": w.worst,
            "passed": w.passed,
            "detail": w.detail(),
            "abort": w.abort,
        }

    def live(self) -> list[dict[str, Any]]:
        """Each window's state now, for the web UI: ok, breached (since when), or waiting (delay, no data)."""
        return [
            {
                "expression": w.text,
                "request": w.request,
                "state": "breached" if w.open else "ok" if w.judged and w.value is not None else "waiting",
                "value": w.value,
                "shown": w.rule.show(w.value) if w.value is not None else None,
                "since": w.open.start if w.open else None,
                "breaches": [b.as_dict() for b in w.breaches],
                "aborted": w.aborted,
            }
            for w in self.windows
        ]


def _clock(epoch: int) -> str:
    return fmt_time(epoch).split(" ")[1]


def window_verdicts(slo: Slo | None, thresholds: list[Any], judge: Callable[[Any], dict[str, Any]]) -> list[Any]:
    """Every threshold's verdict in the scenario's order: a window threshold's from ``slo``, the others' from
    ``judge`` (the whole run)."""
    verdicts, index = [], 0
    for threshold in thresholds:
        if threshold.over is None or slo is None:
            verdicts.append(judge(threshold))
        else:
            verdicts.append(slo.verdict(index))
            index += 1
    return verdicts


def start(live: Any, thresholds: list[Any]) -> Slo | None:
    """The window thresholds of a run on ``live`` (``runner.drive.Live``): they read its statistics and stop its
    runner; None when the scenario has none."""
    return Slo.of(
        thresholds,
        sources=lambda: [live.stats, live.transactions],
        started=lambda: live.started,
        lag=live.lag,
        stop=lambda reason: live.runner.stop(reason),
        notify=lambda text: live.notify(text),
    )


def window_row(state: dict[str, Any], abort: bool) -> dict[str, Any]:
    """A window's live state (``Slo.live``) as a line of the web UI's thresholds table: failing while breached,
    and for good once a breach counted (the run's verdict); the detail says the window now."""
    shown = state["shown"]
    if state["state"] == "breached":
        detail = f"breached since {_clock(state['since'])}: now {shown}"
    elif state["aborted"]:
        detail = f"aborted the run: {shown}"
    else:
        breaches = len(state["breaches"])
        detail = f"now {shown}" + (f" ({breaches} breach{'es' if breaches != 1 else ''} so far)" if breaches else "")
    return {
        "expression": state["expression"],
        "request": state["request"],
        "actual": state["value"],
        "passed": state["state"] != "breached" and not any(b["counted"] for b in state["breaches"]),
        "detail": detail,
        "abort": abort,
    }
