"""The regression gate's rules: ``--fail-on "p95 +10%"``, ``"errors +0.5pp"``, ``"rps -10%"``, per request
(``"GET /item: p99 +20%"``) or ``off``.

A rule says how large a change must be to matter (the minimum practical effect); whether it is beyond noise is
the statistical test's to say (``runner.compare.stats``). A rule given for a metric replaces the default of that
metric for its scope (every request and the total, or the one request named); the others keep their defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from runner.errors import LrunError

Unit = Literal["%", "ms", "pp"]
TOTAL = "total"  # the scope name of all requests together

# metric: (the direction that is bad, the units a limit may take)
LATENCY_UNITS: tuple[Unit, ...] = ("%", "ms")
GATED = ("p50", "p90", "p95", "p99", "errors", "rps")  # the metrics compared, in the order shown
DEFAULTS = ("p50 +10%", "p90 +15%", "p95 +20%", "p99 +30%", "errors +0.5pp", "rps -10%")

_RULE = re.compile(
    r"^(?P<metric>[a-z0-9.]+)\s*(?:(?P<off>off)|(?P<sign>[+-])\s*(?P<limit>\d+(?:\.\d+)?)\s*(?P<unit>%|ms|pp))$"
)


@dataclass(frozen=True)
class Rule:
    """One metric's limit, for every request (``scope`` None) or one (a request's label, or ``total``)."""

    metric: str
    limit: float | None  # None: off (shown, never judged)
    unit: Unit
    scope: str | None = None
    text: str = ""

    @property
    def bad_sign(self) -> int:
        """+1 where a rise is bad (times, errors), -1 where a drop is (throughput)."""
        return -1 if self.metric == "rps" else 1

    def describe(self) -> str:
        if self.limit is None:
            return f"{self.metric} off"
        sign = "-" if self.bad_sign < 0 else "+"
        return f"{self.metric} {sign}{self.limit:g}{self.unit}"


def parse_rule(text: str) -> Rule:
    """A rule from its text; ``LrunError`` saying how to write it."""
    before, _, body = text.rpartition(":")
    scope, body = before.strip() or None, body.strip()
    found = _RULE.match(body.lower())
    example = 'write "p95 +10%", "p99 +5ms", "errors +0.5pp", "rps -10%", "GET /item: p99 +20%" or "p99 off"'
    if not found:
        raise LrunError(f"--fail-on {text!r}: not a rule; {example}")
    metric = found["metric"]
    if metric not in GATED:
        from runner.suggest import did_you_mean

        hint = did_you_mean(metric, GATED) or f"the metrics: {', '.join(GATED)}"
        raise LrunError(f"--fail-on {text!r}: no metric {metric!r} ({hint})")
    if found["off"]:
        return Rule(metric, None, "%", scope, text)
    limit, unit, sign = float(found["limit"]), found["unit"], found["sign"]
    allowed: tuple[Unit, ...] = ("pp",) if metric == "errors" else ("%",) if metric == "rps" else LATENCY_UNITS
    if unit not in allowed:
        how = {
            "errors": "the error rate's change in percentage points: errors +0.5pp",
            "rps": "throughput's drop in percent: rps -10%",
        }.get(metric, f"a rise in percent or milliseconds: {metric} +10% or {metric} +5ms")
        raise LrunError(f"--fail-on {text!r}: give {how}")
    bad = "-" if metric == "rps" else "+"
    if sign != bad:
        what = "a drop" if bad == "-" else "a rise"
        raise LrunError(f"--fail-on {text!r}: {metric} fails on {what}: write {metric} {bad}{found['limit']}{unit}")
    return Rule(metric, limit, unit, scope, text)  # type: ignore[arg-type]


def rule_set(texts: tuple[str, ...] | list[str]) -> list[Rule]:
    """The defaults, then the rules given (a later rule for the same metric and scope wins)."""
    return [parse_rule(t) for t in DEFAULTS] + [parse_rule(t) for t in texts]


def rule_for(rules: list[Rule], metric: str, names: tuple[str, ...]) -> Rule | None:
    """The rule of ``metric`` for a request known by ``names`` (its label "GET /item", its name "/item"; or
    ``total``): the last rule naming it, else the last general one."""
    known = {n.lower() for n in names}
    named = [r for r in rules if r.metric == metric and r.scope is not None and r.scope.lower() in known]
    general = [r for r in rules if r.metric == metric and r.scope is None]
    found = named or general
    return found[-1] if found else None
