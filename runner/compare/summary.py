"""The comparison's written summary: what the gate found, in sentences a manager reads, from the ``Comparison``.

``summary(comparison)`` is deterministic and says, in this order:

1. **The verdict**: PASSED or REGRESSION, how many metrics got worse beyond noise and their rules.
2. **The biggest changes beyond noise**: the regressions (at most ``SHOWN_CHANGES``, the largest first), then
   the improvements and the changes within their rules: "p95 of GET /item rose from 61.2 ms to 80.4 ms (+31 %),
   beyond its rule p95 +20%."
3. **What stayed within noise**: how many metrics the test could not tell from run-to-run noise.
4. **Throughput and errors** of all requests in both runs.
5. **The warnings** (the loads differ, the mix of requests differs, lrun was saturated) and the requests only one
   run has.
"""

from __future__ import annotations

from runner.compare.console import value_text
from runner.compare.model import Comparison, Gated
from runner.compare.rules import TOTAL, parse_rule
from runner.errors import LrunError

SHOWN_CHANGES = 4  # changes named per kind; the others are in the verdicts table
NOISE_NAMED = 3


def who(request: str) -> str:
    return "all requests" if request == TOTAL else request


def _what(m: Gated) -> str:
    if m.metric == "rps":
        return f"throughput of {who(m.request)}"
    if m.metric == "errors":
        return f"the error rate of {who(m.request)}"
    return f"{m.metric} of {who(m.request)}"


def change_words(m: Gated) -> str:
    """``+31 %`` (of the baseline), ``+2.10 pp`` for the error rate, ``+4.2 ms`` from a baseline of 0."""
    if m.metric == "errors":
        return f"{(m.change or 0.0) * 100:+.2f} pp"
    if m.change_ratio is not None:
        return f"{m.change_ratio * 100:+.0f} %"
    return value_text(m.metric, m.change)


def moved(m: Gated) -> str:
    """ "p95 of GET /item rose from 61.2 ms to 80.4 ms (+31 %)"."""
    verb = "rose" if (m.change or 0.0) > 0 else "fell"
    return f"{_what(m)} {verb} from {value_text(m.metric, m.base)} to {value_text(m.metric, m.new)} ({change_words(m)})"


def _size(m: Gated) -> float:
    """How large a change is, for the order: in multiples of its rule's limit, so that a latency's percent, a
    latency's ms and the error rate's points rank on one scale (a +2 pp error rate under "errors +0.5pp" is 4,
    a +30 % p95 under "p95 +20%" 1.5)."""
    try:
        rule = parse_rule(m.rule)
    except LrunError:
        rule = None
    if rule is None or not rule.limit:
        return abs(m.change_ratio) if m.change_ratio is not None else float("inf")
    if rule.unit == "%":
        if m.change_ratio is None:
            return float("inf")  # from a baseline of 0
        return abs(m.change_ratio) * 100 / rule.limit
    scale = 100 if rule.unit == "pp" else 1  # the error rate's change is a ratio; its rule is in points
    return abs(m.change or 0.0) * scale / rule.limit


def _sentence(text: str) -> str:
    """A capital first (not of a metric's name: "p95 of …") and a full stop."""
    if text[:1] == "p" and text[1:2].isdigit():
        return text + "."
    return text[0].upper() + text[1:] + "."


def _changes(comparison: Comparison, verdict: str, tail: str, noun: str) -> list[str]:
    found = sorted((m for m in comparison.metrics if m.verdict == verdict), key=lambda m: -_size(m))
    sentences = [_sentence(f"{moved(m)}, {tail.format(rule=m.rule)}") for m in found[:SHOWN_CHANGES]]
    if len(found) > SHOWN_CHANGES:
        sentences.append(f"{len(found) - SHOWN_CHANGES} more {noun} are in the verdicts table.")
    return sentences


def _verdict(comparison: Comparison) -> str:
    judged = [m for m in comparison.metrics if m.verdict not in ("off", "no_data")]
    if comparison.passed:
        better = f"; {comparison.improvements} improved beyond noise and their rules" if comparison.improvements else ""
        return (
            f"PASSED: none of the {len(judged)} metrics compared got worse beyond both run-to-run noise and its "
            f"rule{better}."
        )
    return (
        f"REGRESSION: {comparison.regressions} of the {len(judged)} metrics compared got worse beyond run-to-run "
        f"noise and beyond their rules; the gate exits {comparison.exit_code}."
    )


def _noise(comparison: Comparison) -> str | None:
    judged = [m for m in comparison.metrics if m.verdict not in ("off", "no_data")]
    noise = [m for m in comparison.metrics if m.verdict == "noise"]
    if not noise:
        return None
    if len(noise) == len(judged):
        return f"All {len(judged)} metrics stayed within run-to-run noise: the test cannot tell the runs apart."
    named = ", ".join(_what(m) for m in noise[:NOISE_NAMED])
    more = ", among others" if len(noise) > NOISE_NAMED else ""
    return (
        f"{len(noise)} of the {len(judged)} metrics stayed within run-to-run noise ({named}{more}): the test "
        "cannot tell those apart."
    )


def _total(comparison: Comparison, metric: str) -> Gated | None:
    return next((m for m in comparison.metrics if m.request == TOTAL and m.metric == metric), None)


def _throughput_and_errors(comparison: Comparison) -> list[str]:
    base, new = comparison.base, comparison.new
    rps = _total(comparison, "rps")
    rates = ""
    if rps is not None and rps.base is not None and rps.new is not None:
        noise = "beyond noise" if rps.significant else "within noise"
        rates = f" ({value_text('rps', rps.base)} and {value_text('rps', rps.new)}, {change_words(rps)}, {noise})"
    found = [
        f"The baseline made {base.requests:,} requests in {base.measured_s:g} s, the new run {new.requests:,} in "
        f"{new.measured_s:g} s{rates}."
    ]
    errors = _total(comparison, "errors")
    if errors is not None and errors.base is not None and errors.new is not None:
        if not errors.base and not errors.new:
            found.append("No request failed in either run.")
        else:
            found.append(
                f"The error rate of all requests was {value_text('errors', errors.base)} in the baseline and "
                f"{value_text('errors', errors.new)} in the new run ({change_words(errors)}, "
                f"{'beyond noise' if errors.significant else 'within noise'})."
            )
    return found


def _warnings(comparison: Comparison) -> list[str]:
    found = [_sentence(f"mind: {w}") for w in comparison.warnings]
    for u in comparison.unmatched:
        run = "baseline" if u.only_in == "base" else "new run"
        found.append(f"{u.request} is only in the {run} ({u.requests:,} requests): not compared.")
    return found


def summary(comparison: Comparison) -> list[str]:
    """The summary's sentences, in the order of the module's docstring."""
    sentences = [_verdict(comparison)]
    sentences += _changes(comparison, "regression", "beyond its rule {rule}", "regressions")
    sentences += _changes(comparison, "improvement", "an improvement beyond its rule {rule}", "improvements")
    sentences += _changes(comparison, "within_limit", "beyond noise but within its rule {rule}", "changes")
    sentences += [s for s in [_noise(comparison)] if s]
    sentences += _throughput_and_errors(comparison)
    sentences += _warnings(comparison)
    return sentences
