"""``lrun capacity``: run the search's steps one after the other, show each as it ends, write the results.

The results file is the best step's results (a run like any other, so ``lrun report`` reads it, its thresholds
the conditions judged on that step) with the whole search under ``capacity``; the HTML report adds the search's
table and its charts of latency and errors against the rate. Exit code: 0 an answer was found, 1 even the first
step was not good.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

from runner.capacity.search import KNEE_FACTOR, Plan, Search, judge
from runner.capacity.session import ClusterSteps
from runner.capacity.step import run_step
from runner.compile.compiler import needs_demo
from runner.config import RunSettings
from runner.demo import start_demo
from runner.errors import LrunError
from runner.report.capacity_model import Capacity, CapacityStep
from runner.report.model import Results
from runner.scenario import LoadedScenario
from runner.stats import Snapshot
from runner.thresholds import evaluate, parse_rule

log = logging.getLogger("lrun")

HEADER = (
    f"{'step':>4}  {'phase':<6} {'rate/s':>8} {'achieved':>9} {'dropped':>7} {'p50 ms':>8} {'p95 ms':>8} "
    f"{'p99 ms':>8} {'errors':>7} {'users':>6}  verdict"
)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def row(number: int, step: CapacityStep) -> str:
    """A step as a line of the console table."""
    if step.good:
        verdict = "good"
    elif step.failed:
        verdict = "bad: " + "; ".join(step.failed)
    else:
        verdict = f"bad: the generator (or max_users) could not keep up: {step.dropped} of {step.planned} dropped"
    return (
        f"{number:>4}  {step.phase:<6} {step.rate:>8g} {step.achieved_rate:>9.1f} {step.dropped:>7} "
        f"{_ms(step.p50_ms):>8} {_ms(step.p95_ms):>8} {_ms(step.p99_ms):>8} {step.error_ratio * 100:>6.2f}% "
        f"{step.users_busy:>6}  {verdict}"
    )


def answer_line(capacity: Capacity) -> str:
    """What the search found, in one line (or why it found nothing)."""
    until = ", ".join(capacity.until)
    if capacity.capacity is None:
        first = capacity.steps[0] if capacity.steps else None
        why = "; ".join(first.failed) if first and first.failed else "the generator could not keep up"
        rate = f"{first.rate:g}/s" if first else "?"
        return f"capacity: no answer: even the first step ({rate}) failed ({why}); start lower with --start-rate"
    text = f"capacity: {capacity.capacity:g} arrivals/s met every condition ({until})"
    if capacity.first_bad is not None:
        text += f"; {capacity.first_bad:g}/s did not"
    if capacity.lower_bound:
        text += "; a lower bound: the first bad step failed only because the generator could not keep up"
    if capacity.knee is not None:
        text += f"; knee at {capacity.knee:g}/s (p95 above {KNEE_FACTOR:g}x its lowest-rate value beyond it)"
    return text


def search_capacity(
    loaded: LoadedScenario, settings: RunSettings, plan: Plan, *, out: TextIO, command: str
) -> tuple[Capacity, dict[str, Any] | None]:
    """Run the search; the capacity model and the results of its best step (or of the last, without an answer).
    Locally each step is a run of its own; distributed, the steps share one master and its workers."""
    lrun_log = logging.getLogger("lrun")
    level = lrun_log.level
    with ExitStack() as stack:
        if level > logging.DEBUG:
            lrun_log.setLevel(logging.ERROR)  # a step's run tells what the search shows in its table
            stack.callback(lrun_log.setLevel, level)
        if not (settings.processes or settings.master):
            return _search(lambda rate, **kw: run_step(loaded, settings, rate, **kw), plan, out, command=command)
        demo_url = None
        if needs_demo(loaded.model, settings.host):
            demo_url = stack.enter_context(start_demo()).url
        session = ClusterSteps(loaded, settings, demo_url)
        stack.callback(session.close)
        return _search(session.run_step, plan, out, command=command)


def _search(
    steps: Callable[..., tuple[dict[str, Any], float]], plan: Plan, out: TextIO, command: str = ""
) -> tuple[Capacity, dict[str, Any] | None]:
    search = Search(plan)
    results: dict[float, dict[str, Any]] = {}
    last: dict[str, Any] | None = None
    began = time.monotonic()
    conditions = ", ".join(c.label for c in plan.conditions)
    print(
        f"capacity search: until {conditions}; from {plan.start_rate:g}/s, {plan.growth} per step, up to "
        f"{plan.max_rate:g}/s; {plan.step_s:g} s steps after {plan.warmup_s:g} s of warm-up; at most "
        f"{plan.max_time_s:g} s",
        file=out,
        flush=True,
    )
    print(HEADER, file=out, flush=True)
    stopped = ""
    while not stopped:
        nxt = search.next_rate()
        if isinstance(nxt, str):
            stopped = nxt
            break
        rate, phase = nxt
        elapsed = time.monotonic() - began
        expected = max((s.duration_s for s in search.steps), default=plan.warmup_s + plan.step_s)
        if search.steps and elapsed + expected > plan.max_time_s:
            stopped = f"--max-time {plan.max_time_s:g}s: no time for another step"
            break
        step_results, wall = steps(rate, warmup=plan.warmup_s, seconds=plan.step_s, drain=plan.drain_s, command=command)
        if not step_results:
            raise LrunError(f"the step at {rate:g}/s ended without results")
        step = judge(plan, rate, phase, step_results, wall)
        search.steps.append(step)
        results[rate] = last = step_results
        print(row(len(search.steps), step), file=out, flush=True)
        if step_results.get("stop_code") == "interrupted":
            stopped = "interrupted"
    best = search.best
    capacity = Capacity(
        until=[c.label for c in plan.conditions],
        start_rate=plan.start_rate,
        growth=plan.growth,
        max_rate=plan.max_rate,
        precision=plan.precision,
        step_s=plan.step_s,
        warmup_s=plan.warmup_s,
        max_time_s=plan.max_time_s,
        steps=search.steps,
        capacity=best.rate if best else None,
        first_bad=search.first_bad,
        lower_bound=search.lower_bound and best is not None,
        knee=search.knee(),
        stopped=stopped,
        elapsed_s=round(time.monotonic() - began, 3),
    )
    return capacity, results[best.rate] if best else last


def run_capacity(loaded: LoadedScenario, settings: RunSettings, plan: Plan, *, out: TextIO, command: str) -> int:
    """The search, its answer on ``out``, its outputs (``settings.json``, ``settings.html``); the exit code."""
    capacity, base = search_capacity(loaded, settings, plan, out=out, command=command)
    code = 0 if capacity.capacity is not None else 1
    print(f"search ended: {capacity.stopped} ({capacity.elapsed_s:.0f} s)", file=out)
    print(answer_line(capacity), file=out, flush=True)
    if base is None:
        return code
    figures = Snapshot.of_results(base)
    verdicts = [{**evaluate(parse_rule(c.expect), c.request, figures), "abort": False} for c in plan.conditions]
    update = {"command": command, "exit_code": code, "passed": code == 0, "thresholds": verdicts}
    typed = Results.model_validate({**base, **update, "capacity": capacity.model_dump()})
    return code if _write(typed, settings) else 1


def _write(results: Results, settings: RunSettings) -> bool:
    """The JSON and HTML outputs; False (and the reason on stderr) when one could not be written."""
    from runner.report.html import write_html
    from runner.report.results import write_json

    ok = True
    for path, what, write in (
        (settings.html, "HTML report", lambda p: write_html(results, p)),
        (settings.json, "results", lambda p: write_json(results, Path(p))),
    ):
        if not path:
            continue
        try:
            write(path)
            log.info("%s written to %s", what, path)
        except (OSError, LrunError) as exc:
            log.error("%s NOT written to %s: %s", what, path, exc)
            ok = False
    return ok
