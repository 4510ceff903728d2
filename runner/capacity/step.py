"""One step of a capacity search: the scenario's users arriving at one constant rate, run like any test.

A step is a whole run through ``api.run`` (so a local run, ``--processes N`` and their outputs work as for
``lrun run``): its load is replaced by a constant arrival rate for warm-up + step seconds, its thresholds by none
(the search judges), and its statistics are reset when the warm-up ends (``Events.start``). A distributed search
(``session``) keeps one master and its workers for all its steps; they report every ``REPORT_S`` so that little of
the warm-up reaches the master after that reset.
"""

from __future__ import annotations

import dataclasses
import io
import time
from typing import Any

import gevent

from runner.api import run
from runner.config import RunSettings
from runner.events import Events
from runner.scenario import LoadedScenario
from runner.scenario.model import ArrivalStage

REPORT_S = 0.5


def step_scenario(loaded: LoadedScenario, rate: float, seconds: float) -> LoadedScenario:
    """The scenario with its load replaced by ``rate`` arrivals/s from the first instant for ``seconds``."""
    stages = [
        ArrivalStage.model_construct(duration=0.0, rate=rate),
        ArrivalStage.model_construct(duration=seconds, rate=rate),
    ]
    load = loaded.model.load.model_copy(
        update={"arrival_rate": None, "arrival_stages": stages, "stages": None, "goal": None, "iterations": None}
    )
    model = loaded.model.model_copy(update={"load": load, "thresholds": []})
    return dataclasses.replace(loaded, model=model)


def step_settings(settings: RunSettings, drain: float) -> RunSettings:
    """The run's settings for a step: no outputs of its own (the search writes them), no live table; the requests
    in flight at its end may take ``drain`` seconds to finish (and be measured, however slow)."""
    quiet: dict[str, Any] = {"json": None, "html": None, "csv": None, "junit": None, "only_summary": True}
    quiet.update(stop_timeout=drain, print_stats=False, run_time=None, iterations=None, reset_stats=False, web=False)
    quiet["sources"] = {**settings.sources, "users": "default", "run_time": "default"}  # the step's arrivals hold
    if settings.processes or settings.master:
        quiet["report_interval"] = min(settings.report_interval, REPORT_S)
    return dataclasses.replace(settings, **quiet)


def warmup_reset(events: Events, warmup: float) -> list[gevent.Greenlet]:
    """Reset the run's statistics ``warmup`` seconds after its load started; the timers to kill at its end."""
    pending: list[gevent.Greenlet] = []

    def warmed_up(live: Any) -> None:
        live.stats.reset()
        live.transactions.reset()

    events.start.add_listener(lambda live: pending.append(gevent.spawn_later(warmup, warmed_up, live)))
    return pending


def run_step(
    loaded: LoadedScenario,
    settings: RunSettings,
    rate: float,
    *,
    warmup: float,
    seconds: float,
    drain: float,
    command: str,
) -> tuple[dict[str, Any], float]:
    """Run one step in this process; its results (the dict of a results file, statistics from the warm-up's end)
    and how long it took."""
    events = Events()
    pending = warmup_reset(events, warmup)
    started = time.monotonic()
    try:
        outcome = run(step_scenario(loaded, rate, warmup + seconds), step_settings(settings, drain), events=events,
                      out=io.StringIO(), command=command)  # fmt: skip
    finally:
        for greenlet in pending:
            greenlet.kill(block=False)
    return outcome.results, time.monotonic() - started
