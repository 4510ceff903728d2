"""The statistical tests of the regression gate, computed from two runs' results (their histograms and counts).

- A latency percentile: each run's distribution-free confidence interval of the percentile from its histogram
  (order statistics: the ranks ``nq ± z·√(D·nq(1-q))``, read off the cumulative bucket counts and widened to the
  buckets' edges). The change is beyond noise when the two runs' intervals do not overlap.
- The error rate: a two-proportion z-test (pooled).
- Throughput: the z-test of the log of the ratio of two Poisson rates (``ln(r2/r1) / √(1/n1 + 1/n2)``).

The total's percentiles mix request names: when one run made more of the fast requests than the other (a random
task choice, a closed model's pace), the total's median can jump from one name's latency to another's with no
request any slower. So the total is judged at the baseline's mix (direct standardization): each request name's
histogram of the new run is weighted to the share that name had of the baseline's requests.

Requests are not independent: a slow second (a busy machine, a GC pause) slows many at once, and the tail moves
with it. ``D``, the variance inflation, measures that from the run itself (batch means): how much more the
percentile of its one-second intervals varies than it would if each request were independent (at least 1). The
percentile's interval is that of ``n / D`` independent requests. And since no test sees what differs between two
runs only (the machine's state), the gate fails only on a change that is significant *and* beyond the rule's
minimum practical effect.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from itertools import accumulate

from runner.stats.histogram import Histogram, bucket_width

INTERVAL_Z = 1.96  # each run's percentile interval: 95 %; two apart ≈ a two-sample test at 99.4 % (1.96·√2)
TEST_Z = 2.576  # the z-tests: a change is significant beyond |z| = 2.576 (99 %, two-sided)
METHOD = (
    "Latency percentile: each run's 95% distribution-free confidence interval of the percentile from its "
    "histogram (order statistics, ranks nq ± 1.96·√(D·nq(1−q)), widened to bucket edges; D ≥ 1 is the run's "
    "variance inflation, how much more its per-second percentiles vary than independent requests would); "
    "significant when the two intervals do not overlap (≈ 99.4% confidence). Error rate: two-proportion "
    "z-test, significant at |z| ≥ 2.576 (99%). Throughput: Poisson rate-ratio z-test, significant at "
    "|z| ≥ 2.576 (99%). A change fails the gate only when it is significant and beyond its rule's limit "
    "(the minimum practical effect)."
)


@dataclass(frozen=True)
class Interval:
    low: float  # ms; 0 when the rank falls below the first value
    high: float  # ms; inf when the rank falls beyond the last value (too few requests to bound it)


def percentile_interval(
    histogram: Histogram, q: float, z: float = INTERVAL_Z, inflation: float = 1.0
) -> Interval | None:
    """The ``q``-th percentile's confidence interval from the histogram (its variance times ``inflation``), None
    when it is empty."""
    n = histogram.count
    if not n:
        return None
    p = q / 100
    centre, spread = n * p, z * math.sqrt(inflation * n * p * (1 - p))
    low_rank, high_rank = math.floor(centre - spread), math.ceil(centre + spread) + 1
    keys = sorted(histogram.counts)
    cumulative = list(accumulate(histogram.counts[k] for k in keys))
    low = high = math.inf
    if low_rank < 1:
        low = 0.0
    else:
        key = keys[bisect_left(cumulative, low_rank)]
        low = max(key / 1000, histogram.min or 0.0)
    if high_rank <= n:
        key = keys[bisect_left(cumulative, high_rank)]
        high = min((key + bucket_width(key)) / 1000, histogram.max or math.inf)
    return Interval(low, high)


def intervals_apart(base: Interval, new: Interval) -> int:
    """+1 when the new interval lies wholly above the base one, -1 below, 0 when they overlap."""
    if new.low > base.high:
        return 1
    if new.high < base.low:
        return -1
    return 0


def proportion_z(failures1: int, n1: int, failures2: int, n2: int) -> float | None:
    """The two-proportion z statistic (pooled) of the second ratio against the first; None without requests."""
    if not n1 or not n2:
        return None
    pooled = (failures1 + failures2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0
    return (failures2 / n2 - failures1 / n1) / se


def rate_z(n1: int, seconds1: float, n2: int, seconds2: float) -> float | None:
    """The z statistic of the log ratio of two Poisson rates (counts over seconds), half a count added to each
    so that a run with no request still compares; None without a measured time."""
    if seconds1 <= 0 or seconds2 <= 0:
        return None
    a, b = n1 + 0.5, n2 + 0.5
    return math.log((b / seconds2) / (a / seconds1)) / math.sqrt(1 / a + 1 / b)


def at_mix(parts: list[tuple[Histogram, float]]) -> Histogram:
    """One histogram of ``parts`` (a request name's histogram, the share it is to have of all requests): each
    part's counts scaled so that it makes that share, the parts' total count kept."""
    n = sum(h.count for h, _ in parts)
    counts: dict[int, int] = {}
    low, high, total, sumsq = math.inf, -math.inf, 0.0, 0.0
    for histogram, share in parts:
        if not histogram.count or share <= 0:
            continue
        weight = share * n / histogram.count
        cumulative = done = 0  # rounded as a running sum: each part's distribution kept within half a request
        for key in sorted(histogram.counts):
            cumulative += histogram.counts[key]
            scaled = round(cumulative * weight) - done
            done += scaled
            counts[key] = counts.get(key, 0) + scaled
        total, sumsq = total + histogram.total * weight, sumsq + histogram.sumsq * weight
        low, high = min(low, histogram.min or 0.0), max(high, histogram.max or 0.0)
    rounded = {k: c for k, c in sorted(counts.items()) if c}
    count = sum(rounded.values())
    data = {"counts": [list(rounded), list(rounded.values())], "count": count, "min": low, "max": high}
    return Histogram.from_dict({**data, "sum": total, "sumsq": sumsq})


MIN_POINT_REQUESTS = 10  # an interval with fewer requests says too little about its percentile
MAX_INFLATION = 10_000.0


def inflation(histogram: Histogram, q: float, points: list[tuple[int, float]]) -> float:
    """The variance inflation ``D`` of the ``q``-th percentile (batch means, see the module): ``points`` are the
    run's intervals as (requests, the interval's q-th percentile in ms); 1 with fewer than two usable intervals."""
    used = [(n, v) for n, v in points if n >= MIN_POINT_REQUESTS]
    if len(used) < 2 or not histogram.count:
        return 1.0
    whole = percentile_interval(histogram, q)
    if whole is None or math.isinf(whole.high) or whole.high <= whole.low:
        return 1.0
    se_whole = (whole.high - whole.low) / (2 * INTERVAL_Z)  # of all n requests, were they independent
    values = [v for _, v in used]
    mean = sum(values) / len(values)
    observed = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    expected = se_whole**2 * sum(histogram.count / n for n, _ in used) / len(used)  # of one interval's percentile
    return min(MAX_INFLATION, max(1.0, observed / expected))
