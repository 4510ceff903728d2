"""Data pools (LoadRunner's parameter files): rows from a CSV file or an inline list, handed to virtual users.

Three parts, in the direction data flows:

- ``PoolData``: the rows. A CSV file is scanned once (header, ragged rows, encoding) and kept compactly: the
  file's bytes plus two 4-byte offsets per row; a row is parsed when it is handed out (5 µs). A million rows
  of ``phone,name`` (a 25 MB file) take about 33 MB this way, instead of ~250 MB as Python lists.
- A row source (``SequentialRows``, ``RandomRows``, ``UniqueRows``): which row index comes next, shared by all
  users of a process. ``take(n)`` / ``give_back(indices)`` / ``wait(timeout)`` (unique + cycle: the next row
  given back, first come first served) is all a user side needs, so a distributed run puts the real source in
  the master and gives workers one that asks it (``RemoteRows``: sequential rows in blocks, unique ones singly).
  Sources also count users' waits for a row and users that stopped for lack of one (the results' pools).
- ``Pool``: the rows plus the update and out-of-rows policies, as compiled (never changed by a run). Before each
  step that reads the pool, ``refresh(user, rows)`` applies them to a user with the test's own row source
  (``RunState.rows(pool)``: a second test in the same process starts from the first row again).
"""

from __future__ import annotations

import csv
import io
import random
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import gevent
from gevent.event import AsyncResult

from runner.engine.flow import StopTest, StopUser

if TYPE_CHECKING:
    from runner.scenario.model import Pool as PoolSpec


class PoolFileError(Exception):
    """Something wrong in a pool's CSV file, at ``line``:``col`` of it (1-based; 0 when not about a place)."""

    def __init__(self, message: str, line: int = 0, col: int = 0, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.line, self.col, self.hint = message, line, col, hint


# ----------------------------------------------------------------------------------------------- rows


class PoolData(Protocol):
    columns: tuple[str, ...]

    def __len__(self) -> int: ...

    def row(self, index: int) -> dict[str, Any]: ...


class InlineData:
    """Rows written in the scenario."""

    def __init__(self, rows: Sequence[Any]) -> None:
        mapped = [r if isinstance(r, dict) else {"value": r} for r in rows]
        names: dict[str, None] = {}
        for r in mapped:
            names.update(dict.fromkeys(r))
        self.columns = tuple(names)
        self._rows = [{c: r.get(c, "") for c in self.columns} for r in mapped]

    def __len__(self) -> int:
        return len(self._rows)

    def row(self, index: int) -> dict[str, Any]:
        return dict(self._rows[index])


class CsvData:
    """A CSV file held as its bytes and the (start, end) byte offsets of each record."""

    def __init__(
        self,
        path: Path,
        *,
        columns: Sequence[str] | None = None,
        header: bool = True,
        delimiter: str = ",",
        quote: str = '"',
        encoding: str = "utf-8",
        skip_empty: bool = True,
    ) -> None:
        self.path = path
        self.encoding_name = encoding
        self.encoding = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
        self._dialect: dict[str, Any] = {"delimiter": delimiter, "quotechar": quote, "strict": True}
        try:
            self._data = path.read_bytes()
        except OSError as exc:
            raise PoolFileError(f"cannot read {path}: {exc.strerror or exc}") from None
        offsets = "I" if len(self._data) < 2**32 else "Q"  # 4 bytes per offset for files under 4 GiB
        self._starts = array(offsets)
        self._ends = array(offsets)
        self.columns = self._scan(columns, header, skip_empty)

    def _records(self) -> Iterator[tuple[int, int, int, list[str]]]:
        """(first line, start offset, end offset, fields) of each record, quoted newlines included."""
        data = self._data
        position = {"line": 0, "offset": 0}

        def lines() -> Iterator[str]:
            start = 0
            size = len(data)
            while start < size:
                end = data.find(b"\n", start)
                end = size if end < 0 else end + 1
                position["line"] += 1
                position["offset"] = end
                try:
                    yield data[start:end].decode(self.encoding)
                except UnicodeDecodeError as exc:
                    raise PoolFileError(
                        f"not {self.encoding_name} text: {exc.reason} at byte {start + exc.start}",
                        position["line"],
                        exc.start + 1,
                        "set the pool's encoding (e.g. encoding: latin-1)",
                    ) from None
                except LookupError:
                    raise PoolFileError(f"unknown encoding {self.encoding_name!r}") from None
                start = end

        reader = csv.reader(lines(), **self._dialect)
        first_line, start = 1, 0
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise PoolFileError(f"malformed CSV: {exc}", position["line"], 1) from None
            yield first_line, start, position["offset"], fields
            first_line, start = position["line"] + 1, position["offset"]

    def _scan(self, columns: Sequence[str] | None, header: bool, skip_empty: bool) -> tuple[str, ...]:
        names: tuple[str, ...] | None = tuple(columns) if columns else None
        header_pending = header
        width = len(names) if names else None
        for line, start, end, fields in self._records():
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                if skip_empty or header_pending:
                    continue
                fields = [""]
            if header_pending:
                header_pending = False
                found = tuple(f.strip() for f in fields)
                if names is None:
                    self._check_header(found, line)
                    names, width = found, len(found)
                continue
            if width is None:
                width = len(fields)
                names = tuple(f"column{i + 1}" for i in range(width))
            if len(fields) != width:
                raise PoolFileError(
                    f"row has {len(fields)} field(s), the header has {width}",
                    line,
                    1,
                    "quote fields that contain the delimiter, or fix the row",
                )
            self._starts.append(start)
            self._ends.append(end)
        if names is None:
            raise PoolFileError("the file is empty: no header row", 1, 1, "add a header row naming the columns")
        return names

    @staticmethod
    def _check_header(names: tuple[str, ...], line: int) -> None:
        for index, name in enumerate(names):
            if not name.isidentifier():
                what = "an empty column name" if not name else f"column name {name!r} is not a plain name"
                raise PoolFileError(
                    f"{what} (column {index + 1}): templates read columns as {{{{ pool.column }}}}",
                    line,
                    1,
                    "use letters, digits and _ in the header, or give columns: [...] and header: true",
                )
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise PoolFileError(f"duplicate column name(s) in the header: {', '.join(duplicates)}", line, 1)

    def __len__(self) -> int:
        return len(self._starts)

    def row(self, index: int) -> dict[str, Any]:
        text = self._data[self._starts[index] : self._ends[index]].decode(self.encoding)
        fields = next(csv.reader(io.StringIO(text, newline=""), **self._dialect), [])
        return dict(zip(self.columns, fields, strict=False))


def load_data(spec: PoolSpec, path: Path | None) -> PoolData:
    """The rows of a pool: inline, or from the CSV file at ``path`` (already resolved)."""
    if spec.rows is not None:
        return InlineData(spec.rows)
    assert path is not None
    return CsvData(
        path,
        columns=spec.columns,
        header=spec.has_header,
        delimiter=spec.delimiter,
        quote=spec.quote,
        encoding=spec.encoding,
        skip_empty=spec.skip_empty,
    )


def find_csv(name: str, declared_in: Path, data_dir: Path | None) -> Path | None:
    """A pool's CSV file: in ``data_dir`` first (when given), then next to the file that declares the pool."""
    candidates = [Path(name)] if Path(name).is_absolute() else []
    if not candidates:
        if data_dir is not None:
            candidates.append(data_dir / name)
        candidates.append(declared_in.parent / name)
    return next((c for c in candidates if c.is_file()), None)


# ----------------------------------------------------------------------------------------------- sources


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
            return waiter.get(timeout=timeout)
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


def make_source(order: str, rows: int, policy: str) -> RowSource:
    cycle = policy == "cycle"
    if order == "random":
        return RandomRows(rows)
    if order == "unique":
        return UniqueRows(rows, cycle)
    return SequentialRows(rows, cycle)


# ----------------------------------------------------------------------------------------------- per user


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


class Pool:
    """A pool as compiled: data and policies. Which rows are handed out is a test's (its ``RowSource``); users
    hold rows in ``user.pool_rows``."""

    def __init__(self, name: str, data: PoolData, spec: PoolSpec, source: str = "inline") -> None:
        self.name = name
        self.data = data
        self.order = spec.order
        self.update = spec.update
        self.policy = spec.empty_policy
        self.wait = spec.wait_seconds  # how long a user waits for a row given back (unique + cycle), 0: never
        self.returns = self.order == "unique" and self.policy == "cycle"  # rows given back are handed out again
        self.source_name = source

    def new_rows(self) -> RowSource:
        """A fresh row source for a test: the first row (or a random one) comes next."""
        return make_source(self.order, len(self.data), self.policy)

    def refresh(self, user: Holder, rows: RowSource) -> None:
        """Before a step that reads the pool: give the user a new row from ``rows`` if its update policy says so.

        With unique + cycle the user gives its row back first (it may get it again when nobody else wants one),
        and a user that finds no free row waits up to the pool's ``wait`` for one before it stops."""
        held = user.pool_rows.get(self.name)
        if held is not None and (
            self.update == "once" or (self.update == "each_iteration" and held.epoch == max(user.iteration, 1))
        ):
            return
        if held is not None and self.returns:
            rows.give_back([held.index])
            del user.pool_rows[self.name]
            held = None
        taken = rows.take(1)
        index = taken[0] if taken else self._wait(rows)
        if index is None:
            self._out_of_rows(user, held, rows)
            return
        row = self.data.row(index)
        user.pool_rows[self.name] = Held(index, row, max(user.iteration, 1))
        user.vars[self.name] = row

    def _wait(self, rows: RowSource) -> int | None:
        if self.wait <= 0:
            return None
        started = time.monotonic()
        index = rows.wait(self.wait)
        rows.note(waited=time.monotonic() - started)
        return index

    def _out_of_rows(self, user: Holder, held: Held | None, rows: RowSource) -> None:
        what = f"data pool '{self.name}' ran out of rows ({len(self.data)} handed out)"
        if self.policy == "keep_last" and held is not None:
            held.epoch = max(user.iteration, 1)
            return
        if self.policy == "stop_test":
            raise StopTest(what, failed=False)
        if self.policy == "cycle":  # unique + cycle: every row is held by another user right now
            waited = f" (waited {self.wait:g}s for one)" if self.wait > 0 else ""
            what = f"data pool '{self.name}': all {len(self.data)} rows are held by other users{waited}"
        rows.note(stopped=True)
        if not rows.warned:  # a warning (in the results too), once: the pool's users_stopped counts them all
            rows.warned = True
            user.warn(f"{what}: users stop (counted in the results' pools: users_stopped)")
        raise StopUser(what)

    def release(self, user: Holder, rows: RowSource) -> None:
        """The user ends: a unique row it holds is free again (with cycle)."""
        held = user.pool_rows.pop(self.name, None)
        if held is not None and self.returns:
            rows.give_back([held.index])

    def summary(self, rows: RowSource) -> dict[str, Any]:
        """This pool's part of the results, with the test's row source."""
        return {
            "name": self.name,
            "source": self.source_name,
            "rows": len(self.data),
            "order": self.order,
            "update": self.update,
            "when_empty": self.policy,
            "handed_out": rows.handed_out,
            "dry": rows.dry_at is not None,  # a take found no row (the source notes when)
            "dry_at": rows.dry_at,
            "users_stopped": rows.users_stopped,
            "waits": rows.waits,
            "wait_time": round(rows.wait_time, 3),
        }
