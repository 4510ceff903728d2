"""The statistics core: histogram accuracy and bounds, entries and their windows, series, errors, merging."""

from __future__ import annotations

import json
import math
import random
import statistics

import pytest

from runner.stats import RequestStats, StatsEntry
from runner.stats.errors import ErrorStats
from runner.stats.histogram import PERCENTILES, Histogram, bucket_key, bucket_width
from runner.stats.period import Period
from runner.stats.series import Series


class Clock:
    """An injected clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.25) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def exact_percentile(ordered: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q% of the values at or below it."""
    if q <= 0:
        return ordered[0]
    rank = max(1, math.ceil(q / 100 * len(ordered) - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def log_uniform(rng: random.Random, low_ms: float, high_ms: float) -> float:
    return math.exp(rng.uniform(math.log(low_ms), math.log(high_ms)))


# --------------------------------------------------------------------------------------------- Histogram


def test_small_values_are_exact_microseconds() -> None:
    for us in (0, 1, 7, 500, 1023):
        assert bucket_key(us) == us
        assert bucket_width(us) == 1
    assert bucket_key(1024) == 1024 and bucket_width(1024) == 2
    assert bucket_key(1025) == 1024
    assert bucket_key(123_456_789) <= 123_456_789 < bucket_key(123_456_789) + bucket_width(bucket_key(123_456_789))


def test_every_bucket_is_within_a_thousandth_of_its_values() -> None:
    for us in [*range(1024, 5000, 7), *(int(1.37**k) for k in range(23, 60))]:
        key = bucket_key(us)
        assert key <= us < key + bucket_width(key)
        assert bucket_width(key) / key <= 1 / 512


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng: rng.lognormvariate(3.0, 1.2),  # ~20 ms median, long tail
        lambda rng: log_uniform(rng, 0.05, 60_000),
        lambda rng: rng.uniform(900, 1100),
    ],
    ids=["lognormal", "log-uniform", "narrow"],
)
def test_percentiles_within_0_2_percent_of_exact(draw) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    values = [draw(rng) for _ in range(50_000)]
    histogram = Histogram()
    for value in values:
        histogram.record(value)
    ordered = sorted(values)
    qs = [*PERCENTILES, 0, 1, 10, 25, 33.3, 99.5, 99.95]
    got = histogram.percentiles(qs)
    assert list(got) == qs  # in the order asked
    for q in qs:
        exact = exact_percentile(ordered, q)
        assert got[q] is not None
        # 0.2% of the value, or below 1.024 ms (exact microseconds) half a microsecond
        assert abs(got[q] - exact) < max(0.002 * exact, 0.0005 + 1e-12), (q, got[q], exact)
        assert got[q] == histogram.percentile(q)
    assert got[0] == ordered[0] == histogram.min
    assert got[100] == ordered[-1] == histogram.max


def test_summary_values() -> None:
    rng = random.Random(3)
    values = [rng.uniform(1, 500) for _ in range(2000)]
    histogram = Histogram()
    for value in values:
        histogram.record(value)
    assert histogram.count == len(values) and bool(histogram)
    assert histogram.total == pytest.approx(sum(values))
    assert histogram.mean == pytest.approx(statistics.fmean(values))
    assert histogram.stddev == pytest.approx(statistics.pstdev(values), rel=1e-6)
    assert histogram.min == min(values) and histogram.max == max(values)


def test_empty_and_odd_values() -> None:
    histogram = Histogram()
    assert not histogram
    assert histogram.percentile(50) is None and histogram.mean is None and histogram.stddev is None
    assert histogram.min is None and histogram.max is None
    assert histogram.percentiles(PERCENTILES) == dict.fromkeys(PERCENTILES)
    histogram.record(-3.0)  # a clock that went backwards: counted as 0
    histogram.record(42.0)
    assert histogram.min == 0.0 and histogram.percentile(0) == 0.0 and histogram.percentile(100) == 42.0
    single = Histogram()
    single.record(12.0)
    assert all(value == 12.0 for value in single.percentiles(PERCENTILES).values())


def test_merge_equals_recording_everything_in_one() -> None:
    rng = random.Random(11)
    values = [rng.lognormvariate(4, 1.5) for _ in range(30_000)]
    whole, parts = Histogram(), [Histogram() for _ in range(4)]
    for i, value in enumerate(values):
        whole.record(value)
        parts[i % 4].record(value)
    merged = Histogram()
    for part in parts:
        merged.merge(part)
    merged.merge(Histogram())  # an empty one changes nothing
    assert merged.counts == whole.counts
    assert (merged.count, merged.min, merged.max) == (whole.count, whole.min, whole.max)
    assert merged.total == pytest.approx(whole.total) and merged.sumsq == pytest.approx(whole.sumsq)
    assert merged.percentiles(PERCENTILES) == whole.percentiles(PERCENTILES)


def test_to_dict_round_trip_through_json() -> None:
    rng = random.Random(5)
    histogram = Histogram()
    for _ in range(5000):
        histogram.record(rng.lognormvariate(3, 1))
    data = json.loads(json.dumps(histogram.to_dict(), allow_nan=False))
    assert set(data) == {"counts", "count", "min", "max", "sum", "sumsq"}
    assert all(isinstance(key, str) for key in data["counts"])
    back = Histogram.from_dict(data)
    assert back.counts == histogram.counts and back.count == histogram.count
    assert (back.min, back.max, back.total, back.sumsq) == (
        histogram.min,
        histogram.max,
        histogram.total,
        histogram.sumsq,
    )
    assert back.percentiles(PERCENTILES) == histogram.percentiles(PERCENTILES)
    empty = json.loads(json.dumps(Histogram().to_dict(), allow_nan=False))
    assert empty["min"] is None and not Histogram.from_dict(empty)
    copy = histogram.copy()
    copy.record(1.0)
    assert copy.count == histogram.count + 1


@pytest.mark.parametrize(
    "bad", [{}, {"counts": []}, {"counts": {"x": 1}, "count": 1}, {**Histogram().to_dict(), "count": 3}]
)
def test_from_dict_rejects_what_is_not_a_histogram(bad: dict) -> None:
    with pytest.raises(ValueError, match="not a histogram"):
        Histogram.from_dict(bad)


def test_bucket_count_is_bounded_for_a_million_values_over_six_decades() -> None:
    rng = random.Random(1)
    histogram = Histogram()
    record, uniform, exp, low, high = histogram.record, rng.uniform, math.exp, math.log(0.01), math.log(10_000)
    for _ in range(1_000_000):
        record(exp(uniform(low, high)))  # 10 µs … 10 s
    doublings_above_exact = math.ceil(math.log2(10_000_000 / 1024))
    assert histogram.count == 1_000_000
    assert len(histogram.counts) <= 1024 + 512 * doublings_above_exact  # ≈ 8,200, whatever the count


# ----------------------------------------------------------------------------------------- StatsEntry


def steady_load(stats: RequestStats, clock: Clock, seconds: int, per_second: int, ms: float, name: str = "/a") -> None:
    """``per_second`` requests of ``ms`` each second, spread over the second."""
    for _ in range(seconds):
        base = math.floor(clock.now)
        for i in range(per_second):
            clock.now = base + (i + 0.5) / per_second
            stats.log("GET", name, ms, 100, None)
        clock.now = base + 1


def test_current_values_cover_the_last_window_of_complete_seconds() -> None:
    clock = Clock(1000.0)
    stats = RequestStats(window=10, clock=clock)
    steady_load(stats, clock, 20, 5, ms=100.0)  # seconds 1000 … 1019
    steady_load(stats, clock, 10, 20, ms=10.0)  # seconds 1020 … 1029
    now = clock.now + 0.3
    entry = stats.entries[("GET", "/a")]
    assert entry.current_rps(now) == pytest.approx(20.0)
    assert stats.total.current_rps(now) == pytest.approx(20.0)
    assert entry.current_percentile(95, now) == pytest.approx(10.0)  # the slow seconds are out of the window
    assert entry.histogram.percentile(95) == pytest.approx(100.0)  # but in the whole run
    assert entry.current_failures_per_s(now) == 0.0
    later = now + 5  # half of the window has no requests
    assert entry.current_rps(later) == pytest.approx(10.0)
    assert entry.current_percentile(50, now + 60) is None


def test_current_rate_at_the_start_counts_only_the_time_running() -> None:
    clock = Clock(1000.5)
    stats = RequestStats(clock=clock)
    for i in range(30):  # 30 requests over 1.5 s: 20/s
        clock.now = 1000.5 + i * 0.05
        stats.log("GET", "/a", 5.0, 0, None)
    # complete seconds: only 1000, of which 0.5 s ran, with 10 requests
    assert stats.total.current_rps(1001.9) == pytest.approx(20.0)
    assert stats.total.current_rps(1000.7) == 0.0  # no complete second yet


def test_reads_include_the_second_under_way_and_the_total_is_the_sum() -> None:
    clock = Clock()
    stats = RequestStats(clock=clock)
    rng = random.Random(2)
    expected: dict[str, Histogram] = {"/a": Histogram(), "/b": Histogram()}
    everything = Histogram()
    for i in range(3000):
        clock.now += 0.003
        name = "/a" if i % 3 else "/b"
        ms = rng.lognormvariate(3, 1)
        stats.log("GET", name, ms, 10, "HTTP 500" if i % 100 == 0 else None)
        expected[name].record(ms)
        everything.record(ms)
    for name, histogram in expected.items():
        entry = stats.entries[("GET", name)]
        assert entry.histogram.counts == histogram.counts
        assert entry.num_requests == histogram.count and entry.histogram.max == histogram.max
    assert stats.total.num_requests == 3000 and stats.total.num_failures == 30
    assert stats.total.total_content_length == 30_000
    assert stats.total.histogram.counts == everything.counts
    assert stats.total.histogram.percentiles(PERCENTILES) == everything.percentiles(PERCENTILES)
    assert stats.total.last_request_time == clock.now


def test_entry_log_and_the_inlined_hot_path_agree() -> None:
    clock = Clock()
    stats = RequestStats(clock=clock)
    entry = StatsEntry("GET", "/a", start_time=clock.now)
    rng = random.Random(4)
    for i in range(2000):
        clock.now += 0.01
        ms, size, failed = rng.lognormvariate(2, 2), rng.randrange(1000), i % 7 == 0
        stats.log("GET", "/a", ms, size, "x" if failed else None)
        entry.log(ms, size, failed, clock.now)
    mine = stats.entries[("GET", "/a")]
    assert mine.histogram.to_dict() == entry.histogram.to_dict()
    assert mine.interval(0, 2**40).to_dict() == entry.interval(0, 2**40).to_dict()
    assert mine.to_dict(10.0) == entry.to_dict(10.0)


def test_entry_to_dict_with_and_without_requests() -> None:
    entry = StatsEntry("POST", "/login", start_time=0.0)
    empty = entry.to_dict(10.0)
    assert empty["requests"] == 0 and empty["failure_ratio"] == 0.0 and empty["rps"] == 0.0
    for key in ("avg_ms", "min_ms", "max_ms", "median_ms", "stddev_ms", "avg_bytes"):
        assert empty[key] is None
    assert set(empty["percentiles"]) == {"50", "66", "75", "80", "90", "95", "98", "99", "99.9", "99.99", "100"}
    assert all(value is None for value in empty["percentiles"].values())
    json.dumps(empty, allow_nan=False)
    for ms in (10.0, 20.0, 30.0, 40.0):
        entry.log(ms, 1000, ms == 40.0, now=5.0)
    full = entry.to_dict(2.0)
    assert (full["requests"], full["failures"], full["failure_ratio"]) == (4, 1, 0.25)
    assert (full["rps"], full["failures_per_s"]) == (2.0, 0.5)
    assert (full["avg_ms"], full["min_ms"], full["max_ms"]) == (25.0, 10.0, 40.0)
    assert full["median_ms"] == full["percentiles"]["50"] == pytest.approx(20.0, rel=1e-3)
    assert full["percentiles"]["100"] == 40.0
    assert (full["avg_bytes"], full["total_bytes"]) == (1000.0, 4000)
    assert full["stddev_ms"] == pytest.approx(statistics.pstdev([10, 20, 30, 40]), abs=1e-3)
    assert Histogram.from_dict(full["histogram"]).count == 4
    assert entry.to_dict(0.0)["rps"] == 0.0


def test_reset_forgets_everything_but_the_entries() -> None:
    clock = Clock()
    stats = RequestStats(clock=clock)
    steady_load(stats, clock, 3, 10, ms=50.0)
    stats.log("GET", "/a", 1.0, 0, "boom")
    stats.log_error(RuntimeError("bad"), "shopper")
    stats.sample(clock.now + 1, 1)
    clock.now += 2
    stats.reset()
    assert stats.start_time == clock.now
    assert stats.total.num_requests == 0 and not stats.errors and len(stats.series) == 0
    assert ("GET", "/a") in stats.entries and stats.entries[("GET", "/a")].num_requests == 0
    steady_load(stats, clock, 2, 4, ms=5.0)
    assert stats.total.num_requests == 8
    assert stats.total.histogram.max == 5.0


# ------------------------------------------------------------------------------------ workers → master


@pytest.mark.parametrize("entry_seconds", [True, False])
def test_deltas_merged_on_a_master_equal_one_process_that_saw_everything(entry_seconds: bool) -> None:
    clock = Clock(5000.0)
    workers = [RequestStats(clock=clock, node=f"worker-{i}") for i in range(3)]
    alone = RequestStats(clock=clock)
    master = RequestStats(clock=clock)
    rng = random.Random(9)
    for step in range(6000):
        clock.now += 0.002
        name = rng.choice(["/a", "/b", "/c"])
        ms = rng.lognormvariate(3, 1)
        failure = "HTTP 503" if rng.random() < 0.02 else None
        retries = 1 if rng.random() < 0.05 else 0
        for stats in (workers[step % 3], alone):
            stats.log("GET", name, ms, 123, failure, retries)
        if step % 1000 == 999:  # a report interval: every worker sends what it has
            for worker in workers:
                master.merge(json.loads(json.dumps(worker.delta(entry_seconds=entry_seconds), allow_nan=False)))
    try:
        raise KeyError("missing")
    except KeyError as error:
        workers[1].log_error(error, "shopper")
        alone.log_error(error, "shopper")
    for worker in workers:
        master.merge(worker.delta(entry_seconds=entry_seconds))
        assert worker.total.num_requests == 0 and not worker.errors  # a delta clears
    assert master.total.histogram.counts == alone.total.histogram.counts
    assert master.total.num_failures == alone.total.num_failures
    assert master.total.total_content_length == alone.total.total_content_length
    assert master.total.histogram.retries == alone.total.histogram.retries > 0
    for key, entry in alone.entries.items():
        assert master.entries[key].histogram.counts == entry.histogram.counts
        assert master.entries[key].histogram.retries == entry.histogram.retries
        if entry_seconds:  # each entry's own seconds (for --csv-full-history) only when asked
            assert master.entries[key].interval(0, 10**10).counts == entry.interval(0, 10**10).counts
        else:
            assert master.entries[key].interval(0, 10**10).count == 0
    now = clock.now + 1
    assert master.total.current_rps(now) == pytest.approx(alone.total.current_rps(now))
    assert master.total.current_percentile(95, now) == alone.total.current_percentile(95, now)
    assert master.errors.failure_list() == alone.errors.failure_list()
    [exception] = master.errors.exception_list()
    assert exception["type"] == "KeyError" and exception["nodes"] == ["worker-1"]
    mine, theirs = master.snapshot(duration=12.0, histograms=False), alone.snapshot(duration=12.0, histograms=False)
    assert (mine.total, mine.requests) == (theirs.total, theirs.requests)


def test_merging_a_request_stats_object_and_refusing_foreign_data() -> None:
    clock = Clock()
    one, two = RequestStats(clock=clock), RequestStats(clock=clock)
    one.log("GET", "/a", 10.0, 1, None)
    two.log("POST", "/b", 20.0, 1, None)
    one.merge(two)
    assert one.total.num_requests == 2 and two.total.num_requests == 1  # the source is left as it was
    with pytest.raises(ValueError, match="not an lrun statistics delta"):
        one.merge({"entries": []})
    with pytest.raises(ValueError, match="version"):
        one.merge({**two.state(), "version": 99})


def test_a_malformed_delta_changes_nothing() -> None:
    clock = Clock()
    worker, master = RequestStats(clock=clock), RequestStats(clock=clock)
    for name in ("/a", "/b"):
        worker.log("GET", name, 10.0, 1, "HTTP 500")
    good = worker.state(entry_seconds=False)
    master.merge(good)
    before = master.snapshot(duration=1.0)
    broken_entry = {**good, "entries": [good["entries"][0], {**good["entries"][1], "all": {"counts": [[1], ["x"]]}}]}
    broken_errors = {**good, "errors": {"failures": [{"method": "GET"}]}}
    broken_seconds = {**good, "total_seconds": {"soon": good["total_seconds"][next(iter(good["total_seconds"]))]}}
    for broken in (broken_entry, broken_errors, broken_seconds, {**good, "entries": {"not": "a list"}}):
        with pytest.raises(ValueError):
            master.merge(broken)
        assert master.snapshot(duration=1.0) == before


@pytest.mark.parametrize(
    ("counts", "why"),
    [
        ([[1000, 1000], [1, 1]], "each bucket once"),
        ([[1000], [1, 1]], "one count for each bucket"),
        ([[-5], [2]], "integers, keys from 0"),
        ([[1.5], [2]], "integers"),
        ([[2**50], [2]], "keys from 0 to 2\\*\\*48"),
        ([["1000"], [2]], "integers"),
    ],
)
def test_compact_histograms_are_checked(counts: list, why: str) -> None:
    data = {"counts": counts, "count": 2, "sum": 1.0, "sumsq": 1.0, "min": 0.5, "max": 0.5}
    with pytest.raises(ValueError, match=why):
        Histogram.from_dict(data)


def test_compact_form_round_trips() -> None:
    histogram = Histogram()
    for ms in (0.5, 1.0, 1.0, 250.0, 9000.0):
        histogram.record(ms)
    data = histogram.to_dict(compact=True)
    assert data["counts"] == [sorted(histogram.counts), [histogram.counts[k] for k in sorted(histogram.counts)]]
    back = Histogram.from_dict(data)
    assert back.counts == histogram.counts and back.percentiles(PERCENTILES) == histogram.percentiles(PERCENTILES)


# -------------------------------------------------------------------------------------------- series


def test_one_point_per_second_with_the_seconds_own_values() -> None:
    clock = Clock(2000.0)
    stats = RequestStats(clock=clock)
    for second in range(5):
        steady_load(stats, clock, 1, 10 * (second + 1), ms=10.0 * (second + 1))
        stats.sample(clock.now + 0.002, users=second + 1)
        stats.sample(clock.now + 0.5, users=99)  # same second again: nothing new
    points = stats.series.to_list()
    assert [p["t"] for p in points] == [2001, 2002, 2003, 2004, 2005]
    assert [p["users"] for p in points] == [1, 2, 3, 4, 5]
    assert [p["rps"] for p in points] == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert [p["p95_ms"] for p in points] == [10.0, 20.0, 30.0, 40.0, 50.0]
    last = points[-1]
    assert last["total_requests"] == 150 and last["total_max_ms"] == 50.0 and last["total_min_ms"] == 10.0
    assert last["percentiles"]["95"] == last["p95_ms"] and last["interval_s"] == 1.0
    json.dumps(points, allow_nan=False)


def test_a_late_sample_covers_every_second_since_the_last() -> None:
    clock = Clock(3000.0)
    stats = RequestStats(clock=clock)
    steady_load(stats, clock, 3, 10, ms=10.0)
    stats.sample(clock.now + 0.01, users=1)
    steady_load(stats, clock, 3, 20, ms=10.0)
    stats.sample(clock.now + 0.01, users=1)
    first, second = stats.series.to_list()
    assert (first["interval_s"], first["requests"], first["rps"]) == (3.0, 30, 10.0)
    assert (second["interval_s"], second["requests"], second["rps"]) == (3.0, 60, 20.0)


def test_the_end_of_a_run_gives_its_part_second_a_point_so_the_points_add_up_to_the_totals() -> None:
    clock = Clock(4000.5)  # started half-way through a second
    stats = RequestStats(clock=clock, full_history=True)
    for i in range(10):
        clock.now = 4000.5 + i * 0.05
        stats.log("GET", "/a", 5.0, 100, None)
    stats.sample(4001.01, users=2)
    clock.now = 4001.0
    steady_load(stats, clock, 2, 10, ms=5.0)  # seconds 4001, 4002
    for i in range(3):  # the part-second: 4003.0 … 4003.25
        clock.now = 4003.0 + i * 0.1
        stats.log("GET", "/a", 7.0, 100, None if i else "boom")
    stats.finish(4003.25, lambda second: {4003: 1}.get(second, 2))  # 4002 and 4003 not sampled yet
    points = stats.series.to_list()
    assert [p["t"] for p in points] == [4001, 4002, 4003, 4004]
    assert [p["interval_s"] for p in points] == [0.5, 1.0, 1.0, 0.25]
    assert [p["requests"] for p in points] == [10, 10, 10, 3]
    last = points[-1]
    assert (last["rps"], last["failures"], last["users"], last["p50_ms"]) == (12.0, 1, 1, 7.0)
    assert last["total_requests"] == stats.total.num_requests == sum(p["requests"] for p in points) == 33
    [entry] = stats.entries.values()
    assert [p["requests"] for p in entry.series.to_list()] == [10, 10, 10, 3]
    stats.finish(4003.25, lambda second: 0)  # again: nothing new
    stats.sample(4003.9, users=0)
    assert len(stats.series) == 4


def test_a_run_that_ends_on_the_second_or_without_requests_after_it_has_no_empty_last_point() -> None:
    clock = Clock(5000.0)
    stats = RequestStats(clock=clock)
    steady_load(stats, clock, 2, 10, ms=5.0)
    stats.finish(5002.0, lambda second: 1)
    assert [p["interval_s"] for p in stats.series.to_list()] == [1.0, 1.0]
    clock = Clock(5000.0)
    stats = RequestStats(clock=clock)
    steady_load(stats, clock, 2, 10, ms=5.0)
    stats.finish(5002.3, lambda second: 1)  # nothing ended in the last 0.3 s: no point says 0 req/s there
    assert [p["interval_s"] for p in stats.series.to_list()] == [1.0, 1.0]


def test_empty_seconds_have_no_percentiles_but_zero_rates() -> None:
    clock = Clock(3000.0)
    stats = RequestStats(clock=clock)
    stats.sample(3001.01, users=0)
    [point] = stats.series.to_list()
    assert point["requests"] == 0 and point["rps"] == 0.0 and point["avg_ms"] is None
    assert point["p99_ms"] is None and point["total_median_ms"] is None and point["total_avg_bytes"] is None
    json.dumps(point, allow_nan=False)


def test_series_stays_bounded_by_merging_pairs() -> None:
    clock = Clock(10_000.0)
    stats = RequestStats(clock=clock, max_points=50)
    total_requests = 0
    for second in range(1000):
        n = 1 + second % 5
        slow = second == 777
        steady_load(stats, clock, 1, n, ms=900.0 if slow else 10.0)
        total_requests += n
        stats.sample(clock.now + 0.001, users=second)
        assert len(stats.series) <= 50
    points = stats.series.to_list()
    assert stats.series.interval == 32  # 1000 s in ≤ 50 points
    assert sum(p["requests"] for p in points) == total_requests  # nothing lost in merging
    running = 0
    for p in points:  # the cumulative values agree with the points, merged or not
        running += p["requests"]
        assert p["total_requests"] == running
    assert sum(p["interval_s"] for p in points) == pytest.approx(1000.0)
    ts = [p["t"] for p in points]
    assert ts == sorted(ts) and ts[-1] == 11_000
    for p in points:
        assert p["rps"] == pytest.approx(p["requests"] / p["interval_s"], abs=1e-3)
    assert max(p["percentiles"]["100"] for p in points) == 900.0  # a slow second is never averaged away
    assert points[-1]["users"] == 999 and points[-1]["total_requests"] == total_requests


def test_series_default_cap_is_an_hour_of_seconds() -> None:
    series = Series()
    empty = Period()
    for t in range(1, 24 * 3600 + 1, 4):  # a day, sampled every 4 s to keep the test quick
        series.add(t, 4, 4.0, 10, empty)
    assert len(series) <= 3600 and series.max_points == 3600
    assert series[-1]["t"] == 24 * 3600 - 3
    with pytest.raises(IndexError):
        series[len(series)]


def test_full_history_keeps_a_series_per_entry_aligned_with_the_total() -> None:
    clock = Clock(100.0)
    stats = RequestStats(clock=clock, full_history=True, max_points=8)
    for second in range(40):
        base = clock.now
        for offset in (0.25, 0.75):
            clock.now = base + offset
            stats.log("GET", "/a", 10.0, 5, None)
        if second >= 15:  # /b appears later
            clock.now = base + 0.5
            stats.log("GET", "/b", 20.0, 5, None)
        clock.now = base + 1
        stats.sample(clock.now + 0.001, users=3)
    a, b = stats.entries[("GET", "/a")], stats.entries[("GET", "/b")]
    assert a.series is not None and b.series is not None
    assert len(a.series) == len(b.series) == len(stats.series) <= 8
    assert [p["t"] for p in a.series] == [p["t"] for p in stats.series]
    snapshot = stats.snapshot(duration=40.0)
    by_name = {e.name: e.series or [] for e in snapshot.requests}
    assert sum(p.requests for p in by_name["/a"]) == 80
    assert sum(p.requests for p in by_name["/b"]) == 25
    assert all(p.total_requests for p in by_name["/b"])  # nothing before its first request
    assert "series" not in RequestStats().snapshot(duration=1.0).total.model_fields_set


# -------------------------------------------------------------------------------------------- errors


def test_failures_are_grouped_by_method_name_and_message() -> None:
    clock = Clock(50.0)
    stats = RequestStats(clock=clock)
    for i in range(10):
        clock.now = 50.0 + i
        stats.log("GET", "/a", 1.0, 0, "HTTP 500 Internal Server Error")
        stats.log("GET", "/b", 1.0, 0, "HTTP 500 Internal Server Error")
        if i % 2:
            stats.log("POST", "/a", 1.0, 0, "timed out after 2.0s")
    groups = stats.errors.failure_list()
    assert [(g["method"], g["name"], g["count"]) for g in groups] == [
        ("GET", "/a", 10),
        ("GET", "/b", 10),
        ("POST", "/a", 5),
    ]
    assert groups[0]["first_seen"] == 50.0 and groups[0]["last_seen"] == 59.0
    assert groups[2]["first_seen"] == 51.0 and not any(g["other"] for g in groups)
    assert stats.total.num_failures == 25


def test_failure_groups_are_bounded() -> None:
    errors = ErrorStats(max_groups=5)
    for i in range(20):
        errors.add_failure("GET", "/orders", f"order {i} not found", now=float(i))
        errors.add_failure("GET", "/orders", f"order {i} not found", now=float(i))
    groups = errors.failure_list()
    assert len(groups) == 6
    other = groups[-1]
    assert other["other"] and other["count"] == 30 and "more than 5 distinct" in other["message"]
    assert other["first_seen"] == 5.0 and other["last_seen"] == 19.0
    assert sum(g["count"] for g in groups) == 40
    merged = ErrorStats(max_groups=5)
    merged.merge(errors.to_state())
    merged.merge(errors)
    assert len(merged.failure_list()) == 6 and sum(g["count"] for g in merged.failure_list()) == 80


def test_exceptions_are_grouped_by_type_and_message_with_one_traceback() -> None:
    clock = Clock(70.0)
    stats = RequestStats(clock=clock)

    def fail(n: int) -> None:
        raise ValueError(f"bad value {n % 2}")

    for i in range(6):
        clock.now = 70.0 + i
        try:
            fail(i)
        except ValueError as error:
            stats.log_error(error, "shopper" if i < 4 else "admin")
    stats.log_error(TimeoutError(), "admin")
    groups = stats.errors.exception_list()
    assert [(g["type"], g["message"], g["count"]) for g in groups] == [
        ("ValueError", "bad value 0", 3),
        ("ValueError", "bad value 1", 3),
        ("TimeoutError", "", 1),
    ]
    first = groups[0]
    assert "in fail" in first["traceback"] and first["traceback"].rstrip().endswith("ValueError: bad value 0")
    assert first["users"] == ["admin", "shopper"] and first["nodes"] == ["local"]
    assert (first["first_seen"], first["last_seen"]) == (70.0, 74.0)

    bounded = ErrorStats(max_groups=2)
    for i in range(5):
        bounded.add_exception(RuntimeError(f"#{i}"), "u", now=1.0)
    listed = bounded.exception_list()
    assert len(listed) == 3 and listed[-1]["other"] and listed[-1]["count"] == 3 and listed[-1]["traceback"] == ""


def test_the_snapshot_is_typed_and_a_live_read_leaves_the_series_out() -> None:
    from runner.report.model import Entry, Failure, Point

    clock = Clock()
    stats = RequestStats(clock=clock)
    for ms in (10.0, 20.0, 30.0):
        stats.log("GET", "/a", ms, 5, None)
    stats.log("POST", "/b", 40.0, 5, "HTTP 500")
    clock.now += 1
    stats.sample(clock.now + 0.001, users=2)
    end = stats.snapshot(duration=2.0)
    assert isinstance(end.total, Entry) and [type(e) for e in end.requests] == [Entry, Entry]
    assert (end.total.requests, end.total.failures) == (4, 1)
    assert end.requests[0].median_ms == pytest.approx(20.0, rel=1e-2)  # a bucket's midpoint
    assert [type(p) for p in end.series] == [Point] and end.series[0].requests == 4
    assert [type(f) for f in end.errors] == [Failure] and end.errors[0].message == "HTTP 500"
    live = stats.snapshot(duration=2.0, histograms=False, series=False)
    assert live.series == [] and live.total.histogram is None and end.total.histogram is not None
    assert [e.requests for e in live.requests] == [e.requests for e in end.requests] == [3, 1]
