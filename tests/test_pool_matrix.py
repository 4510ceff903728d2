"""The pool matrix on one process, ``--processes 2`` and ``--master`` + 2 ``--worker``s: every policy hands out the
same rows, keeps the same users running and stops the same ones, and a unique row is never held by two users at
once. A loopback server records which row each request used, for which user, and when."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import pytest
from helpers import Cluster, free_port, run_json, write


class Hit(NamedTuple):
    t: float
    pool: str
    row: int
    user: int
    iteration: int


class Recorder:
    """A loopback server that notes each request's pool, row, user and iteration, and the time it came."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = dict(parse_qsl(urlsplit(self.path).query))
                hit = Hit(time.monotonic(), query["pool"], int(query["row"]), int(query["u"]), int(query["i"]))
                recorder.hits.append(hit)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def by_pool(self) -> dict[str, list[Hit]]:
        pools: dict[str, list[Hit]] = defaultdict(list)
        for hit in sorted(self.hits):
            pools[hit.pool].append(hit)
        return pools

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    try:
        yield server
    finally:
        server.close()


def holds(hits: list[Hit], life: bool) -> list[tuple[int, int, float, float]]:
    """(row, user, first, last): the requests of a user with one row in one iteration (``life``: in its whole
    life, for update: once), in time order. A row given back and taken again makes a new hold."""
    stretches: list[tuple[int, int, float, float]] = []
    key = (lambda h: (h.user, h.row)) if life else (lambda h: (h.user, h.iteration, h.row))
    for (user, *_, row), same in itertools.groupby(sorted(hits, key=lambda h: (key(h), h.t)), key=key):
        times = [h.t for h in same]
        stretches.append((row, user, times[0], times[-1]))
    return stretches


def overlapping(hits: list[Hit], life: bool = False) -> list[tuple[Any, Any]]:
    """Pairs of holds where two users held the same row at the same time."""
    by_row: dict[int, list[tuple[int, int, float, float]]] = defaultdict(list)
    for stretch in holds(hits, life):
        by_row[stretch[0]].append(stretch)
    found = []
    for stretches in by_row.values():
        for a, b in itertools.combinations(stretches, 2):
            if a[1] != b[1] and a[2] <= b[3] and b[2] <= a[3]:
                found.append((a, b))
    return found


# ------------------------------------------------------------------------------------------ the matrix

ROWS, USERS, ITERATIONS = 3, 2, 3
ORDERS = {"s": "sequential", "u": "unique", "r": "random"}
UPDATES = {"it": "each_iteration", "oc": "each_occurrence", "on": "once"}
EMPTY = {"cy": "cycle", "kl": "keep_last", "su": "stop_user"}


def matrix() -> dict[str, tuple[str, str, str]]:
    """Pool (and user type) name -> (order, update, when_empty): every combination but stop_test."""
    combos = {}
    for (o, order), (u, update), (e, empty) in itertools.product(ORDERS.items(), UPDATES.items(), EMPTY.items()):
        if order != "random" or empty == "cycle":
            combos[f"{o}_{u}_{e}"] = (order, update, empty)
    return combos


CROWDED = {  # unique + cycle, name: (rows, users, more keys)
    "seats": (10, 10, ""),  # the case: on 2 processes one worker took every row, the other's users quit
    "desks": (4, 6, ", wait: 5s"),  # 2 users more than rows: they wait their turn
}


def scenario(url: str, combos: dict[str, tuple[str, str, str]]) -> str:
    """A user type per pool of the matrix (USERS users, ROWS rows), and the CROWDED ones."""
    lines = [f"host: {url}", "pools:"]
    for name, (order, update, empty) in combos.items():
        policies = f"order: {order}, update: {update}, when_empty: {empty}"
        lines.append(f"  {name}: {{rows: {list(range(ROWS))}, {policies}}}")
    for name, (rows, _, more) in CROWDED.items():
        lines.append(f"  {name}: {{rows: {list(range(rows))}, order: unique, when_empty: cycle{more}}}")
    lines.append("users:")
    users = {name: USERS for name in combos} | {name: users for name, (_, users, _) in CROWDED.items()}
    for name, count in users.items():
        url_ = f"/hit?pool={name}&row={{{{ {name}.value }}}}&u={{{{ user_id }}}}&i={{{{ iteration }}}}"
        lines += [
            f"  {name}:",
            f"    count: {count}",
            "    think: 50ms",
            "    sequence:",
            f'      - {{get: "{url_}", name: {name}}}',
            f'      - {{get: "{url_}", name: {name}}}',
        ]
    return "\n".join(lines) + "\n"


def expected(order: str, update: str, empty: str) -> dict[str, Any]:
    """What one process does with ROWS rows, USERS users and ITERATIONS iterations of two steps each."""
    wanted = USERS * {"each_iteration": ITERATIONS, "each_occurrence": 2 * ITERATIONS, "once": 1}[update]
    runs_dry = order != "random" and empty != "cycle" and wanted > ROWS
    stops = runs_dry and empty == "stop_user"  # each user needs a new row before its last iteration: all stop
    served = {"each_iteration": 2 * ROWS, "each_occurrence": ROWS}.get(update, 0)  # requests of the rows there were
    return {
        "handed_out": ROWS if runs_dry else wanted,
        "users_stopped": USERS if stops else 0,
        "dry": runs_dry,
        "requests": served if stops else USERS * ITERATIONS * 2,
    }


def observed(results: dict, recorder: Recorder, combos: dict[str, tuple[str, str, str]]) -> dict[str, dict]:
    """Per pool: what the results say and what the server saw."""
    hits = recorder.by_pool()
    pools = {p["name"]: p for p in results["pools"]}
    seen = {}
    for name, (order, update, _) in combos.items():
        pool, mine = pools[name], hits.get(name, [])
        seen[name] = {
            "handed_out": pool["handed_out"],
            "users_stopped": pool["users_stopped"],
            "dry": pool["dry"],
            "users": len({h.user for h in mine}),
            "rows used": sorted({h.row for h in mine}) if order != "random" else None,
            "overlaps": overlapping(mine, update == "once") if order == "unique" else [],
            "requests": len(mine),
        }
    return seen


def run_matrix(mode: str, path: Path, tmp_path: Path, cluster: Cluster, users: int, load: list[str]) -> dict:
    """Run ``path`` with ``users`` users on one process, ``--processes 2`` or a master with 2 workers."""
    load = ["-u", str(users), "-r", "5000", *load]
    if mode == "master":
        port = free_port()
        master = cluster.master(path, port, *load, "--expect-workers", "2")
        for i in range(2):
            cluster.worker(port, name=f"w{i}")
        assert master.wait(120) == 0, master.out + master.err
        return cluster.results()
    more = ["--processes", "2"] if mode == "--processes 2" else []
    result, results = run_json(tmp_path, str(path), *load, *more, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return results


MODES = ["one process", "--processes 2", "master"]


@pytest.mark.parametrize("mode", MODES)
def test_every_policy_gives_the_same_result_on_one_process_and_a_cluster(
    mode: str, tmp_path: Path, recorder: Recorder, cluster: Cluster
) -> None:
    """Every order x update x when_empty (but stop_test, below) in one run: the same rows handed out, the same
    users stopped, no unique row held by two users at once; and unique + cycle keeps every user running."""
    combos = matrix()
    path = write(tmp_path, scenario(recorder.url, combos))
    users = USERS * len(combos) + sum(users for _, users, _ in CROWDED.values())
    results = run_matrix(mode, path, tmp_path, cluster, users, ["-i", str(ITERATIONS), "-t", "60s"])
    seen = observed(results, recorder, combos)
    for name, (order, update, empty) in combos.items():
        want, got = expected(order, update, empty), seen[name]
        assert got["overlaps"] == [], f"{name}: a unique row held by two users at once"
        assert got["users"] == USERS, f"{name}: a user lost ({got})"
        facts = ("handed_out", "users_stopped", "dry", "requests")
        assert {k: got[k] for k in facts} == {k: want[k] for k in facts}, f"{name} on {mode}: {got}"
        if order != "random":
            assert got["rows used"] == list(range(min(ROWS, want["handed_out"]))), f"{name} on {mode}: {got}"
    stopped = sum(p["users_stopped"] for p in results["pools"])
    assert stopped == 2 * 2 * USERS  # sequential and unique, each_iteration and each_occurrence, stop_user
    warnings = results.get("warnings") or []
    assert any("users stop (counted in the results' pools" in w for w in warnings), warnings

    pools, hits = {p["name"]: p for p in results["pools"]}, recorder.by_pool()
    for name, (_, users, _) in CROWDED.items():  # every user ran every iteration, on a row of its own
        mine = hits[name]
        assert overlapping(mine) == [], f"{name}: a row held by two users at once"
        assert len({(h.user, h.iteration) for h in mine}) == users * ITERATIONS, f"{name}: iterations lost"
        assert (pools[name]["handed_out"], pools[name]["users_stopped"]) == (users * ITERATIONS, 0), pools[name]
    assert pools["seats"]["waits"] == 0  # a user gives its row back before taking one: there is always one
    assert pools["desks"]["waits"] >= 2 and pools["desks"]["wait_time"] > 0  # counted, however many workers
    assert not any("held by other users" in w for w in warnings), warnings


# ------------------------------------------------------------------------------------------ stop_test

STOP_TEST = """
host: {url}
pools:
  seats: {{rows: {rows}, order: unique, when_empty: stop_test}}
  tickets: {{rows: {rows}, order: sequential, when_empty: stop_test}}
users:
  buyer:
    count: 3
    think: 20ms
    sequence:
      - {{get: "/hit?pool=seats&row={{{{ seats.value }}}}&u={{{{ user_id }}}}&i={{{{ iteration }}}}", name: seat}}
      - {{get: "/hit?pool=tickets&row={{{{ tickets.value }}}}&u={{{{ user_id }}}}&i={{{{ iteration }}}}", name: buy}}
      - {{get: "/hit?pool=seats&row={{{{ seats.value }}}}&u={{{{ user_id }}}}&i={{{{ iteration }}}}", name: seat}}
"""


@pytest.mark.parametrize("mode", MODES)
def test_stop_test_ends_the_test_after_every_row_once(
    mode: str, tmp_path: Path, recorder: Recorder, cluster: Cluster
) -> None:
    """when_empty: stop_test, unique and sequential: each of the 12 rows of each pool serves one iteration of one
    user, then the first pool to run dry (seats: read first) ends the whole test (the planned end: exit code 0),
    with the same reason and counts on one process and on a cluster."""
    path = write(tmp_path, STOP_TEST.format(url=recorder.url, rows=list(range(12))))
    results = run_matrix(mode, path, tmp_path, cluster, 3, ["-t", "60s", "--stop-timeout", "10s"])  # whole iterations
    assert results["stop_reason"] == "data pool 'seats' ran out of rows (12 handed out)"
    pools = {p["name"]: p for p in results["pools"]}
    assert (pools["seats"]["handed_out"], pools["seats"]["dry"], pools["seats"]["users_stopped"]) == (12, True, 0)
    assert (pools["tickets"]["handed_out"], pools["tickets"]["users_stopped"]) == (12, 0)
    for name, hits in recorder.by_pool().items():
        iterations = Counter(h.row for h in {(h.row, h.user, h.iteration): h for h in hits}.values())
        assert iterations == dict.fromkeys(range(12), 1), (name, iterations)  # each row: one iteration, once
        assert overlapping(hits) == []


# ------------------------------------------------------------------------------------------ the master's side

SERVED = """
pools:
  desks: {rows: [a, b], order: unique, when_empty: cycle}
users: {u: {sequence: [{get: "/{{ desks.value }}"}]}}
"""


def test_the_master_hands_a_row_given_back_to_a_waiting_worker_and_takes_back_only_rows_it_gave(
    tmp_path: Path,
) -> None:
    """A real master and worker in this process: a PoolTake with a wait is answered when a row comes back (not at
    once, not never); a worker giving back a row it does not hold is refused, so no row gets two holders."""
    import gevent

    from runner.compile.compiler import CompileOptions, compile_scenario
    from runner.distributed import protocol as p
    from runner.distributed.master import MasterOptions, MasterRunner
    from runner.distributed.worker import WorkerOptions, WorkerRunner
    from runner.scenario import load_scenario
    from runner.stats import RequestStats

    path = write(tmp_path, SERVED)
    compiled = compile_scenario(load_scenario(path), CompileOptions(host="http://127.0.0.1:1"))
    master = MasterRunner(
        compiled.user_classes,
        RequestStats(),
        MasterOptions(bind_host="127.0.0.1", bind_port=0, token="t"),
        run_state=compiled.fresh_state(),
    )
    master.compiled = compiled
    port = master.bind()
    master.serve()
    worker = WorkerRunner(WorkerOptions(master_port=port, token="t"), path)
    running = gevent.spawn(worker.run)
    try:
        master.wait_for_workers(1, 20)
        rows = [worker.request(p.PoolTake(0, "desks", 5, 0.0)).indices for _ in range(3)]  # type: ignore[attr-defined]
        assert rows == [[0], [1], []]  # one row at a time, whatever is asked; none free
        waiting = gevent.spawn(worker.request, p.PoolTake(0, "desks", 1, 10.0))
        gevent.sleep(0.3)
        assert not waiting.ready()  # no row yet: the answer waits
        worker._send(p.PoolNote("desks", [0, 0], 0, 0, 0, 0.0, 0))  # row 0 twice: refused whole
        gevent.sleep(0.3)
        assert not waiting.ready() and master.dropped == 1
        worker._send(p.PoolNote("desks", [1], 0, 0, 1, 0.25, 0))  # the user waited 0.25 s, then gave row 1 back
        assert waiting.get(timeout=10).indices == [1]
        source = master.run_state.rows(compiled.pools["desks"])
        assert (source.handed_out, source.waits, source.wait_time) == (3, 1, 0.25)

        gone = gevent.spawn(worker.request, p.PoolTake(0, "desks", 1, 10.0))
        gevent.sleep(0.3)
        gone.kill()  # a waiting user killed (ramp-down, stop): the master does not know
        worker._send(p.PoolNote("desks", [0], 0, 0, 0, 0.0, 0))  # row 0 goes to the gone waiter ...
        gevent.sleep(0.5)  # ... whose worker gives it back: not lost
        assert worker.request(p.PoolTake(0, "desks", 1, 0.0)).indices == [0]  # type: ignore[attr-defined]
    finally:
        master.stop("test over")
        master.wait(10)
        master.close()
        assert running.get(timeout=10) == 0
