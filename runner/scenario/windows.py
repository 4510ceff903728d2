"""Live SLO windows as written in a scenario: ``p95 < 300ms over 10s`` (or ``over:`` beside ``expect:``), read and
checked here; judged while the test runs by ``runner.slo``.

A window threshold is judged every second on the requests of the last ``over`` seconds (whole seconds: the
sampling interval); ``for: N`` asks the window to fail N windows in a row (a breach lasting (N-1) × ``over``
seconds) before it counts, so a spike shorter than a window never trips it.
"""

from __future__ import annotations

import re
from typing import Any

from runner.scenario.limits import RUN_METRICS

SAMPLING_S = 1.0  # the statistics' resolution: one second
MAX_WINDOW_S = 600.0  # a window keeps a histogram per second of it: at most 10 minutes of them
_OVER = re.compile(r"^(?P<expect>.*?)\s+over\s+(?P<over>\S.*?)\s*$", re.IGNORECASE)


def split_over(text: str) -> tuple[str, str | None]:
    """``p95 < 300ms over 10s`` → (``p95 < 300ms``, ``10s``); (text, None) without ``over``."""
    match = _OVER.match(text)
    return (match["expect"], match["over"]) if match else (text, None)


def threshold_input(value: Any) -> Any:
    """A threshold as written (a string, or a mapping) → the mapping the model reads, ``over`` split out of
    ``expect``; ValueError when both give one."""
    data = {"expect": value} if isinstance(value, str) else value
    if not isinstance(data, dict) or not isinstance(data.get("expect"), str):
        return data
    expect, over = split_over(data["expect"])
    if over is None:
        return data
    if data.get("over") is not None:
        raise ValueError(f"the window is given twice ('{data['expect']}' and over: {data['over']}): keep one")
    return {**data, "expect": expect, "over": over}


def check_window(metric: str, over: float | None, for_windows: int) -> None:
    """ValueError, saying what to write, for a window that cannot be judged."""
    if over is None:
        if for_windows != 1:
            raise ValueError("'for' counts windows in a row: add a window (over: 10s, or 'p95 < 300ms over 10s')")
        return
    if over < SAMPLING_S:
        raise ValueError(
            f"a window of {over:g}s is shorter than the sampling interval ({SAMPLING_S:g}s): write over: 1s or more"
        )
    if over > MAX_WINDOW_S:
        raise ValueError(
            f"a window of {over:g}s is longer than lrun keeps ({MAX_WINDOW_S / 60:g}m): write over: 10m or less"
        )
    if over != int(over):
        raise ValueError(
            f"a window is whole seconds (the sampling interval is {SAMPLING_S:g}s): write over: {int(over) or 1}s"
        )
    if metric in RUN_METRICS:
        raise ValueError(
            f"{metric} is a share of the whole run's arrivals and cannot be judged over a window: remove over"
        )


def check_for(value: int) -> int:
    if value < 1:
        raise ValueError("a window must fail at least once to count: write for: 1 or more")
    return value


def window_text(expect: str, over: float, for_windows: int) -> str:
    """The threshold as the results and the console say it: ``p95 < 300ms over 10s for 3``."""
    return f"{expect.strip()} over {over:g}s" + (f" for {for_windows}" if for_windows > 1 else "")


def windows_read_requests(thresholds: list[Any]) -> bool:
    """A window threshold reads one request's seconds (a master then asks its workers for each entry's)."""
    return any(t.over is not None and t.request is not None for t in thresholds)


def rule_text(expression: str) -> str:
    """The METRIC OPERATOR LIMIT of a threshold as the results say it (``p95 < 300ms over 10s for 3`` → ``p95 <
    300ms``)."""
    return split_over(expression)[0]
