"""Overhead of ``HttpSession`` over a bare ``geventhttpclient.HTTPClient``.

A raw gevent socket server in a child process answers every request with the same small response; the
client runs N sequential keep-alive GETs with each contender, twice, interleaved, and keeps the best round.
Reported: requests/s (wall) and client CPU per request, which is where our overhead shows.

    python bench/http_session_bench.py [-n 20000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 27\r\n"
    b"Cache-Control: no-store\r\n\r\n"
    b'{"ok":true,"items":[1,2,3]}'
)
TIME_LIMIT = 60.0  # seconds per round, whatever N is


def serve(ready: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from gevent.server import StreamServer

    def handle(sock: Any, _address: object) -> None:
        pending = b""
        while True:
            data = sock.recv(65536)
            if not data:
                break
            pending += data
            count = pending.count(b"\r\n\r\n")  # GETs only: a request is its head
            if count:
                pending = pending[pending.rfind(b"\r\n\r\n") + 4 :]
                sock.sendall(RESPONSE * count)
        sock.close()

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    ready.put(server.server_port)
    server.serve_forever()


def measure(name: str, one_request: Callable[[], None], n: int) -> tuple[float, float]:
    for _ in range(min(1000, n)):
        one_request()
    wall, cpu = time.perf_counter(), time.process_time()
    done = 0
    deadline = wall + TIME_LIMIT
    while done < n and time.perf_counter() < deadline:
        for _ in range(min(1000, n - done)):
            one_request()
        done += min(1000, n - done)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rate, cpu_us = done / wall, cpu / done * 1e6
    print(f"  {name:<28} {rate:9.0f} req/s   {cpu_us:6.1f} µs CPU/req   ({done} requests)")
    return rate, cpu_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000, help="requests per round (default 20000)")
    n = parser.parse_args().n

    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    server = context.Process(target=serve, args=(ready,), daemon=True)
    server.start()
    try:
        port = ready.get(timeout=30)
        from geventhttpclient import HTTPClient

        from runner.http import HttpSession

        client = HTTPClient("127.0.0.1", port, concurrency=1)
        session = HttpSession(f"http://127.0.0.1:{port}")

        def bare() -> None:
            response = client.get("/api/items?page=1")
            response.read()
            assert response.status_code == 200

        def ours() -> None:
            response = session.request("GET", "/api/items?page=1")
            assert response.status == 200, response.error

        best: dict[str, tuple[float, float]] = {}
        for round_ in (1, 2):
            print(f"round {round_}")
            for name, fn in (("bare HTTPClient", bare), ("HttpSession", ours)):
                rate, cpu = measure(name, fn, n)
                old = best.get(name)
                best[name] = (max(rate, old[0]), min(cpu, old[1])) if old else (rate, cpu)
        client.close()
        session.close()

        (bare_rate, bare_cpu), (our_rate, our_cpu) = best["bare HTTPClient"], best["HttpSession"]
        print(
            f"best: HttpSession {our_rate:.0f} req/s vs bare {bare_rate:.0f} req/s "
            f"-> throughput ratio {our_rate / bare_rate:.2f}, CPU/request ratio {our_cpu / bare_cpu:.2f}"
        )
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
