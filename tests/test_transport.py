"""The socket layer of a cluster (``distributed/transport.py``) on real ZeroMQ sockets on loopback."""

from __future__ import annotations

import time

import gevent

from runner.distributed import protocol as p
from runner.distributed.transport import Endpoint


def test_asking_whether_messages_wait_never_deafens_the_receive_loop() -> None:
    """The master asks ``pending()`` every heartbeat interval while its receive loop waits. Reading the socket's
    EVENTS the wrong way consumed the wake-up of the waiting loop: it never read again, and every worker of a
    running cluster went "missing" at once (seen in CI: a unique pool's run stalled until its time limit)."""
    got: list[list[bytes]] = []
    server = Endpoint.server(None, lambda _: None)
    port = server.bind("127.0.0.1", 0)
    server.serve(lambda frames, peer: got.append(frames))
    client = Endpoint.client("w1", None, lambda _: None)
    client.connect(f"tcp://127.0.0.1:{port}")
    watching = True

    def watch() -> None:
        while watching:
            server.pending()
            gevent.sleep(0)

    watcher = gevent.spawn(watch)
    try:
        for i in range(300):
            client.send(p.Ping(i, time.time()))
            gevent.sleep(0.001)
        deadline = time.monotonic() + 3  # loopback: milliseconds; a deaf loop waited 10 s and more
        while len(got) < 300 and time.monotonic() < deadline:
            gevent.sleep(0.01)
    finally:
        watching = False
        watcher.join(1)
        client.close(0)
        server.close(0)
    assert len(got) == 300
    assert [p.decode(frames[1]).request_id for frames in got] == list(range(300))  # type: ignore[attr-defined]
