"""Which user types start, how many, and in what order."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from runner.engine.dispatch import assign, distribute, spawn_order


@dataclass
class Kind:
    weight: int = 1
    fixed_count: int | None = None


@pytest.mark.parametrize(
    ("weights", "users", "expected"),
    [
        ([3, 1], 10, [8, 2]),
        ([1, 2, 3], 6, [1, 2, 3]),
        ([1, 2, 3], 1, [0, 0, 1]),
        ([1, 1], 3, [2, 1]),
        ([5, 0], 4, [4, 0]),
        ([1, 1, 1], 0, [0, 0, 0]),
    ],
)
def test_users_are_shared_by_weight(weights: list[int], users: int, expected: list[int]) -> None:
    counts = distribute([Kind(w) for w in weights], users)
    assert counts == expected
    assert sum(counts) == users or not any(weights)


def test_fixed_counts_come_first_and_never_exceed_the_total() -> None:
    assert distribute([Kind(fixed_count=2), Kind(3), Kind(1)], 10) == [2, 6, 2]
    assert distribute([Kind(fixed_count=5), Kind(1)], 3) == [3, 0]


def test_spawn_order_interleaves_in_proportion() -> None:
    order = spawn_order([6, 2])
    assert Counter(order) == {0: 6, 1: 2}
    first_half = Counter(order[:4])
    assert first_half == {0: 3, 1: 1}  # the mix is right while ramping up, not all of one type first


def test_large_runs_stay_exact() -> None:
    counts = distribute([Kind(1), Kind(2), Kind(3)], 10_000)
    assert counts == [1667, 3333, 5000]
    assert len(spawn_order(counts)) == 10_000


def test_arrival_schedule() -> None:
    from runner.engine.arrivals import RateStage, arrival_times

    constant = arrival_times([RateStage(2, 20)], start_rate=20)
    assert len(constant) == 40 and constant[0] == 0 and constant[-1] == pytest.approx(1.95)
    ramp = arrival_times([RateStage(10, 10)])  # 0 -> 10/s over 10 s: 50 arrivals, denser at the end
    assert len(ramp) == 50
    assert ramp[1] - ramp[0] > ramp[-1] - ramp[-2]
    shape = arrival_times([RateStage(1, 4), RateStage(2, 4), RateStage(1, 0)])
    assert len(shape) == 12 and list(shape) == sorted(set(shape))


@pytest.mark.parametrize("workers", [1, 2, 3, 7])
def test_users_are_dealt_to_workers_evenly(workers: int) -> None:
    for counts in ([8, 2], [1, 2, 3], [0, 5, 0], [13, 1, 1], [0, 0]):
        split = assign(counts, workers)
        assert [sum(column) for column in zip(*split, strict=True)] == counts  # every user, once
        totals = [sum(row) for row in split]
        assert max(totals) - min(totals) <= 1
        for index, count in enumerate(counts):  # each class evenly too
            assert {row[index] for row in split} <= {count // workers, -(-count // workers)}


def test_one_more_user_moves_few_others() -> None:
    workers = 3
    for first in range(12):
        before, after = assign([first, 4, 5], workers), assign([first + 1, 4, 5], workers)
        for index in (1, 2):
            moved = sum(abs(b[index] - a[index]) for b, a in zip(before, after, strict=True))
            assert moved <= 2  # one stopped here, one started there


def test_no_workers_get_nothing() -> None:
    assert assign([3, 1], 0) == []
