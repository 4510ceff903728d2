"""Row sources: which row of a data pool comes next, shared by all users of a process.

``take(n)`` / ``give_back(indices)`` / ``wait(timeout)`` (unique + cycle: the next row given back, first come first
served) is all a user side needs, so a distributed run puts the real source in the master and gives workers one
that asks it (``RemoteRows``: sequential rows in blocks, unique ones singly). Sources also count users' waits for a
row and users that stopped for lack of one (the results' pools).
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import gevent
from gevent.event import AsyncResult


class RowSource(Protocol):
    """Which row indices come next. Local sources, or (distributed) one asking the master for them."""

    rows: int
    handed_out: int
    dry_at: float | None
    waits: int  # users that found no free row and waited for one (unique + cycle)
    wait_time: float  # seconds they waited in all
    users_stopped: int  # users that stopped for lack of a row
    warned: bool  # this process logged its warning about a user stopping for lack of a row

    def take(self, n: int = 1) -> list[int]:
        """Up to ``n`` row indices; fewer (or none) when the pool ran out."""
        ...

    def give_back(self, indices: Sequence[int]) -> None:
        """Rows a user no longer holds (unique order only: they may be handed out again with cycle)."""
        ...

    def wait(self, timeout: float) -> int | None:
        """A row given back within ``timeout`` seconds (unique + cycle; first come, first served), or None."""
        ...

    def note(self, waited: float | None = None, stopped: bool = False) -> None:
        """Count a user's wait for a row (``waited`` seconds), or a user that ``stopped`` for lack of one."""
        ...


class _Counted:
    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.handed_out = 0
        self.dry_at: float | None = None
        self.waits = 0
        self.wait_time = 0.0
        self.users_stopped = 0
        self.warned = False

    def _dry(self) -> list[int]:
        if self.dry_at is None:
            self.dry_at = time.time()
        return []

    def wait(self, timeout: float) -> int | None:
        return None  # only unique + cycle gets rows back

    def note(self, waited: float | None = None, stopped: bool = False) -> None:
        if waited is not None:
            self.waits += 1
            self.wait_time += waited
        self.users_stopped += stopped


class SequentialRows(_Counted):
    """One cursor for everybody: row 0, 1, 2 …; with ``cycle`` it starts over, otherwise it runs dry."""

    def __init__(self, rows: int, cycle: bool) -> None:
        super().__init__(rows)
        self.cycle = cycle
        self._next = 0

    def take(self, n: int = 1) -> list[int]:
        if self.cycle and self.rows:
            first = self._next
            self._next = (first + n) % self.rows
            self.handed_out += n
            return [(first + i) % self.rows for i in range(n)]
        first, last = self._next, min(self._next + n, self.rows)
        if first >= last:
            return self._dry()
        self._next = last
        self.handed_out += last - first
        return list(range(first, last))

    def give_back(self, indices: Sequence[int]) -> None:
        pass


class RandomRows(_Counted):
    """Any row, each time; never runs dry."""

    def take(self, n: int = 1) -> list[int]:
        if not self.rows:
            return self._dry()
        self.handed_out += n
        return [random.randrange(self.rows) for _ in range(n)]

    def give_back(self, indices: Sequence[int]) -> None:
        pass


class UniqueRows(SequentialRows):
    """Rows nobody holds, in file order. Without ``cycle`` each row is handed out once in the whole run; with
    ``cycle`` a row given back goes to the user that has waited longest for one, else to the end of the line."""

    def __init__(self, rows: int, cycle: bool) -> None:
        super().__init__(rows, cycle=False)
        self.recycle = cycle
        self._returned: deque[int] = deque()
        self._waiters: deque[AsyncResult[int]] = deque()

    def take(self, n: int = 1) -> list[int]:
        fresh = super().take(n) if self._next < self.rows else []
        while len(fresh) < n and self._returned:
            fresh.append(self._returned.popleft())
            self.handed_out += 1
        return fresh or self._dry()

    def give_back(self, indices: Sequence[int]) -> None:
        if not self.recycle:
            return
        for index in indices:
            if self._waiters:
                self._waiters.popleft().set(index)
                self.handed_out += 1
            else:
                self._returned.append(index)

    def wait(self, timeout: float) -> int | None:
        if not self.recycle or timeout <= 0:
            return None
        taken = self.take(1)  # one came back since the caller looked
        if taken:
            return taken[0]
        waiter: AsyncResult[int] = AsyncResult()
        self._waiters.append(waiter)
        try:
            got: int | None = waiter.get(timeout=timeout)
            return got
        except gevent.Timeout:
            return None
        except BaseException:  # the user is killed (the test stops): a row handed to it goes to the next one
            if waiter.ready():
                self.handed_out -= 1
                self.give_back([waiter.get()])
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)


class RemoteRows(_Counted):
    """Rows of a pool another process owns (a distributed run's master).

    ``fetch(n, wait)`` asks the owner for up to ``n`` row indices (waiting up to ``wait`` seconds for one given
    back) and returns (indices, dry); ``tell(returned, unused, waited, stopped)`` tells it, one way, of rows
    given back, of rows of a block nobody took, and of a user's wait or stop, which the owner counts. A
    sequential pool is fetched in blocks; a unique one a row at a time, and its rows go back to the owner, so no
    worker holds rows another worker's users need.
    """

    BLOCK = 16  # rows of a sequential pool asked for at once; the owner gives fewer near the end of a pool

    def __init__(
        self,
        rows: int,
        fetch: Callable[[int, float], tuple[list[int], bool]],
        tell: Callable[[Sequence[int], int, float | None, bool], None],
        unique: bool,
        recycle: bool = False,
    ) -> None:
        super().__init__(rows)
        self.fetch = fetch
        self.tell = tell
        self.block = 1 if unique else self.BLOCK
        self.recycle = unique and recycle  # rows come back: a dry pool may have one again
        self._buffer: deque[int] = deque()
        self._exhausted = False

    def take(self, n: int = 1) -> list[int]:
        while len(self._buffer) < n and not self._exhausted:
            indices, dry = self.fetch(max(n - len(self._buffer), self.block), 0.0)
            self._buffer.extend(indices)
            self._exhausted = dry and not indices and not self.recycle
            if not indices:
                break
        taken = [self._buffer.popleft() for _ in range(min(n, len(self._buffer)))]
        self.handed_out += len(taken)
        return taken or self._dry()

    def give_back(self, indices: Sequence[int]) -> None:
        if indices:
            self.tell(indices, 0, None, False)

    def flush(self) -> None:
        """The test ends: rows fetched that no user took were not handed out."""
        if self._buffer:
            self.tell((), len(self._buffer), None, False)
            self._buffer.clear()

    def wait(self, timeout: float) -> int | None:
        if timeout <= 0:
            return None
        indices, _ = self.fetch(1, timeout)
        if not indices:
            return None
        self.handed_out += 1
        return indices[0]

    def note(self, waited: float | None = None, stopped: bool = False) -> None:
        super().note(waited, stopped)
        self.tell((), 0, waited, stopped)


class Pooled(Protocol):
    """What a test's state needs of a data pool (a ``compile.pools.Pool``): its name and a fresh row source."""

    name: str

    def new_rows(self) -> RowSource: ...


def make_source(order: str, rows: int, policy: str) -> RowSource:
    cycle = policy == "cycle"
    if order == "random":
        return RandomRows(rows)
    if order == "unique":
        return UniqueRows(rows, cycle)
    return SequentialRows(rows, cycle)


@dataclass(slots=True)
class Held:
    """The row a user holds in a pool, and the iteration it took it in."""

    index: int
    row: dict[str, Any]
    epoch: int


class Holder(Protocol):
    """What a pool reads and writes of a user (an ``engine.user.VirtualUser``)."""

    iteration: int
    pool_rows: dict[str, Held]  # the row held in each pool, by the pool's name
    vars: dict[str, Any]  # a row taken goes to the variable named as the pool

    def warn(self, message: str) -> None: ...
