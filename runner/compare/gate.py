"""The regression gate: two runs' results in, a ``Comparison`` out (each metric's verdict, and the exit code).

Request names both runs have are compared; a name only one has is listed (``unmatched``), not judged. Two runs of
different scenarios, or with no request name in common, are not compared at all (``LrunError``: bad input).
"""

from __future__ import annotations

import math

from runner.compare import stats
from runner.compare.model import Comparison, Gated, Interval, RunRef, Unmatched, Verdict
from runner.compare.rules import GATED, TOTAL, Rule, rule_for
from runner.errors import LrunError
from runner.report.model import Entry, Results
from runner.stats.histogram import Histogram, percentile_key

LATENCY = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
Side = tuple[Entry, Histogram, Results, dict[float, float]]  # an entry of a run, its histogram, the run, its D


def label(entry: Entry) -> str:
    return f"{entry.method} {entry.name}".strip()


def _histogram(entry: Entry, file: str) -> Histogram:
    if entry.histogram is None:
        if not entry.requests:
            return Histogram()
        raise LrunError(
            f"{file}: {label(entry) or 'the total'} has no histogram (results edited, or from an lrun without "
            "histograms); lrun compare needs them: run the test again with this lrun"
        )
    try:
        return Histogram.from_dict(entry.histogram.model_dump())
    except ValueError as exc:
        raise LrunError(f"{file}: {label(entry) or 'the total'}: {exc}") from None


def check_comparable(base: Results, new: Results, base_file: str, new_file: str) -> None:
    """``LrunError`` (one line) when the two runs are not of the same scenario."""
    base_names = {label(e) for e in base.requests}
    new_names = {label(e) for e in new.requests}

    def differ() -> str:
        only_base, only_new = sorted(base_names - new_names), sorted(new_names - base_names)
        shown = [f"only in {base_file}: {_few(only_base)}" if only_base else "", f"only in {new_file}: {_few(only_new)}"
                 if only_new else ""]  # fmt: skip
        text = "; ".join(s for s in shown if s)
        return f" ({text})" if text else ""

    if base.scenario != new.scenario:
        raise LrunError(
            f"{base_file} is a run of scenario {base.scenario!r}, {new_file} of scenario {new.scenario!r}: a baseline "
            f"must be a run of the same scenario{differ()}"
        )
    if base_names and new_names and not base_names & new_names:
        raise LrunError(f"{base_file} and {new_file} have no request name in common{differ()}")


def _few(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _verdict(
    rule: Rule | None, significant: bool, direction: int, change: float | None, ratio: float | None
) -> Verdict:
    """direction: +1 the value rose, -1 it fell (as significant, or 0)."""
    if rule is None or rule.limit is None:
        return "off"
    if not significant or not direction:
        return "noise"
    if rule.unit == "%":  # in percent of the baseline; from a baseline of 0, any change is large
        size = math.inf if ratio is None else abs(ratio) * 100
    else:  # ms, or percentage points of a ratio
        size = abs(change or 0.0) * (100 if rule.unit == "pp" else 1)
    if size <= rule.limit:
        return "within_limit"
    return "regression" if direction == rule.bad_sign else "improvement"


def _ratio(base: float | None, new: float | None) -> float | None:
    return None if base is None or new is None or base == 0 else new / base - 1


def _points(entry: Entry, results: Results, q: float) -> list[tuple[int, float]]:
    """(requests, q-th percentile) of each full interval of the entry's series, or of the run's (the total's)
    when the entry has none (without --csv-full-history): a busy second slows every request alike."""
    series = entry.series or results.series
    key = percentile_key(q)
    return [(p.requests, float(v)) for p in series if p.interval_s >= 0.9 and (v := p.percentiles.get(key)) is not None]


def _run_inflation(results: Results, file: str) -> dict[float, float]:
    """The run's own variance inflation per percentile, from all requests' histogram and series: it stands for
    each request without a series of its own (a busy second slows every request alike)."""
    total = _histogram(results.total, file)
    return {q: stats.inflation(total, q, _points(results.total, results, q)) for q in LATENCY.values()}


def _inflation(entry: Entry, results: Results, histogram: Histogram, q: float, run: dict[float, float]) -> float:
    if entry.series:
        return stats.inflation(histogram, q, _points(entry, results, q))
    return run[q]


def _latency(metric: str, sides: tuple[Side, Side], rule: Rule | None, name: str) -> Gated:
    q = LATENCY[metric]
    (b, hb, rb, run_b), (n, hn, rn, run_n) = sides
    vb, vn = hb.percentile(q), hn.percentile(q)
    db, dn = _inflation(b, rb, hb, q, run_b), _inflation(n, rn, hn, q, run_n)
    ib, inn = stats.percentile_interval(hb, q, inflation=db), stats.percentile_interval(hn, q, inflation=dn)
    if vb is None or vn is None or ib is None or inn is None:
        return _no_data(name, metric, rule, vb, vn)
    direction = stats.intervals_apart(ib, inn)
    change, ratio = vn - vb, _ratio(vb, vn)
    test = f"95% intervals {_span(ib)} (D {db:.3g}) and {_span(inn)} (D {dn:.3g}): " + (
        "apart" if direction else "overlap"
    )
    return Gated(
        request=name, metric=metric, rule=_rule_text(rule, metric), base=vb, new=vn, change=round(change, 3),
        change_ratio=_round(ratio), significant=bool(direction), test=test, base_interval=_interval(ib),
        new_interval=_interval(inn), base_inflation=round(db, 3), new_inflation=round(dn, 3),
        verdict=_verdict(rule, bool(direction), direction, change, ratio),
    )  # fmt: skip


def _errors(b: Entry, n: Entry, rule: Rule | None, name: str) -> Gated:
    z = stats.proportion_z(b.failures, b.requests, n.failures, n.requests)
    if z is None:
        return _no_data(name, "errors", rule, None, None)
    rb, rn = b.failures / b.requests, n.failures / n.requests
    significant = abs(z) >= stats.TEST_Z
    direction = (1 if z > 0 else -1) if significant else 0
    change, ratio = rn - rb, _ratio(rb, rn)
    return Gated(
        request=name, metric="errors", rule=_rule_text(rule, "errors"), base=round(rb, 6), new=round(rn, 6),
        change=round(change, 6), change_ratio=_round(ratio), significant=significant,
        test=f"two-proportion z = {z:+.2f} ({b.failures}/{b.requests} vs {n.failures}/{n.requests})", z=round(z, 3),
        verdict=_verdict(rule, significant, direction, change, ratio),
    )  # fmt: skip


def _rps(b: Entry, n: Entry, base: Results, new: Results, rule: Rule | None, name: str) -> Gated:
    z = stats.rate_z(b.requests, float(base.measured_s), n.requests, float(new.measured_s))
    if z is None:
        return _no_data(name, "rps", rule, float(b.rps), float(n.rps))
    rb, rn = float(b.rps), float(n.rps)
    significant = abs(z) >= stats.TEST_Z
    direction = (1 if z > 0 else -1) if significant else 0
    change, ratio = rn - rb, _ratio(rb, rn)
    return Gated(
        request=name, metric="rps", rule=_rule_text(rule, "rps"), base=rb, new=rn, change=round(change, 3),
        change_ratio=_round(ratio), significant=significant,
        test=f"rate-ratio z = {z:+.2f} ({b.requests} in {base.measured_s:g} s vs {n.requests} in {new.measured_s:g} s)",
        z=round(z, 3), verdict=_verdict(rule, significant, direction, change, ratio),
    )  # fmt: skip


def _no_data(name: str, metric: str, rule: Rule | None, base: float | None, new: float | None) -> Gated:
    return Gated(
        request=name, metric=metric, rule=_rule_text(rule, metric), base=base, new=new, change=None,
        change_ratio=None, significant=False, test="no requests in one of the runs", verdict="no_data",
    )  # fmt: skip


def _rule_text(rule: Rule | None, metric: str) -> str:
    return rule.describe() if rule else f"{metric} off"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _span(interval: stats.Interval) -> str:
    high = "∞" if math.isinf(interval.high) else f"{interval.high:.3g}"
    return f"{interval.low:.3g}–{high} ms"


def _interval(interval: stats.Interval) -> Interval:
    return Interval(low=round(interval.low, 3), high=None if math.isinf(interval.high) else round(interval.high, 3))


def _ref(results: Results, file: str) -> RunRef:
    return RunRef(
        file=file, scenario=results.scenario, start=results.start, lrun_version=results.lrun_version,
        requests=results.total.requests, measured_s=float(results.measured_s),
    )  # fmt: skip


def _load_warnings(base: Results, new: Results) -> list[str]:
    found = []
    for what, b, n in (
        ("users asked", base.load.users, new.load.users),
        ("run time asked (s)", base.load.run_time_s, new.load.run_time_s),
        ("most users running", base.users_max, new.users_max),
        ("host", base.host, new.host),
    ):
        if b is not None and n is not None and b != n:
            found.append(f"the runs differ in {what}: {b} in the baseline, {n} in the new run")
    for which, run in (("baseline", base), ("new run", new)):
        if run.saturation is not None and run.saturation.saturated:
            found.append(f"lrun was saturated in the {which}: its response times include lrun's own waiting")
    return found


def _at_base_mix(base: Results, new: Results, new_file: str) -> tuple[Histogram | None, list[str]]:
    """The new run's requests of the names both runs have, weighted to the baseline's mix of them (the total's
    percentiles are judged on it; see ``stats``), and the names whose share moved beyond noise."""
    base_by = {label(e): e for e in base.requests}
    new_by = {label(e): e for e in new.requests}
    common = [k for k in base_by if k in new_by]
    nb, nn = sum(base_by[k].requests for k in common), sum(new_by[k].requests for k in common)
    if len(common) < 2 or not nb or not nn:
        return None, []
    mixed = stats.at_mix([(_histogram(new_by[k], new_file), base_by[k].requests / nb) for k in common])
    moved = []
    for k in common:
        b, n = base_by[k].requests, new_by[k].requests
        z = stats.proportion_z(b, nb, n, nn)
        if z is not None and abs(z) >= stats.TEST_Z:
            moved.append(f"{k} {b / nb:.1%} → {n / nn:.1%}")
    return mixed, moved


def _mix_warning(moved: list[str], new: Results) -> list[str]:
    if not moved:
        return []
    own = new.total.percentiles.get(percentile_key(50.0)) or 0.0
    return [
        f"the mix of requests differs ({', '.join(moved)} of the requests): the total's percentiles are judged at "
        f"the baseline's mix, so that a different mix is not read as a slower build (the new run's own total p50: "
        f"{own:.3g} ms)"
    ]


def compare(base: Results, new: Results, rules: list[Rule], base_file: str, new_file: str) -> Comparison:
    """Judge ``new`` against ``base`` (the module says how); ``LrunError`` when they are not comparable."""
    check_comparable(base, new, base_file, new_file)
    base_by = {label(e): e for e in base.requests}
    new_by = {label(e): e for e in new.requests}
    pairs: list[tuple[str, tuple[str, ...], Entry, Entry]] = [(TOTAL, (TOTAL,), base.total, new.total)]
    pairs += [(name, (name, e.name), e, new_by[name]) for name, e in base_by.items() if name in new_by]
    metrics: list[Gated] = []
    run_b, run_n = _run_inflation(base, base_file), _run_inflation(new, new_file)
    mixed, moved = _at_base_mix(base, new, new_file)
    for name, names, b, n in pairs:
        hb, hn = _histogram(b, base_file), _histogram(n, new_file)
        if name == TOTAL and mixed is not None:
            hn = mixed
        for metric in GATED:
            rule = rule_for(rules, metric, names)
            if metric in LATENCY:
                metrics.append(_latency(metric, ((b, hb, base, run_b), (n, hn, new, run_n)), rule, name))
            elif metric == "errors":
                metrics.append(_errors(b, n, rule, name))
            else:
                metrics.append(_rps(b, n, base, new, rule, name))
    unmatched = [
        Unmatched(request=k, only_in="base", requests=e.requests) for k, e in base_by.items() if k not in new_by
    ]
    unmatched += [
        Unmatched(request=k, only_in="new", requests=e.requests) for k, e in new_by.items() if k not in base_by
    ]
    regressions = sum(1 for m in metrics if m.verdict == "regression")
    return Comparison(
        base=_ref(base, base_file), new=_ref(new, new_file), method=stats.METHOD, interval_confidence=0.95,
        test_z=stats.TEST_Z, rules=[r.text or r.describe() for r in rules], metrics=metrics, unmatched=unmatched,
        warnings=_load_warnings(base, new) + _mix_warning(moved, new), regressions=regressions,
        improvements=sum(1 for m in metrics if m.verdict == "improvement"), passed=not regressions,
        exit_code=1 if regressions else 0,
    )  # fmt: skip


def check_scopes(rules: list[Rule], base: Results, new: Results) -> None:
    """``LrunError`` for a rule naming a request neither run has."""
    entries = (*base.requests, *new.requests)
    known = {TOTAL} | {label(e) for e in entries} | {e.name for e in entries}
    lowered = {k.lower() for k in known}
    for rule in rules:
        if rule.scope is not None and rule.scope.lower() not in lowered:
            from runner.suggest import did_you_mean

            hint = did_you_mean(rule.scope, known) or f"the requests: {_few(sorted(known - {TOTAL}), 5)}"
            raise LrunError(f"--fail-on {rule.text!r}: no request {rule.scope!r} in either run ({hint})")
