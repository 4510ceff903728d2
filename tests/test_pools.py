"""Data pools: reading CSV files compactly and correctly, and LoadRunner's next-row / update / out-of-rows rules."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gevent
import pytest

from runner.compile.pools import Pool
from runner.engine.flow import StopTest, StopUser
from runner.engine.rows import RandomRows, SequentialRows, UniqueRows
from runner.scenario.data import CsvData, InlineData, PoolFileError, find_csv
from runner.scenario.model import Pool as PoolSpec


def csv_file(tmp_path: Path, text: str, name: str = "data.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_with_header_quotes_embedded_newlines_and_blank_lines(tmp_path: Path) -> None:
    path = csv_file(tmp_path, '\ufeffname,note\nann,"hello, world"\n\nbob,"two\nlines"\r\ncas,""\n')
    data = CsvData(path)
    assert data.columns == ("name", "note")  # the byte-order mark is not part of the first name
    assert len(data) == 3
    assert [data.row(i) for i in range(3)] == [
        {"name": "ann", "note": "hello, world"},
        {"name": "bob", "note": "two\nlines"},
        {"name": "cas", "note": ""},
    ]


def test_declared_columns_delimiter_and_encoding(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "zoë;1\njosé;2\n", encoding="latin-1")
    data = CsvData(path, columns=["name", "id"], header=False, delimiter=";", encoding="latin-1")
    assert (len(data), data.row(1)) == (2, {"name": "josé", "id": "2"})
    renamed = CsvData(csv_file(tmp_path, "a,b\n1,2\n", "h.csv"), columns=["x", "y"], header=True)
    assert (renamed.columns, len(renamed), renamed.row(0)) == (("x", "y"), 1, {"x": "1", "y": "2"})


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("a,b\n1,2\n3\n", (3, 1), "row has 1 field(s), the header has 2"),
        ("a,a\n1,2\n", (1, 1), "duplicate column name(s) in the header: a"),
        ("a,first name\n1,2\n", (1, 1), "column name 'first name' is not a plain name (column 2)"),
        ("", (1, 1), "the file is empty: no header row"),
        ('a,b\n1,"open\n', (2, 1), "malformed CSV"),
    ],
)
def test_bad_csv_files_name_the_line(tmp_path: Path, text: str, where: tuple[int, int], message: str) -> None:
    with pytest.raises(PoolFileError) as caught:
        CsvData(csv_file(tmp_path, text))
    assert (caught.value.line, caught.value.col) == where
    assert caught.value.message.startswith(message)


def test_undecodable_bytes_are_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"a,b\n1,\xff\n")
    with pytest.raises(PoolFileError) as caught:
        CsvData(path)
    assert caught.value.line == 2 and "not utf-8 text" in caught.value.message


def test_a_million_rows_are_held_compactly(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "phone,name\n" + "".join(f"+3160{i:07d},Name {i}\n" for i in range(1_000_000)))
    data = CsvData(path)
    assert len(data) == 1_000_000
    assert data.row(999_999) == {"phone": "+31600999999", "name": "Name 999999"}
    held = len(data._data) + data._starts.itemsize * len(data._starts) * 2
    assert held < 45 * 1024 * 1024  # the file's bytes plus two offsets per row, nothing per row in Python


def test_csv_is_found_in_the_data_dir_first(tmp_path: Path) -> None:
    (tmp_path / "scenarios" / "data").mkdir(parents=True)
    (tmp_path / "ci").mkdir()
    declared_in = tmp_path / "scenarios" / "pools.yaml"
    csv_file(tmp_path / "scenarios", "a\n1\n", "data/users.csv")
    assert find_csv("data/users.csv", declared_in, None) == tmp_path / "scenarios" / "data" / "users.csv"
    assert find_csv("data/users.csv", declared_in, tmp_path / "ci") == tmp_path / "scenarios" / "data" / "users.csv"
    (tmp_path / "ci" / "data").mkdir()
    csv_file(tmp_path / "ci", "a\n2\n", "data/users.csv")
    assert find_csv("data/users.csv", declared_in, tmp_path / "ci") == tmp_path / "ci" / "data" / "users.csv"
    assert find_csv("nope.csv", declared_in, tmp_path / "ci") is None


# ----------------------------------------------------------------------------------------------- sources


def test_sequential_rows_share_one_cursor() -> None:
    cycling = SequentialRows(3, cycle=True)
    assert [cycling.take()[0] for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    once = SequentialRows(3, cycle=False)
    assert once.take(2) == [0, 1] and once.take(2) == [2] and once.take() == [] and once.dry_at is not None
    assert once.handed_out == 3


def test_unique_rows_are_never_handed_out_twice_without_cycle() -> None:
    rows = UniqueRows(5, cycle=False)
    taken = [rows.take()[0] for _ in range(5)]
    rows.give_back(taken[:2])  # users that end give their rows back: still never reused
    assert sorted(taken) == [0, 1, 2, 3, 4]
    assert rows.take() == [] and rows.handed_out == 5


def test_unique_rows_with_cycle_reuse_only_rows_given_back() -> None:
    rows = UniqueRows(3, cycle=True)
    held = [rows.take()[0] for _ in range(3)]
    assert rows.take() == []  # every row is held by somebody
    rows.give_back([held[1]])
    assert rows.take() == [held[1]]


def test_random_rows_never_run_dry() -> None:
    rows = RandomRows(4)
    assert all(0 <= i < 4 for _ in range(200) for i in rows.take())
    assert rows.dry_at is None


# ----------------------------------------------------------------------------------------------- per user


WARNINGS: list[str] = []


def user(iteration: int = 0) -> SimpleNamespace:
    """What a pool uses of a user (``pools.Holder``)."""
    return SimpleNamespace(iteration=iteration, pool_rows={}, vars={}, warn=WARNINGS.append)


class RunPool:
    """A compiled pool with one test's row source, as ``RunState.rows`` gives it to the steps."""

    def __init__(self, pool: Pool) -> None:
        self.pool, self.rows = pool, pool.new_rows()

    def refresh(self, user: Any) -> None:
        self.pool.refresh(user, self.rows)

    def release(self, user: Any) -> None:
        self.pool.release(user, self.rows)

    def summary(self) -> dict[str, Any]:
        return self.pool.summary(self.rows)


def pool(
    order: str = "sequential", update: str = "each_iteration", when_empty: str | None = None, n: int = 3, **more: Any
) -> RunPool:
    spec = PoolSpec(rows=[{"id": i} for i in range(n)], order=order, update=update, when_empty=when_empty, **more)
    return RunPool(Pool("p", InlineData(spec.rows or []), spec))


def test_update_each_iteration_once_and_each_occurrence() -> None:
    each = pool()
    u = user(0)
    each.refresh(u)  # on_start
    first = u.vars["p"]["id"]
    u.iteration = 1
    each.refresh(u)
    assert u.vars["p"]["id"] == first  # on_start shares the first iteration's row
    each.refresh(u)
    assert u.vars["p"]["id"] == first  # the same iteration keeps its row
    u.iteration = 2
    each.refresh(u)
    assert u.vars["p"]["id"] == first + 1

    once = pool(update="once")
    u = user(1)
    for u.iteration in range(1, 5):
        once.refresh(u)
        assert u.vars["p"]["id"] == 0

    occurrence = pool(update="each_occurrence", n=10)
    u = user(1)
    seen = []
    for _ in range(3):
        occurrence.refresh(u)
        seen.append(u.vars["p"]["id"])
    assert seen == [0, 1, 2]


def test_out_of_rows_policies() -> None:
    stop_test = pool(when_empty="stop_test", n=1)
    a, b = user(1), user(1)
    stop_test.refresh(a)
    with pytest.raises(StopTest) as caught:
        stop_test.refresh(b)
    assert caught.value.failed is False  # the planned end of the test, not a failure
    assert stop_test.summary()["dry"] is True

    stop_user = pool(order="unique", n=1)  # unique stops the user by default
    stop_user.refresh(a := user(1))
    with pytest.raises(StopUser):
        stop_user.refresh(user(1))

    keep = pool(when_empty="keep_last", n=2)
    u = user(1)
    keep.refresh(u)
    keep.refresh(user(1))
    for u.iteration in (2, 3):
        keep.refresh(u)
        assert u.vars["p"]["id"] == 0  # keeps its own last row

    cycle = pool(n=2)
    u = user(1)
    ids = []
    for u.iteration in range(1, 6):
        cycle.refresh(u)
        ids.append(u.vars["p"]["id"])
    assert ids == [0, 1, 0, 1, 0]


def test_unique_rows_go_back_when_a_user_ends_with_cycle() -> None:
    unique = pool(order="unique", when_empty="cycle", n=2, wait=0)
    a, b, c = user(1), user(1), user(1)
    unique.refresh(a)
    unique.refresh(b)
    WARNINGS.clear()
    with pytest.raises(StopUser, match="held by other users"):
        unique.refresh(c)
    with pytest.raises(StopUser):
        unique.refresh(user(1))
    assert WARNINGS == ["data pool 'p': all 2 rows are held by other users: users stop (counted in the results' "
                        "pools: users_stopped)"]  # fmt: skip
    assert unique.summary()["users_stopped"] == 2  # a warning once, every stop counted
    unique.release(a)
    unique.refresh(c)
    assert c.vars["p"]["id"] == 0


def test_unique_with_cycle_gives_the_row_back_before_taking_one() -> None:
    """As many users as rows: each new iteration gives its row back first, so nobody ever finds the pool empty."""
    unique = pool(order="unique", when_empty="cycle", n=3)
    users = [user(1) for _ in range(3)]
    for u in users:
        unique.refresh(u)
    for iteration in range(2, 6):
        for u in users:
            u.iteration = iteration
            unique.refresh(u)
        assert sorted(u.vars["p"]["id"] for u in users) == [0, 1, 2]  # never two users on one row
    assert unique.summary()["users_stopped"] == unique.summary()["waits"] == 0


def test_a_user_with_no_free_row_waits_for_one_in_turn() -> None:
    """Unique + cycle, more users than rows: a user with no free row waits; the row given back goes to the user
    that waited longest (not to the one giving it back); past the wait the user stops, counted."""
    unique = pool(order="unique", when_empty="cycle", n=1, wait="2s")
    holder, first, second = user(1), user(1), user(1)
    unique.refresh(holder)
    waiting = [gevent.spawn(unique.refresh, first)]
    gevent.sleep(0.05)
    waiting.append(gevent.spawn(unique.refresh, second))
    gevent.sleep(0.05)
    holder.iteration = 2
    late = gevent.spawn(unique.refresh, holder)  # gives its row back: the first waiter gets it, it waits now
    gevent.joinall([waiting[0]], timeout=5)
    assert first.vars["p"]["id"] == 0 and "p" not in second.pool_rows
    unique.release(first)  # first ends: its row goes to second, who waited before holder
    gevent.joinall([waiting[1]], timeout=5)
    assert second.vars["p"]["id"] == 0
    late.join(timeout=5)
    assert isinstance(late.exception, StopUser)  # holder waited 2 s for nothing
    summary = unique.summary()
    assert (summary["waits"], summary["users_stopped"]) == (3, 1)
    assert 2.0 <= summary["wait_time"] < 10


def test_wait_is_for_unique_with_cycle_only() -> None:
    with pytest.raises(ValueError, match="'wait' applies to order: unique with when_empty: cycle"):
        PoolSpec(rows=[1], order="sequential", wait="5s")
    assert PoolSpec(rows=[1], order="unique", when_empty="cycle").wait_seconds == 10.0  # the default
    assert PoolSpec(rows=[1], order="unique", when_empty="cycle", wait="1.5s").wait_seconds == 1.5
    assert PoolSpec(rows=[1], order="unique").wait_seconds == 0.0  # stop_user: no row ever comes back


def test_a_row_handed_to_a_user_killed_while_waiting_goes_to_the_next_one() -> None:
    unique = pool(order="unique", when_empty="cycle", n=1, wait="5s")
    holder, killed, next_one = user(1), user(1), user(1)
    unique.refresh(holder)
    waiting = gevent.spawn(unique.refresh, killed)
    gevent.sleep(0.05)
    later = gevent.spawn(unique.refresh, next_one)
    gevent.sleep(0.05)
    unique.release(holder)  # the row goes to the first waiter, which is killed (the test stops) about now
    waiting.kill()
    unique.release(killed)  # as VirtualUser.close does: a row it got goes back
    later.join(timeout=5)
    assert next_one.vars["p"]["id"] == 0 and "p" not in killed.pool_rows


def test_the_console_says_users_stopped_and_waits() -> None:
    from runner.report.console import pool_line
    from runner.report.model import Pool as PoolResult

    base = {"name": "desks", "source": "inline", "rows": 4, "order": "unique", "update": "each_iteration"}
    quiet = PoolResult(**base, when_empty="cycle", handed_out=40)
    assert pool_line(quiet) == "Data pool desks (unique): 40 of 4 rows handed out"
    busy = PoolResult(**base, when_empty="cycle", handed_out=40, users_stopped=2, waits=7, wait_time=3.21)
    assert pool_line(busy) == (
        "Data pool desks (unique): 40 of 4 rows handed out; WARNING: 2 users stopped for lack of rows; "
        "users waited for a row 7 times (3.2s)"
    )


def test_remote_rows_fetch_blocks_or_single_rows_and_tell_the_owner() -> None:
    """A worker's side of a master-owned pool, against a local source standing in for the master."""
    from runner.engine.rows import RemoteRows

    def owner(source: Any, asked: list[int]) -> Any:
        def fetch(n: int, wait: float) -> tuple[list[int], bool]:
            asked.append(n)
            taken = source.take(n)
            return taken, not taken

        return fetch

    told: list[tuple[Any, ...]] = []
    tell = lambda *args: told.append(args)  # noqa: E731

    asked: list[int] = []
    sequential = RemoteRows(40, owner(SequentialRows(40, cycle=True), asked), tell, unique=False)
    assert [sequential.take(1)[0] for _ in range(3)] == [0, 1, 2] and asked == [16]  # one block of 16
    sequential.flush()  # the test ends: 13 rows of the block were never taken
    assert told == [((), 13, None, False)] and sequential.handed_out == 3

    told.clear()
    asked = []
    unique = RemoteRows(2, owner(UniqueRows(2, cycle=False), asked), tell, unique=True)
    assert unique.take(1) == [0] and unique.take(1) == [1] and unique.take(1) == [] and unique.take(1) == []
    assert asked == [1, 1, 1]  # a row at a time; once dry without cycle it stays dry: not asked again

    asked = []
    cycling = RemoteRows(1, owner(UniqueRows(1, cycle=True), asked), tell, unique=True, recycle=True)
    assert cycling.take(1) == [0] and cycling.take(1) == [] and cycling.take(1) == []
    assert asked == [1, 1, 1]  # a row may come back: ask again
    cycling.give_back([0])
    cycling.note(waited=0.5)
    assert told == [([0], 0, None, False), ((), 0, 0.5, False)]  # to the owner, which counts
