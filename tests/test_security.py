"""The master port's security (CURVE), workers' env(), and user ids across workers: real processes on loopback.

A recording HTTP server (a thread here) keeps the headers each request carried; intruders are real ZeroMQ
clients; a TCP relay between a worker and its master captures the bytes on the wire.
"""

from __future__ import annotations

import collections
import http.server
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

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
    requests_sent,
    wait_until,
    write,
)
from zmq.utils import z85

from runner.distributed import protocol as p
from runner.distributed.security import Gatekeeper, constant_env_names, from_token

pytestmark = pytest.mark.e2e


class Recorder(http.server.ThreadingHTTPServer):
    """Answers 200 to everything and keeps each request's headers."""

    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    self.server.seen.append({k.lower(): v for k, v in self.headers.items()})  # type: ignore[attr-defined]
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def curve_dealer(context: zmq.Context, port: int, identity: bytes, token: str | None) -> zmq.Socket:
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IDENTITY, identity)
    if token is not None:
        keys = from_token(token)
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = (
            keys.server_public,
            keys.client_public,
            keys.client_secret,
        )
    sock.connect(f"tcp://127.0.0.1:{port}")
    return sock


def hello(worker_id: str, token: str) -> bytes:
    return p.encode(p.Hello(worker_id, token, "intruder", 1, 1, "0", True, time.time()))


# ------------------------------------------------------------------------------------------ CURVE


def test_a_wrong_or_missing_token_fails_the_handshake_before_any_logic(tmp_path: Path, cluster: Cluster) -> None:
    path = write(tmp_path, "users: {u: {sequence: [{get: /}]}}\n")
    port = free_port()
    master = cluster.master(path, port, "-H", "http://127.0.0.1:1", "--expect-workers-max-wait", "6s")
    wrong = cluster.worker(port, name="wrong", token="wrong")
    missing = cluster.worker(port, name="missing", token="")
    assert wrong.wait(30) == 2 and missing.wait(30) == 2
    assert "refused the connection in the security handshake: its --master-token (or key files)" in wrong.err
    assert "it has a --master-token (or key files); give the worker the same" in missing.err
    assert master.wait(30) == 2
    assert "refused a connection that failed the security handshake" in master.err
    assert " connected (" not in master.err and "dropped a message" not in master.err  # never reached its logic
    assert "lrun: 0 of 1 expected worker(s) connected within 6s" in master.err
    assert "Traceback" not in master.err + wrong.err + missing.err


def test_a_plaintext_client_with_the_token_gets_nothing(tmp_path: Path, cluster: Cluster) -> None:
    path = write(tmp_path, "users: {u: {sequence: [{get: /}]}}\n")
    port = free_port()
    master = cluster.master(path, port, "-H", "http://127.0.0.1:1", "--expect-workers-max-wait", "5s")
    wait_until(log_shows(master, "waiting for 1 worker"), 30, "the master to listen")
    context = zmq.Context()
    try:
        plain = curve_dealer(context, port, b"plain", None)
        for _ in range(3):
            plain.send(hello("plain", TOKEN))  # the right token, in a Hello sent in clear
        assert not plain.poll(2000), "a plaintext client heard from the master"
    finally:
        context.destroy(linger=0)
    assert master.wait(30) == 2
    assert "refused a connection that failed the security handshake" in master.err
    assert "worker plain" not in master.err and "connected (" not in master.err


class Relay:
    """A TCP relay (a thread) from a local port to the master's; keeps every byte both ways."""

    def __init__(self, target: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target = target
        self.captured = bytearray()
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        deadline = time.monotonic() + 120
        while self.running and time.monotonic() < deadline:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, upstream, deadline), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket, deadline: float) -> None:
        with a, b:
            while self.running and time.monotonic() < deadline:
                ready, _, _ = select.select([a, b], [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    self.captured += data
                    (b if sock is a else a).sendall(data)

    def close(self) -> None:
        self.running = False
        self.thread.join(5)
        self.listener.close()


def test_the_traffic_is_encrypted(tmp_path: Path, demo_url: str, cluster: Cluster) -> None:
    """Everything between a worker and its master, captured on the wire, holds nothing readable."""
    secret_path = "/items?marker=readable-marker-4711"
    path = write(tmp_path, f"users: {{u: {{think: 50ms, sequence: [{{get: '{secret_path}'}}]}}}}\n")
    port = free_port()
    # Liveness is not under test here: a relay in this process adds a hop, so a stalled machine gets 3 s, not 0.6 s.
    slow = ["--heartbeat-interval", "0.5s", "--heartbeat-liveness", "6"]
    master = cluster.master(path, port, "-H", demo_url, "-u", "2", "-r", "100", "-t", "2s", *slow)
    wait_until(log_shows(master, "waiting for 1 worker"), 30, "the master to listen")
    relay = Relay(port)
    try:
        cluster.worker(relay.port, name="w")
        assert master.wait(60) == 0, master.err
    finally:
        relay.close()
    assert cluster.results()["total"]["requests"] > 0
    wire = bytes(relay.captured)
    assert b"CURVE" in wire and len(wire) > 2000  # the ZMTP greeting (in clear by design) and a whole run
    for readable in (
        b"readable-marker",
        b"Heartbeat",
        b"Welcome",
        b"Report",
        b"users:",
        demo_url.encode(),
        TOKEN.encode(),
    ):
        assert readable not in wire, readable


def test_a_stolen_worker_id_gets_nothing_and_the_real_worker_keeps_running(
    tmp_path: Path, demo_url: str, cluster: Cluster
) -> None:
    """An intruder that even holds the token presents a running worker's id: heartbeat, report, hello."""
    path = write(tmp_path, "users: {u: {think: 20ms, sequence: [{get: /items}]}}\n")
    demo_reset(demo_url)
    port = free_port()
    master = cluster.master(path, port, "-H", demo_url, "-u", "3", "-r", "100", "-t", "6s")
    worker = cluster.worker(port, name="w")
    wait_until(log_shows(master, "3 users running"), 30, "the users to run")
    worker_id = master.err.split("worker ", 1)[1].split(" connected", 1)[0]
    fake = {"format": "lrun-stats-delta", "version": 1, "entries": [], "errors": {"failures": 0, "exceptions": 0}}
    context = zmq.Context()
    try:
        intruder = curve_dealer(context, port, worker_id.encode(), TOKEN)
        for _ in range(10):
            intruder.send(p.encode(p.Heartbeat("running", 0, 0.0, 1, 0)))
            intruder.send(p.encode(p.Report(99, fake, 0)))
            intruder.send(hello(worker_id, TOKEN))
            assert not intruder.poll(200), "the intruder heard from the master"
    finally:
        context.destroy(linger=0)
    assert master.wait(60) == 0, master.err
    assert worker.wait(20) == 0, worker.err
    results = cluster.results()
    (state,) = results["workers"]
    assert state["id"] == worker_id and state["state"] == "stopped" and state["users_max"] == 3
    assert not any("missing" in warning for warning in results["warnings"])
    # every count real: the server's count is what lrun counted and what it says it cut off at the stop
    assert requests_sent(results) == {"GET /items": demo_stats(demo_url)["by_path"]["GET /items"]}


def test_key_files_admit_listed_workers_only(tmp_path: Path, demo_url: str, cluster: Cluster) -> None:
    from zmq.auth import create_certificates

    keys, allowed, other = tmp_path / "keys", tmp_path / "allowed", tmp_path / "other"
    for folder in (keys, allowed, other):
        folder.mkdir()
    master_public, master_secret = create_certificates(keys, "master")
    good_public, good_secret = create_certificates(keys, "good")
    _, bad_secret = create_certificates(other, "bad")
    os.replace(good_public, allowed / "good.key")
    path = write(tmp_path, "users: {u: {think: 20ms, sequence: [{get: /items}]}}\n")
    port = free_port()
    master = cluster.master(
        path, port, "-H", demo_url, "-u", "2", "-r", "100", "-t", "3s", "--master-bind-host", "0.0.0.0",
        "--master-key-file", str(master_secret), "--worker-keys", str(allowed), token=None,
    )  # fmt: skip
    wait_until(log_shows(master, "waiting for 1 worker"), 30, "the master to listen")
    bad = cluster.worker(
        port, "--master-key-file", str(master_public), "--worker-key-file", str(bad_secret), name="bad", token=""
    )
    assert bad.wait(30) == 2
    assert "refused the connection in the security handshake" in bad.err
    assert "refused a connection from 127.0.0.1: its key is not one this master accepts" in master.err
    good = cluster.worker(
        port, "--master-key-file", str(master_public), "--worker-key-file", str(good_secret), name="good", token=""
    )
    assert master.wait(60) == 0, master.err
    assert good.wait(20) == 0 and cluster.results()["total"]["requests"] > 0
    public_only = cluster.worker(port, "--master-key-file", str(master_public), name="nokey", token="")
    assert public_only.wait(30) == 2 and "--master-key-file needs --worker-key-file" in public_only.err
    assert "Traceback" not in master.err + bad.err + good.err + public_only.err


def test_beyond_loopback_without_a_token_needs_master_insecure(tmp_path: Path, cluster: Cluster) -> None:
    path = write(tmp_path, "users: {u: {sequence: [{get: /}]}}\n")
    port = free_port()
    refused = cluster.master(path, port, "-H", "http://127.0.0.1:1", "--master-bind-host", "0.0.0.0", token=None)
    assert refused.wait(30) == 2
    assert "--master-bind-host 0.0.0.0: a master listening beyond loopback needs --master-token" in refused.err
    assert "--master-insecure" in refused.err and "Traceback" not in refused.err
    insecure = cluster.master(
        path, port, "-H", "http://127.0.0.1:1", "--master-bind-host", "0.0.0.0", "--master-insecure",
        "--expect-workers-max-wait", "1s", token=None,
    )  # fmt: skip
    assert insecure.wait(30) == 2
    assert "without a token (--master-insecure): anyone who can reach it can join" in insecure.err


def test_the_gatekeeper_answers_zap_requests() -> None:
    keys = from_token("t")
    gate = Gatekeeper.__new__(Gatekeeper)  # its answers alone, without its socket
    gate.allowed, gate.refused, gate._logged = keys.allowed, 0, set()
    curve = [b"1.0", b"7", b"lrun", b"127.0.0.1", b"", b"CURVE"]
    allowed = z85.decode(keys.client_public)
    assert gate.answer([*curve, allowed]) == [b"1.0", b"7", b"200", b"OK", keys.client_public, b""]
    assert gate.answer([*curve, os.urandom(32)])[2] == b"400"
    assert gate.answer([b"1.0", b"8", b"lrun", b"127.0.0.1", b"", b"NULL"])[2] == b"400"
    assert gate.answer([b"9.9", b"9"])[2] == b"500" and gate.refused == 2
    assert from_token("t") == keys and from_token("u").server_public != keys.server_public  # derived, stable


# ------------------------------------------------------------------------------------------ user ids


def test_user_ids_are_unique_and_dense_across_workers(tmp_path: Path, recorder: Recorder, cluster: Cluster) -> None:
    path = write(tmp_path, "users: {u: {sequence: [{get: /u, headers: {X-User: '{{ user_id }}'}}]}}\n")
    run = cluster.start(
        "run", str(path), "-H", recorder.url, "--processes", "2", "-u", "7", "-r", "100", "-i", "2",
        "--only-summary", *FAST, name="run",
    )  # fmt: skip
    assert run.wait(90) == 0, run.err
    ids = collections.Counter(int(headers["x-user"]) for headers in recorder.seen)
    assert ids == {n: 2 for n in range(1, 8)}  # 1..7, each user's 2 iterations: no id twice, none missing


# ------------------------------------------------------------------------------------------ env()


def test_a_worker_reads_only_the_variables_its_operator_allows(
    tmp_path: Path, recorder: Recorder, cluster: Cluster
) -> None:
    scenario = """\
variables: {open_name: LRUN_SEC_OPEN_1, closed_name: LRUN_SEC_CLOSED}
users:
  u:
    sequence:
      - get: /const
        headers: {X-Const: "{{ env('LRUN_SEC_CONST', 'unset') }}", X-Absent: "{{ env('LRUN_SEC_ABSENT', 'dflt') }}"}
      - get: /open
        headers: {X-Open: "{{ env(open_name) }}"}
      - get: /closed
        headers: {X-Closed: "{{ env(closed_name) }}"}
"""
    path = write(tmp_path, scenario)
    port = free_port()
    master = cluster.start(
        "run", str(path), "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
        "--master-token", TOKEN, "-H", recorder.url, "-u", "1", "-r", "100", "-i", "1", "--only-summary", *FAST,
        "--json", str(tmp_path / "results.json"), name="master", env={"LRUN_SEC_CONST": "from-the-master"},
    )  # fmt: skip
    worker_env = {
        "LRUN_SEC_CONST": "from-the-worker",
        "LRUN_SEC_ABSENT": "worker-only",
        "LRUN_SEC_OPEN_1": "open-value",
        "LRUN_SEC_CLOSED": "secret-value",
        "LRUN_MASTER_TOKEN": TOKEN,
    }
    workdir = tmp_path / "w"
    workdir.mkdir()
    worker = cluster.start(
        "--worker", "--master-port", str(port), "--allow-env", "LRUN_SEC_OPEN*", name="w", env=worker_env, cwd=workdir
    )
    assert master.wait(60) == 1, master.err  # a request failed (the closed variable)
    assert worker.wait(20) == 0, worker.err
    seen = {h["x-const"]: h for h in recorder.seen if "x-const" in h}
    assert list(seen) == ["from-the-master"]  # a constant name: the master's value travels with the scenario
    assert seen["from-the-master"]["x-absent"] == "dflt"  # the master has none: the default, not the worker's
    assert [h["x-open"] for h in recorder.seen if "x-open" in h] == ["open-value"]
    assert not [h for h in recorder.seen if "x-closed" in h]  # that request failed: nothing was sent
    assert "secret-value" not in master.err + worker.err
    results = cluster.results()
    hint = (
        "does not let scenarios read LRUN_SEC_CLOSED from its environment; its operator can allow it with --allow-env"
    )
    assert any(hint in warning for warning in results["warnings"]), results["warnings"]


def test_constant_env_names_are_found_in_the_scenario() -> None:
    files = {
        "s.yaml": b"a: \"{{ env('API_KEY') }}\"\nb: '{{ env( \"OTHER\", 1) }}'\nc: '{{ env(name) }}'\n",
        "data.csv": b"env('NOT_YAML')\n",
    }
    assert constant_env_names(files) == ["API_KEY", "OTHER"]
