"""Distributed runs with real processes on loopback: a master, workers, the demo target counting requests.

Every process a test starts is known by its PID, bounded in time, and killed in a ``finally``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import gevent
import msgpack
import pytest
import zmq
from helpers import (
    FAST,
    TOKEN,
    Cluster,
    demo_reset,
    demo_stats,
    free_port,
    log_shows,
    request_counts,
    wait_until,
    write,
)

from runner.distributed import protocol as p

pytestmark = pytest.mark.e2e

ITERATING = """
host: demo
users:
  a:
    weight: 2
    think: 20ms
    sequence: [{get: /items}, {get: /about}]
  b:
    weight: 1
    think: 20ms
    sequence: [{get: /json}]
"""


# ------------------------------------------------------------------------------------------ whole runs


def test_processes_give_the_same_results_as_one_process(tmp_path: Path, demo_url: str, cluster: Cluster) -> None:
    path = write(tmp_path, ITERATING)
    demo_reset(demo_url)
    run = cluster.start(
        "run", str(path), "-H", demo_url, "--processes", "2", "-u", "6", "-r", "100", "-i", "15",
        "--json", str(tmp_path / "results.json"), "--csv", str(tmp_path / "out"), "--only-summary", *FAST,
        "--html", str(tmp_path / "report.html"), name="run",
    )  # fmt: skip
    assert run.wait(90) == 0, run.out + run.err
    results = cluster.results()
    server = demo_stats(demo_url)["by_path"]
    mine = request_counts(results)
    # 6 users at 2:1 are 4 a and 2 b, dealt to 2 workers; each user 15 iterations
    assert mine["GET /items"] == mine["GET /about"] == server["GET /items"] == server["GET /about"] == 4 * 15
    assert mine["GET /json"] == server["GET /json"] == 2 * 15
    workers = results["workers"]
    assert len(workers) == 2 and all(w["users_max"] == 3 for w in workers)
    assert all(w["resources"] and w["resources"][0]["process_rss_bytes"] > 0 for w in workers)  # from heartbeats
    report = (tmp_path / "report.html").read_text()
    assert 'id="chart-worker-cpu"' in report and 'id="chart-worker-memory"' in report  # per-worker usage
    assert sum(w["requests"] for w in workers) == results["total"]["requests"] == sum(server.values()) == 150
    assert results["stop_reason"] == "all users finished" and results["users_max"] == 6
    assert (tmp_path / "out_stats.csv").exists() and "PASSED: 150 requests" in run.out
    assert "Traceback" not in run.err


def test_a_warning_of_local_workers_is_said_once_on_stderr(tmp_path: Path, demo_url: str, cluster: Cluster) -> None:
    extract = '{coupon: {regex: "coupon=([a-z]+)", default: none, on_missing: warn}}'
    path = write(tmp_path, f"users:\n  u:\n    sequence: [{{get: /, extract: {extract}}}]\n")
    run = cluster.start(
        "run", str(path), "-H", demo_url, "--processes", "2", "-u", "2", "-r", "100", "-i", "2", "--only-summary",
        "--json", str(tmp_path / "results.json"), *FAST, name="run",
    )  # fmt: skip
    assert run.wait(90) == 0, run.out + run.err
    said = [line for line in run.err.splitlines() if "coupon: regex" in line]
    assert len(said) == 1 and "(worker " in said[0], run.err  # both workers hit it; the master says it once
    assert [w for w in cluster.results()["warnings"] if "coupon:" in w] == [said[0].split("WARNING: ", 1)[1]]


def test_master_and_three_workers_that_receive_the_scenario(tmp_path: Path, demo_url: str, cluster: Cluster) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "photo.txt").write_text("not really a photo")
    write(tmp_path, "headers: {X-From: the-fragment}\n", "common.yaml")
    path = write(
        tmp_path,
        ITERATING.replace("host: demo", "host: demo\ninclude: [common.yaml]")
        + "  c:\n    count: 3\n    sequence:\n      - post: /echo\n        files: {f: {path: data/photo.txt}}\n"
        "        check: [{contains: the-fragment}, {contains: not really a photo}]\n",
    )
    port = free_port()
    demo_reset(demo_url)
    master = cluster.master(path, port, "-H", demo_url, "--expect-workers", "3", "-u", "12", "-r", "1000", "-i", "10")
    workers = [cluster.worker(port, name=f"w{i}") for i in range(3)]
    assert master.wait(90) == 0, master.out + master.err
    results = cluster.results()
    server = demo_stats(demo_url)["by_path"]
    # 3 fixed c, then 9 at 2:1: 6 a and 3 b; each worker 2 a, 1 b, 1 c
    assert request_counts(results) == {"GET /items": 60, "GET /about": 60, "GET /json": 30, "POST /echo": 30}
    assert server == {"GET /items": 60, "GET /about": 60, "GET /json": 30, "POST /echo": 30}
    assert results["total"]["failures"] == 0  # the include and the upload came from the master
    assert sorted(w["users_max"] for w in results["workers"]) == [4, 4, 4]
    assert sum(w["requests"] for w in results["workers"]) == 180
    for worker in workers:
        assert worker.wait(30) == 0, worker.err
        assert list((tmp_path / worker.name).iterdir()) == []  # the scenario lived in a temporary folder


def test_a_worker_joining_later_takes_users(tmp_path: Path, demo_url: str, cluster: Cluster) -> None:
    path = write(tmp_path, "users: {u: {think: 50ms, sequence: [{get: /items}]}}\n")
    port = free_port()
    master = cluster.master(path, port, "-H", demo_url, "-u", "4", "-r", "100", "-t", "10s")  # time to start one more
    cluster.worker(port, name="first")
    wait_until(log_shows(master, "4 users running"), 30, "the first worker's users")
    cluster.worker(port, name="second")
    assert master.wait(60) == 0, master.err
    workers = {w["id"]: w for w in cluster.results()["workers"]}
    assert len(workers) == 2 and all(w["users_max"] == 2 or w["users_max"] == 4 for w in workers.values())
    assert all(w["requests"] > 0 for w in workers.values())  # the second took half of the users


def test_stages_ramp_down_across_workers_and_every_second_is_its_own_point(
    tmp_path: Path, demo_url: str, cluster: Cluster
) -> None:
    """The master hears its workers a report late (3 s here, the default): a point still shows the users of
    its own second, not of the moment it was taken, and the last seconds are not folded into one point."""
    path = write(
        tmp_path,
        "load: {stages: [{duration: 2s, users: 4}, {duration: 3s, users: 0}]}\n"
        "users: {u: {think: 50ms, sequence: [{get: /items}]}}\n",
    )
    demo_reset(demo_url)
    run = cluster.start(
        "run", str(path), "-H", demo_url, "--processes", "2", "--heartbeat-interval", "0.2s",
        "--json", str(tmp_path / "results.json"), "--only-summary", name="run",
    )  # fmt: skip
    assert run.wait(90) == 0, run.out + run.err
    results = cluster.results()
    series = results["series"]
    assert all(point["interval_s"] <= 1.0 for point in series), series
    assert sum(point["requests"] for point in series) == results["total"]["requests"], series
    users = [point["users"] for point in series]
    peak = users.index(max(users))
    assert max(users) == 4 and any(0 < u < 4 for u in users[peak:]), users  # a ramp down, not a drop
    assert results["stop_reason"] == "stages completed"


def test_a_worker_says_it_ignores_metrics_port(tmp_path: Path, demo_url: str, cluster: Cluster) -> None:
    path = write(tmp_path, "users: {u: {sequence: [{get: /items}]}}\n")
    port = free_port()
    master = cluster.master(path, port, "-H", demo_url, "-u", "1", "-i", "1")
    worker = cluster.worker(port, "--metrics-port", "0", name="w")
    assert master.wait(60) == 0, master.err
    assert worker.wait(60) == 0, worker.err
    line = "lrun: --metrics-port is ignored by a worker: the master serves the metrics of the run"
    assert worker.err.count(line) == 1, worker.err


# ------------------------------------------------------------------------------------------ losing processes


def test_kill_9_of_a_worker_keeps_what_it_reported(tmp_path: Path, demo_url: str, cluster: Cluster) -> None:
    path = write(tmp_path, "users: {u: {think: 20ms, sequence: [{get: /items}]}}\n")
    port = free_port()
    demo_reset(demo_url)
    master = cluster.master(path, port, "-H", demo_url, "--expect-workers", "3", "-u", "6", "-r", "100", "-t", "6s")
    workers = [cluster.worker(port, name=f"w{i}") for i in range(3)]
    wait_until(log_shows(master, "6 users running"), 30, "all users running")
    time.sleep(1.5)  # it reported a few times
    victim = workers[1]
    os.kill(victim.pid, signal.SIGKILL)
    assert master.wait(60) == 0, master.err
    results = cluster.results()
    state = {w["pid"]: w for w in results["workers"]}
    assert state[victim.pid]["state"] == "missing" and state[victim.pid]["requests"] > 0
    assert any("is missing" in warning for warning in results["warnings"])
    survivors = [state[w.pid] for w in workers if w is not victim]
    assert all(w["users_max"] == 3 for w in survivors)  # its 2 users went to the other two
    total = results["total"]["requests"]
    assert total == sum(w["requests"] for w in results["workers"])  # what it reported is in the totals
    server = demo_stats(demo_url)["by_path"]["GET /items"]
    assert total <= server <= total + 200  # only what it did not report yet is missing (≤ 0.5 s of 2 users)
    assert results["stop_reason"] == "run time reached"


def test_kill_9_of_the_master_stops_the_load(tmp_path: Path, demo_url: str, cluster: Cluster) -> None:
    path = write(tmp_path, "users: {u: {think: 20ms, sequence: [{get: /items}]}}\n")
    port = free_port()
    master = cluster.master(path, port, "-H", demo_url, "--expect-workers", "2", "-u", "4", "-r", "100", "-t", "60s")
    workers = [cluster.worker(port, "--master-timeout", "2s", name=f"w{i}") for i in range(2)]
    wait_until(log_shows(master, "4 users running"), 30, "all users running")
    os.kill(master.pid, signal.SIGKILL)
    killed = time.monotonic()  # the workers could know from now on: the master says nothing more
    count, last_request = demo_stats(demo_url)["by_path"]["GET /items"], killed
    while any(w.alive() for w in workers) and time.monotonic() - killed < 30:  # when did the load stop?
        time.sleep(0.1)
        now, seen = time.monotonic(), demo_stats(demo_url)["by_path"]["GET /items"]
        if seen != count:
            count, last_request = seen, now
    for worker in workers:
        assert worker.wait(20) == 1
        assert "nothing heard from the master for 2s: stopped the users and quit" in worker.err
    # the load, not the processes' exit (closing sockets, a loaded machine): the timeout and a generous margin
    assert last_request - killed < 2 + 4, f"requests went on {last_request - killed:.1f}s after the master died"
    time.sleep(0.5)
    assert demo_stats(demo_url)["by_path"]["GET /items"] == count  # nobody is loading any more


def test_a_silent_worker_is_missing_then_taken_back(tmp_path: Path, demo_url: str, cluster: Cluster) -> None:
    path = write(tmp_path, "users: {u: {think: 20ms, sequence: [{get: /items}]}}\n")
    port = free_port()
    master = cluster.master(path, port, "-H", demo_url, "--expect-workers", "2", "-u", "4", "-r", "100", "-t", "7s")
    workers = [cluster.worker(port, "--master-timeout", "30s", name=f"w{i}") for i in range(2)]
    wait_until(log_shows(master, "4 users running"), 30, "all users running")
    os.kill(workers[0].pid, signal.SIGSTOP)
    try:
        wait_until(log_shows(master, "is missing"), 10, "the stopped worker to be missing")
        time.sleep(1)  # the other worker takes its users
    finally:
        os.kill(workers[0].pid, signal.SIGCONT)
    wait_until(log_shows(master, "is back"), 10, "the worker to be back")
    assert master.wait(60) == 0, master.err
    results = cluster.results()
    assert [w["state"] for w in results["workers"]] == ["stopped", "stopped"]
    assert sorted(w["users_max"] for w in results["workers"]) == [2, 4]  # the other had all 4 for a while
    assert all(w.wait(20) == 0 for w in workers)


def test_ctrl_c_on_the_master_stops_workers_and_writes_outputs(tmp_path: Path, demo_url: str, cluster: Cluster) -> None:
    path = write(tmp_path, "users: {u: {think: 20ms, sequence: [{get: /items}]}}\n")
    run = cluster.start(
        "run", str(path), "-H", demo_url, "--processes", "2", "-u", "4", "-r", "100", "-t", "60s",
        "--json", str(tmp_path / "results.json"), "--only-summary", *FAST, name="run",
    )  # fmt: skip
    wait_until(log_shows(run, "4 users running"), 30, "all users running")
    pids = [int(pid) for pid in run.err.split("pids ", 1)[1].split("\n", 1)[0].split(", ")]
    time.sleep(1)
    run.popen.send_signal(signal.SIGINT)
    assert run.wait(30) == 0, run.err
    results = cluster.results()
    assert results["stop_reason"] == "interrupted" and results["total"]["requests"] > 0
    assert sum(w["requests"] for w in results["workers"]) == results["total"]["requests"]
    for pid in pids:  # the workers are gone too (they were our children's children: poll /proc)
        wait_until(lambda pid=pid: not Path(f"/proc/{pid}").exists() or _zombie(pid), 10, f"worker {pid} to exit")


def test_local_workers_exit_with_their_parent(tmp_path: Path, demo_url: str, cluster: Cluster) -> None:
    path = write(tmp_path, "users: {u: {think: 20ms, sequence: [{get: /items}]}}\n")
    run = cluster.start(
        "run", str(path), "-H", demo_url, "--processes", "2", "-u", "4", "-r", "100", "-t", "60s", *FAST, name="run"
    )
    wait_until(log_shows(run, "4 users running"), 30, "all users running")
    pids = [int(pid) for pid in run.err.split("pids ", 1)[1].split("\n", 1)[0].split(", ")]
    os.kill(run.pid, signal.SIGKILL)
    for pid in pids:
        wait_until(lambda pid=pid: not Path(f"/proc/{pid}").exists() or _zombie(pid), 10, f"worker {pid} to exit")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except OSError:
        return True


# ------------------------------------------------------------------------------------------ refusals and errors


def test_user_errors_are_one_line_and_exit_2(tmp_path: Path, cluster: Cluster) -> None:
    path = write(tmp_path, "users: {u: {sequence: [{get: /}]}}\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = cluster.master(path, port, "-H", "http://127.0.0.1:1")
        assert taken.wait(30) == 2
    assert f"lrun: --master-bind-port {port}: the port is in use" in taken.err
    both = cluster.start("run", str(path), "--master", "--worker", name="both")
    assert both.wait(30) == 2 and "a process is one or the other" in both.err
    nothing = cluster.start("run", "--master", name="nothing")
    assert nothing.wait(30) == 2 and "missing SCENARIO" in nothing.err
    nobody = cluster.worker(free_port(), "--master-timeout", "1s", name="nobody")
    wait_until(log_shows(nobody, "looking for the master"), 30, "the worker to start")
    nobody.popen.send_signal(signal.SIGTERM)  # it would look for a master for 60 s
    assert nobody.wait(30) == 0
    for proc in (taken, both, nothing, nobody):
        assert "Traceback" not in proc.err, proc.err


def test_garbage_on_the_master_port_is_dropped(tmp_path: Path, demo_url: str, cluster: Cluster) -> None:
    path = write(tmp_path, "users: {u: {think: 20ms, sequence: [{get: /items}]}}\n")
    port = free_port()
    master = cluster.master(path, port, "-H", demo_url, "-u", "2", "-r", "100", "-t", "2s", token=None)
    wait_until(log_shows(master, "waiting for 1 worker"), 30, "the master to listen")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:  # not even ZeroMQ
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(2000))
    context = zmq.Context()
    try:
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.IDENTITY, b"hostile")
        dealer.connect(f"tcp://127.0.0.1:{port}")
        for frame in (
            b"\x00junk",
            os.urandom(5000),
            msgpack.packb([p.PROTOCOL_VERSION, "Hello", {"worker_id": 5}]),
            p.encode(p.Report(1, {"format": "lrun-stats-delta", "version": 1, "entries": [{"x": 1}]}, 1)),
            msgpack.packb([p.PROTOCOL_VERSION, "Quit", {"reason": "x"}]),
        ):
            dealer.send(frame)
        dealer.send_multipart([b"two", b"frames"])
        old = context.socket(zmq.DEALER)  # a worker of another version hears why it is refused
        old.setsockopt(zmq.LINGER, 0)
        old.connect(f"tcp://127.0.0.1:{port}")
        old.send(msgpack.packb([99, "Hello", {"lrun_version": "9.9"}]))
        assert old.poll(10_000), "no answer to a hello of another version"
        version, kind, body = p.peek(old.recv())
        assert (version, kind) == (p.PROTOCOL_VERSION, "Refused") and body["code"] == "version"
        assert "run the same lrun version on master and workers" in body["reason"]
        wait_until(log_shows(master, "dropped a message from hostile"), 10, "the master to log the garbage")
    finally:
        context.destroy(linger=0)
    cluster.worker(port, name="honest", token="")
    assert master.wait(60) == 0, master.err  # it still ran the test
    assert master.err.count("dropped a message from hostile") == 1  # once per peer
    assert cluster.results()["total"]["requests"] > 0
    assert "Traceback" not in master.err
    assert "without a token" not in master.err  # loopback: no warning


def test_a_worker_of_another_version_says_so(tmp_path: Path, cluster: Cluster) -> None:
    """A fake master answering in protocol version 99: the worker exits 2 with the reason."""
    context = zmq.Context()
    try:
        router = context.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        worker = cluster.worker(port, name="w", token="")  # the fake master speaks plain text
        assert router.poll(30_000)
        identity, _ = router.recv_multipart()
        router.send_multipart([identity, msgpack.packb([99, "Welcome", {}])])
        assert worker.wait(30) == 2
        assert f"the master speaks protocol version 99; this lrun speaks version {p.PROTOCOL_VERSION}" in worker.err
        assert "run the same lrun version on master and workers" in worker.err
    finally:
        context.destroy(linger=0)


# ------------------------------------------------------------------------------------------ in this process


def test_the_bundle_keeps_its_files_inside_its_folder(tmp_path: Path) -> None:
    from runner.distributed.bundle import collect, unpack
    from runner.errors import RunError
    from runner.scenario import load_scenario

    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "common.yaml").write_text("variables: {password: secret}\n")
    (tmp_path / "plans").mkdir()
    path = write(
        tmp_path / "plans",
        "host: demo\ninclude: [../shared/common.yaml]\n"
        "users: {u: {sequence: [{post: /echo, files: {f: {path: ../shared/common.yaml}}}, {get: /}]}}\n",
    )
    name, files = collect(load_scenario(path))
    assert name == "plans/scenario.yaml" and sorted(files) == ["plans/scenario.yaml", "shared/common.yaml"]
    unpack(files, tmp_path / "copy")
    assert load_scenario(tmp_path / "copy" / name).model.variables == {"password": "secret"}
    for bad in ("../escape.yaml", "/etc/passwd", "a/../../b", "a\\..\\b", ""):
        with pytest.raises(RunError, match="unsafe name"):
            unpack({bad: b"x"}, tmp_path / "copy")


def test_a_worker_greenlet_asks_the_master_and_waits_for_the_reply(tmp_path: Path) -> None:
    """The request/reply path (for pools and rendezvous): a real master and worker in this process."""
    from runner.compile.compiler import CompileOptions, compile_scenario
    from runner.distributed.master import MasterOptions, MasterRunner
    from runner.distributed.worker import RequestError, WorkerOptions, WorkerRunner
    from runner.scenario import load_scenario
    from runner.stats import RequestStats

    path = write(tmp_path, "users: {u: {sequence: [{get: /}]}}\n")
    classes = compile_scenario(load_scenario(path), CompileOptions(host="http://127.0.0.1:1")).user_classes
    master = MasterRunner(classes, RequestStats(), MasterOptions(bind_host="127.0.0.1", bind_port=0, token="t"))
    port = master.bind()
    master.serve()
    worker = WorkerRunner(WorkerOptions(master_port=port, token="t"), path)
    running = gevent.spawn(worker.run)
    try:
        master.wait_for_workers(1, 20)
        sent = time.time()
        pong = worker.request(p.Ping(0, sent))
        assert isinstance(pong, p.Pong) and pong.sent == sent and pong.request_id == 1
        replies = gevent.joinall([gevent.spawn(worker.request, p.Ping(0, float(n))) for n in range(5)], timeout=10)
        assert sorted(r.value.sent for r in replies) == [0.0, 1.0, 2.0, 3.0, 4.0]  # each its own answer
        with pytest.raises(RequestError, match=r"the master owns no pool 'accounts'"):  # a failed request
            worker.request(p.PoolTake(0, "accounts", 100, 0.0))
        assert worker._pending == {}
    finally:
        master.stop("test over")
        master.wait(10)
        master.close()
        assert running.get(timeout=10) == 0


# ------------------------------------------------------------------------------------------ across hosts


def _sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=20)


@pytest.fixture
def netns() -> Iterator[tuple[str, str, str]]:
    """A network namespace joined to this one by a veth pair: (namespace, our address, its address)."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("network namespaces need Linux and root")
    name = f"lrun-test-{os.getpid()}"
    ours, theirs = f"lr{os.getpid() % 100000}a", f"lr{os.getpid() % 100000}b"
    added = _sh("ip", "netns", "add", name)
    if added.returncode != 0:
        pytest.skip(f"cannot create a network namespace here (ip netns add: {added.stderr.strip() or 'no ip'})")
    try:
        for command in (
            ["ip", "link", "add", ours, "type", "veth", "peer", "name", theirs],
            ["ip", "link", "set", theirs, "netns", name],
            ["ip", "addr", "add", "10.213.77.1/30", "dev", ours],
            ["ip", "link", "set", ours, "up"],
            ["ip", "netns", "exec", name, "ip", "addr", "add", "10.213.77.2/30", "dev", theirs],
            ["ip", "netns", "exec", name, "ip", "link", "set", theirs, "up"],
            ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
        ):
            done = _sh(*command)
            if done.returncode != 0:
                pytest.skip(f"cannot set up a veth pair here ({' '.join(command)}: {done.stderr.strip()})")
        yield name, "10.213.77.1", "10.213.77.2"
    finally:
        _sh("ip", "link", "delete", ours)
        _sh("ip", "netns", "delete", name)


def test_a_worker_on_another_host(tmp_path: Path, cluster: Cluster, netns: tuple[str, str, str]) -> None:
    """The master on this side of a veth pair, a worker in another network namespace (another "host")."""
    name, master_address, _ = netns
    demo = subprocess.Popen(
        [sys.executable, "-m", "runner.demo", "--host", master_address, "--port", "0", "--exit-with-parent"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert demo.stdout is not None
        url = demo.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith(f"http://{master_address}:"), url
        path = write(tmp_path, "users: {u: {think: 10ms, sequence: [{get: /items}]}}\n")
        port = free_port()
        master = cluster.start(
            "run", str(path), "--master", "--master-bind-host", master_address, "--master-bind-port", str(port),
            "--master-token", TOKEN, "-H", url, "-u", "3", "-r", "100", "-i", "20", "--only-summary",
            "--json", str(tmp_path / "results.json"), *FAST, name="master",
        )  # fmt: skip
        workdir = tmp_path / "far"  # no scenario there: it comes from the master, across the veth pair
        workdir.mkdir()
        worker = cluster.start(
            "--worker", "--master-host", master_address, "--master-port", str(port),
            name="far", env={"LRUN_MASTER_TOKEN": TOKEN}, cwd=workdir, prefix=["ip", "netns", "exec", name],
        )  # fmt: skip
        assert master.wait(90) == 0, master.err
        results = cluster.results()
        assert results["total"]["requests"] == 60 and demo_stats(url)["by_path"]["GET /items"] == 60
        assert [(w["pid"], w["requests"]) for w in results["workers"]] == [(worker.pid, 60)]  # ip exec'd lrun
        assert worker.wait(30) == 0, worker.err
    finally:
        demo.kill()
        demo.wait(10)


# ------------------------------------------------------------------------------------------ pools, rendezvous


CLUSTER_POOL = """
host: demo
python: hooks.py
pools:
  phones: {csv: data/phones.csv, order: unique, when_empty: stop_test}
setup:
  - post: /register
    form: {phone: setup-0, name: the setup}
    extract: {campaign: {jsonpath: $.name}}
users:
  applicant:
    think: 5ms
    sequence:
      - transaction: sign up
        steps:
          - post: /register
            form: {phone: "{{ phones.phone }}", name: "{{ campaign }}"}
            check: {status: 201}
"""


def test_a_unique_pool_is_shared_by_the_cluster_without_duplicates(
    tmp_path: Path, demo_url: str, cluster: Cluster
) -> None:
    """5,000 phones, 3 workers that receive the scenario and its CSV: each phone registered once, then the
    empty pool stops the whole cluster; transactions and checkpoints add up on the master."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "phones.csv").write_text("phone,name\n" + "".join(f"+3180{i:07d},n\n" for i in range(5000)))
    (tmp_path / "hooks.py").write_text("def on_test_start(env):\n    env.variables['from_hook'] = 1\n")
    path = write(tmp_path, CLUSTER_POOL)
    port = free_port()
    demo_reset(demo_url)
    master = cluster.master(
        path,
        port,
        "-H",
        demo_url,
        "--expect-workers",
        "3",
        "-u",
        "30",
        "-r",
        "1000",
        "-t",
        "90s",
        "--stop-timeout",
        "5s",
    )
    for i in range(3):
        cluster.worker(port, name=f"w{i}")
    assert master.wait(120) == 0, master.out + master.err
    results = cluster.results()
    registrations = demo_stats(demo_url)["registrations"]
    assert registrations.pop("setup-0") == 1  # the setup ran once, on the master
    assert set(registrations.values()) == {1}  # no phone twice: never a 409
    assert results["stop_reason"] == "data pool 'phones' ran out of rows (5000 handed out)", master.out + master.err
    assert len(registrations) == 5000  # a unique row at a time: none is left in a worker's hands
    (pool,) = results["pools"]
    assert (pool["handed_out"], pool["dry"]) == (5000, True)
    posts = {f"{e['method']} {e['name']}": e for e in results["requests"]}["POST /register"]
    assert posts["requests"] == len(registrations) + 1 and posts["failures"] == 0
    (signup,) = results["transactions"]["entries"]
    assert signup["requests"] == len(registrations) and signup["failures"] == 0
    (check,) = [c for c in results["checks"] if c["check"] == "status is 201"]
    assert check["passed"] == len(registrations)


CLUSTER_RENDEZVOUS = """
host: demo
load: {users: 30, spawn_rate: 15, iterations: 1}
users:
  buyer:
    sequence:
      - rendezvous: sale
        users: 30
        timeout: 20s
      - get: /echo
        name: sale
        extract: {coupon: {regex: "coupon=([a-z]+)", default: none, on_missing: warn}}
"""


def test_a_rendezvous_is_global_across_workers(tmp_path: Path, demo_url: str, cluster: Cluster) -> None:
    """30 users over 3 workers arrive over 2 s; the master releases them together, and records it once."""
    path = write(tmp_path, CLUSTER_RENDEZVOUS)
    port = free_port()
    master = cluster.master(path, port, "-H", demo_url, "--expect-workers", "3")
    for i in range(3):
        cluster.worker(port, name=f"w{i}")
    assert master.wait(90) == 0, master.out + master.err
    results = cluster.results()
    (point,) = results["rendezvous"]
    assert point["arrivals"] == 30
    assert [(r["released"], r["reason"]) for r in point["releases"]] == [(30, "policy")]
    assert point["releases"][0]["waited_ms"] > 1000  # the first waited while the others were spawned
    sale = {e["name"]: e for e in results["requests"]}["sale"]
    assert sale["requests"] == 30
    assert sorted(w["requests"] for w in results["workers"]) == [10, 10, 10]
    coupons = [w for w in results["warnings"] if "coupon:" in w]  # said by every worker, kept once
    assert len(coupons) == 1 and "(worker " in coupons[0]
