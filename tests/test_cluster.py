"""The master's cluster state without sockets: membership, liveness and the users' split as plain calls."""

from __future__ import annotations

import pytest

from runner.distributed import protocol as p
from runner.distributed.cluster import Cluster, WorkerInfo, WorkerState
from runner.engine.arrivals import ArrivalCounts, RateStage, Share, arrival_times

INTERVAL, LIVENESS = 1.0, 3  # missing after 3 silent seconds


def cluster(names: tuple[str, ...] = ("browse", "buy")) -> Cluster:
    return Cluster(names, INTERVAL, LIVENESS)


def join(c: Cluster, n: int, now: float = 0.0, ready: bool = True) -> list[WorkerInfo]:
    workers = []
    for i in range(n):
        worker, new = c.join(f"id-{i}".encode(), f"w{i}", None, "host", 100 + i, 2, now)
        assert new
        if ready:
            c.heard(worker, now)
            assert c.ready(worker)
        workers.append(worker)
    return workers


def beat(c: Cluster, worker: WorkerInfo, now: float) -> None:
    c.heard(worker, now)
    c.ready(worker)


def test_join_then_first_heartbeat_makes_a_worker_active() -> None:
    c = cluster()
    worker, new = c.join(b"id-0", "w0", None, "host", 100, 2, now=0.0)
    assert new and worker.state is WorkerState.JOINED and not worker.active
    assert c.active() == [] and c.ready_count() == 0
    again, new = c.join(b"id-0", "w0", None, "host", 100, 2, now=0.5)  # a hello again: the same worker
    assert again is worker and not new and worker.last_seen == 0.5
    assert c.ready(worker) and worker.state is WorkerState.ACTIVE
    assert not c.ready(worker)  # only the first heartbeat is news
    assert c.active() == [worker] and c.ready_count() == 1
    other, new = c.join(b"id-0", "w0-restarted", None, "host", 101, 2, now=1.0)  # a new worker under that id
    assert new and other is not worker and other.order == 2


def test_heartbeats_keep_a_worker_and_silence_makes_it_missing() -> None:
    c = cluster()
    quiet, talking = join(c, 2)
    for now in (1.0, 2.0, 3.0):
        beat(c, talking, now)
        assert c.lost(now) == []  # 3 s of silence is the limit, not past it
    beat(c, talking, 3.5)
    assert c.lost(3.5) == [quiet] and quiet.state is WorkerState.MISSING and quiet.was is WorkerState.ACTIVE
    assert c.lost(10.0) == [talking]  # silence for 6.5 s
    assert c.lost(20.0) == []  # each is judged missing once
    assert c.active() == [] and c.ready_count() == 0


def test_a_missing_worker_comes_back_where_it_was() -> None:
    c = cluster()
    (active,) = join(c, 1)
    setting_up, _ = c.join(b"id-9", "w9", None, "host", 109, 2, now=0.0)  # never heartbeated
    assert c.lost(5.0) == [active, setting_up]
    assert c.heard(active, 6.0) and active.state is WorkerState.ACTIVE
    assert c.heard(setting_up, 6.0) and setting_up.state is WorkerState.JOINED
    assert not c.heard(active, 7.0)  # not missing: not "back"


def test_missing_workers_users_stop_counting_and_come_back_with_it() -> None:
    c = cluster()
    a, b = join(c, 2)
    a.users, b.users = 3, 4
    assert c.user_count == 7
    beat(c, b, 5.0)
    assert c.lost(5.0) == [a] and c.user_count == 4
    c.heard(a, 6.0)
    assert c.user_count == 7


def test_quit_and_failure_take_a_worker_out_for_good() -> None:
    c = cluster()
    a, b = join(c, 2)
    a.users = 5
    c.leave(a, "stopped")
    assert a.state is WorkerState.GONE and a.users == 0 and a.as_result()["state"] == "stopped"
    assert c.active() == [b] and c.to_stop() == [b] and c.waiting_for() == [b]
    assert c.lost(100.0) == [b]  # a gone worker is never missing
    assert not c.heard(a, 101.0) and a.state is WorkerState.GONE
    c.leave(b, "failed")
    assert b.as_result()["state"] == "failed"


def test_rebalance_on_join_and_on_loss() -> None:
    c = cluster()
    (a,) = join(c, 1)
    assert c.rebalance([6, 2]) == [a] and a.targets == {"browse": 6, "buy": 2}
    (b,) = join_more(c, 1, now=1.0)
    assert c.rebalance([6, 2]) == [a, b]
    assert a.targets == {"browse": 3, "buy": 1} and b.targets == {"browse": 3, "buy": 1}
    beat(c, b, 4.5)
    assert c.lost(4.5) == [a]
    assert c.rebalance([6, 2]) == [b] and b.targets == {"browse": 6, "buy": 2}  # b takes a's users
    c.heard(a, 5.0)  # it kept running its users while it was silent: only b needs a new share
    assert c.rebalance([6, 2]) == [b] and a.targets == b.targets == {"browse": 3, "buy": 1}


def join_more(c: Cluster, n: int, now: float) -> list[WorkerInfo]:
    start = len(c.workers)
    workers = []
    for i in range(start, start + n):
        worker, _ = c.join(f"id-{i}".encode(), f"w{i}", None, "host", 100 + i, 2, now)
        c.ready(worker)
        workers.append(worker)
    return workers


def test_targets_are_idempotent_and_only_changed_shares_are_sent() -> None:
    c = cluster()
    a, b, d = join(c, 3)
    assert c.rebalance([7, 2]) == [a, b, d]
    before = {w.id: dict(w.targets) for w in (a, b, d)}
    assert sum(t["browse"] for t in before.values()) == 7 and sum(t["buy"] for t in before.values()) == 2
    assert c.rebalance([7, 2]) == []  # the same target again: nobody needs a Spawn
    assert {w.id: w.targets for w in (a, b, d)} == before
    one = cluster(("u",))
    x, y, z = join(one, 3)
    one.rebalance([7])
    assert [w.targets["u"] for w in (x, y, z)] == [3, 2, 2]
    assert one.rebalance([8]) == [y] and [w.targets["u"] for w in (x, y, z)] == [3, 3, 2]  # one more user: one Spawn


def test_spawned_when_every_active_worker_completed_its_last_spawn() -> None:
    c = cluster(("u",))
    a, b = join(c, 2)
    assert not c.spawned()  # nothing sent yet
    for seq, worker in enumerate(c.rebalance([4]), 1):
        worker.spawn = p.Spawn(seq, 0.0, worker.targets, 1.0, {})
    a.spawn_done = 1
    assert not c.spawned()
    b.spawn_done = 2
    assert c.spawned()


def test_finished_workers_end_the_run_and_stopped_ones_are_not_waited_for() -> None:
    c = cluster(("u",))
    a, b = join(c, 2)
    c.rebalance([2])
    assert c.stopped(a, by_itself=True) and a.state is WorkerState.FINISHED and not a.active
    assert not c.all_finished()
    assert c.rebalance([2]) == [b] and b.targets == {"u": 2}  # a finished worker takes no more users
    assert c.stopped(b, by_itself=True) and c.all_finished()
    c2 = cluster(("u",))
    (x,) = join(c2, 1)
    assert not c2.stopped(x, by_itself=False) and x.state is WorkerState.STOPPED
    assert c2.waiting_for() == [] and c2.to_stop() == [] and x.as_result()["state"] == "stopped"


def test_no_liveness_judgement_after_the_end_nor_of_stopped_workers() -> None:
    """A master starved at the end of a big run must not call its workers missing (a 200-worker bench did)."""
    c = cluster(("u",))
    a, b, d = join(c, 3)
    c.stopped(a, by_itself=False)  # its final report is in
    assert c.lost(100.0) == [b, d]  # the others are still judged during the stop
    c2 = cluster(("u",))
    workers = join(c2, 3)
    c2.end()
    assert c2.lost(1000.0) == [] and all(w.state is WorkerState.ACTIVE for w in workers)
    assert [w.as_result()["state"] for w in workers] == ["ready"] * 3


def test_cpu_hot_is_said_once_and_samples_stay_bounded() -> None:
    c = cluster(("u",))
    (a,) = join(c, 1)
    hot = [a.beat(p.Heartbeat("running", 1, 95.0, 1000, 0), float(t)) for t in range(6)]
    assert hot == [False, False, True, False, False, False]
    for t in range(6, 2000):
        a.beat(p.Heartbeat("running", 1, 10.0, 2000, 0), float(t))
    assert 0 < len(a.samples) <= 300 and a.samples[0][0] == 0.0 and a.cpu_percent_max == 95.0


# ------------------------------------------------------------------------------------------- the open model


def taken(worker: WorkerInfo, offsets: list[float]) -> list[int]:
    """The arrivals (by index) of the schedule ``offsets`` that ``worker``'s share takes."""
    share = Share(worker.plan)
    return [k for k, offset in enumerate(offsets) if share.takes(k, offset)]


def test_shares_interleave_and_cover_the_schedule_once() -> None:
    c = cluster(("u",))
    workers = join(c, 3)
    assert c.reshare(0.0, 10) == workers
    assert [w.plan for w in workers] == [[(0.0, 0, 3)], [(0.0, 1, 3)], [(0.0, 2, 3)]]
    assert [w.max_users for w in workers] == [4, 3, 3]  # max_users split too
    offsets = arrival_times([RateStage(1.0, 30)], start_rate=30)  # 30 arrivals, 1/30 s apart
    mine = [taken(w, offsets) for w in workers]
    assert mine[0] == list(range(0, 30, 3)) and mine[1] == list(range(1, 30, 3))  # interleaved, not bunched
    assert sorted(k for ks in mine for k in ks) == list(range(30))  # every arrival once
    assert c.reshare(0.0, 10) == []  # idempotent


def test_a_lost_worker_s_share_goes_to_the_others_from_a_moment_ahead() -> None:
    c = cluster(("u",))
    a, b = join(c, 2)
    c.reshare(0.0, 4)
    beat(c, a, 4.0)
    assert c.lost(4.0) == [b]
    assert c.reshare(5.5, 4) == [a] and a.plan == [(0.0, 0, 2), (5.5, 0, 1)] and a.max_users == 4
    offsets = arrival_times([RateStage(10.0, 2)], start_rate=2)  # 0, 0.5, … 9.5
    assert taken(a, offsets) == [0, 2, 4, 6, 8, 10, 11, *range(12, 20)]  # every other, then all from 5.5 s
    (d,) = join_more(c, 1, now=7.0)  # one joins: the rate is shared again, and the newcomer only takes ahead
    assert c.reshare(7.5, 4) == [a, d]
    assert a.plan[-1] == (7.5, 0, 2) and d.plan == [(7.5, 1, 2)] and a.max_users == d.max_users == 2
    assert taken(d, offsets) == [15, 17, 19]
    assert sorted(taken(a, offsets)[-3:] + taken(d, offsets)) == [14, 15, 16, 17, 18, 19]


def test_a_second_change_before_the_first_began_replaces_it() -> None:
    c = cluster(("u",))
    a, b, d = join(c, 3)
    c.reshare(0.0, 3)
    for worker in (a, d):
        beat(c, worker, 4.0)
    assert c.lost(4.0) == [b]
    c.reshare(4.5, 3)
    assert [w.plan[-1] for w in (a, d)] == [(4.5, 0, 2), (4.5, 1, 2)]
    beat(c, a, 7.2)
    assert c.lost(7.2) == [d]
    c.reshare(4.4, 3)  # never earlier than a share already given: the row for 4.5 is replaced
    assert a.plan == [(0.0, 0, 3), (4.5, 0, 1)] and a.max_users == 3


def test_no_slot_less_than_one_and_counts_merge() -> None:
    c = cluster(("u",))
    workers = join(c, 3)
    c.reshare(0.0, 2)
    assert [w.max_users for w in workers] == [1, 1, 1]  # a worker without a slot would only queue
    one, two = ArrivalCounts(started=3, late=1, late_for_slot=1, max_late_ms=40.0), ArrivalCounts(started=2)
    one.jitter.record(1.0)
    two.jitter.record(3.0)
    two.waiting_at_end = 4
    total = ArrivalCounts()
    for counts in (one, two):
        total.add(counts.to_wire())
    assert (total.started, total.late, total.late_for_slot, total.waiting_at_end) == (5, 1, 1, 4)
    assert total.max_late_ms == 40.0 and total.jitter.count == 2 and total.jitter.max == 3.0
    for bad in ({}, {**one.to_wire(), "started": "many"}, {**one.to_wire(), "jitter": [1]}):
        with pytest.raises(ValueError, match="arrival counts"):  # the master drops such a report
            ArrivalCounts().add(bad)
