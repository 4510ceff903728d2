"""Which user types to start, and in what order: pure functions, tested on their own.

Fixed counts are honoured first; the remaining users are shared by weight with the largest-remainder method,
so 10 users at weights 3:1 are 8 and 2 (not 7 and 3). The spawn order interleaves the types (smooth weighted
round-robin), so that while ramping up the mix already has the right proportions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol


class Weighted(Protocol):
    weight: int
    fixed_count: int | None


def distribute(classes: Sequence[Weighted], users: int) -> list[int]:
    """How many users of each class make ``users`` in all."""
    counts = [0] * len(classes)
    left = users
    for i, cls in enumerate(classes):
        if cls.fixed_count is not None:
            counts[i] = min(cls.fixed_count, left)
            left -= counts[i]
    weighted = [i for i, cls in enumerate(classes) if cls.fixed_count is None and cls.weight > 0]
    total = sum(classes[i].weight for i in weighted)
    if left <= 0 or not total:
        return counts
    shares = {i: left * classes[i].weight / total for i in weighted}
    for i in weighted:
        counts[i] = int(shares[i])
    remainder = left - sum(counts[i] for i in weighted)
    for i in sorted(weighted, key=lambda i: (-(shares[i] - int(shares[i])), i))[:remainder]:
        counts[i] += 1
    return counts


def spawn_order(counts: Sequence[int]) -> list[int]:
    """Class indices in the order to start them: interleaved in proportion (smooth weighted round-robin)."""
    return list(start_order(counts))


def start_order(counts: Sequence[int]) -> Iterator[int]:
    """``spawn_order`` one index at a time: no list of a user per entry, whatever was asked (10^12 users)."""
    total = sum(counts)
    current = [0] * len(counts)
    classes = range(len(counts))
    for _ in range(total):
        for i, count in enumerate(counts):
            current[i] += count
        best = max(classes, key=current.__getitem__)
        current[best] -= total
        yield best


def assign(counts: Sequence[int], workers: int) -> list[list[int]]:
    """Split users per class (``distribute``'s answer) across ``workers``: ``result[w][class]``.

    Each class is shared as evenly as it can be (floor for everyone, then one more for some), and the extra
    ones are dealt in turn across the classes, so worker totals differ by at most one and every worker runs
    the mix. One more user of a class moves at most one running user of each later class to another worker.
    """
    if workers <= 0:
        return []
    result = [[count // workers for count in counts] for _ in range(workers)]
    turn = 0
    for index, count in enumerate(counts):
        for _ in range(count % workers):
            result[turn % workers][index] += 1
            turn += 1
    return result


def capped(counts: Sequence[int], limit: int) -> list[int]:
    """``counts`` scaled down in proportion so that they add up to at most ``limit`` (a worker asked for more
    users than one process runs: ``runner.scenario.numbers.MAX_USERS_PER_PROCESS``)."""
    total = sum(counts)
    if total <= limit:
        return list(counts)
    return [count * limit // total for count in counts]
