"""``lrun capacity``'s input: the options checked (one line each, exit 2), then the search (``run.run_capacity``)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from runner.capacity.search import Condition, Plan
from runner.errors import LrunError
from runner.scenario.limits import parse_expression
from runner.scenario.numbers import MAX_ARRIVALS, MAX_RATE
from runner.scenario.types import parse_duration


class BadInput(LrunError):
    """A mistake in the command's input: its one line is the message."""


@dataclass(frozen=True)
class Options:
    until: tuple[str, ...]
    start_rate: str
    factor: str
    increment: str | None
    max_rate: str
    precision: str
    step: str
    warmup: str
    max_time: str
    drain: str = "10s"


def _number(option: str, text: str, low: float, high: float = MAX_RATE) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadInput(f"{option}: {text!r} is not a number") from None
    if not low <= value <= high:
        raise BadInput(f"{option}: {text} is out of range ({low:g} to {high:g})")
    return value


def _seconds(option: str, text: str, low: float) -> float:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise BadInput(f"{option}: {exc}") from None
    if value < low:
        raise BadInput(f"{option}: {text} is too short (at least {low:g}s)")
    return value


def _precision(text: str) -> float:
    raw = text.strip()
    value = _number("--precision", raw[:-1], 0.1, 100) / 100 if raw.endswith("%") else None
    return value if value is not None else _number("--precision", raw, 0.001, 1)


def conditions(until: tuple[str, ...], scenario_thresholds: list[Any]) -> tuple[Condition, ...]:
    """The --until expressions, checked; without any, the scenario's thresholds."""
    found = []
    for text in until:
        request, sep, expect = text.rpartition(": ") if ": " in text else (None, "", text)
        try:
            parse_expression(expect)
        except ValueError as exc:
            raise BadInput(f"--until {text!r}: {exc}") from None
        found.append(Condition(expect.strip(), request.strip() if sep and request else None))
    if not found:
        found = [Condition(t.expect, t.request) for t in scenario_thresholds]
    if not found:
        raise BadInput(
            "lrun capacity: say what must hold: --until 'p95 < 200ms' (repeat it), or thresholds: in the scenario"
        )
    return tuple(found)


def plan(options: Options, scenario_thresholds: list[Any]) -> Plan:
    """The search's plan from the options; ``BadInput`` for a bad one."""
    increment = _number("--increment", options.increment, 0.01) if options.increment else None
    made = Plan(
        conditions=conditions(options.until, scenario_thresholds),
        start_rate=_number("--start-rate", options.start_rate, 0.01),
        factor=_number("--factor", options.factor, 1.05, 100),
        increment=increment,
        max_rate=_number("--max-rate", options.max_rate, 0.01),
        precision=_precision(options.precision),
        step_s=_seconds("--step", options.step, 1),
        warmup_s=_seconds("--warmup", options.warmup, 0),
        max_time_s=_seconds("--max-time", options.max_time, 1),
        drain_s=_seconds("--drain", options.drain, 0),
    )
    if made.start_rate > made.max_rate:
        raise BadInput(f"--start-rate {made.start_rate:g} is above --max-rate {made.max_rate:g}")
    if made.max_time_s < made.step_s + made.warmup_s:
        raise BadInput(f"--max-time {options.max_time} is shorter than one step ({options.warmup} + {options.step})")
    arrivals = made.max_rate * (made.step_s + made.warmup_s)
    if arrivals > MAX_ARRIVALS:
        raise BadInput(
            f"--max-rate {made.max_rate:g} for {made.step_s + made.warmup_s:g}s is {arrivals:,.0f} arrivals in a "
            f"step: at most {MAX_ARRIVALS:,}; lower --max-rate or --step"
        )
    return made


def capacity_command(loaded: Any, settings: Any, options: Options, max_users: str | None) -> int:
    """Check the options, then search; the exit code (2 after printing one line for bad input). The caller (the
    CLI) loaded the scenario, resolved the run's settings and set up logging."""
    from runner.capacity.run import run_capacity
    from runner.redact import redact_command, secret_values

    try:
        made = plan(options, loaded.model.thresholds)
        if max_users is not None:
            load = loaded.model.load.model_copy(update={"max_users": int(_number("--max-users", max_users, 1, 10**6))})
            loaded.model = loaded.model.model_copy(update={"load": load})
    except BadInput as exc:
        print(str(exc), file=sys.stderr)
        return 2
    command = redact_command(["lrun", *sys.argv[1:]], secret_values(settings))
    try:
        return run_capacity(loaded, settings, made, out=sys.stdout, command=command)
    except LrunError as exc:
        print(f"lrun capacity: {exc}", file=sys.stderr)
        return 2
