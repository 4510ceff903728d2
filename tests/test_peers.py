"""Peers lrun reads outside the load (webhooks, OTLP collectors, node_exporter) are hostile: an endless body, one
that trickles forever, a redirect. Memory stays bounded, the run ends on time, one clear warning says why."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import run_measured

MiB = 2**20


class Peer:
    """A loopback server answering every request as ``mode`` says; bounded: it stops writing after ``limit``
    bytes or 60 s, or when the client has gone."""

    def __init__(self, mode: str, *, limit: int = 256 * MiB, location: str = "") -> None:
        self.requests = 0
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self) -> None:
                peer.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if mode == "redirect":
                    self.send_response(int(location.partition(" ")[0]))
                    self.send_header("Location", location.partition(" ")[2])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Connection", "close")
                self.end_headers()
                if mode == "ok":
                    return
                chunk, sent, end = (b"x" * MiB, b"x")[mode == "trickle"], 0, time.monotonic() + 60
                try:
                    while sent < limit and time.monotonic() < end:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        sent += len(chunk)
                        if mode == "trickle":
                            time.sleep(0.2)
                except OSError:
                    pass  # the client hung up: what a bounded reader does

            do_GET = do_POST = answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for peer in made:
        peer.close()


def scenario(tmp_path: Path, demo_url: str, extra: str = "") -> str:
    path = tmp_path / "s.yaml"
    path.write_text(
        f"name: peers\nhost: {demo_url}\n{extra}users:\n  u:\n    think: 100ms\n    sequence:\n      - get: /\n"
    )
    return str(path)


def test_a_webhook_answering_an_endless_body_costs_no_memory(tmp_path: Path, demo_url: str, peers: list) -> None:
    hook = Peer("endless")
    peers.append(hook)
    code, err, _, rss = run_measured(tmp_path, scenario(tmp_path, demo_url), "-t", "2", "--webhook", hook.url)
    assert code == 0, err
    assert hook.requests == 1 and "webhook" not in err  # a 200: delivered, the rest of its answer never read
    assert rss < 200, f"peak RSS {rss} MiB: the 256 MiB answer was read"


def test_a_webhook_that_trickles_is_given_up_on_time_with_one_warning(
    tmp_path: Path, demo_url: str, peers: list
) -> None:
    hook = Peer("trickle")
    peers.append(hook)
    code, err, took, _ = run_measured(tmp_path, scenario(tmp_path, demo_url), "-t", "2", "--webhook", hook.url)
    assert code == 0, err
    assert err.count("webhook: 1 notice(s) not delivered (no complete answer in 5s") == 1, err
    assert took < 2 + 10 + 15, took  # the run, GRACE, and room for a busy machine


@pytest.mark.parametrize("status", [302, 307, 308])
def test_a_webhook_that_redirects_is_not_delivered_and_not_followed(
    tmp_path: Path, demo_url: str, peers: list, status: int
) -> None:
    elsewhere = Peer("ok")
    hook = Peer("redirect", location=f"{status} {elsewhere.url}/other")
    peers += [elsewhere, hook]
    code, err, _, _ = run_measured(tmp_path, scenario(tmp_path, demo_url), "-t", "1", "--webhook", hook.url)
    assert code == 0, err
    assert elsewhere.requests == 0  # neither a GET without the body nor the POST went there
    assert hook.requests == 1  # a redirect is an answer: not retried
    assert f"webhook: 1 notice(s) not delivered (HTTP {status} redirect to {elsewhere.url} (not followed" in err, err


def test_an_otlp_collector_answering_endless_or_never_ending_bodies_is_bounded(
    tmp_path: Path, demo_url: str, peers: list
) -> None:
    endless = Peer("endless")
    peers.append(endless)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endless.url, "OTEL_METRIC_EXPORT_INTERVAL": "500"}
    code, err, _, rss = run_measured(tmp_path, scenario(tmp_path, demo_url), "-t", "3", "--otel", env=env)
    assert code == 0, err
    assert endless.requests >= 2, endless.requests  # exported during the run and at its end
    assert rss < 200, f"peak RSS {rss} MiB: a 256 MiB answer was read"

    trickle = Peer("trickle")
    peers.append(trickle)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": trickle.url, "OTEL_METRIC_EXPORT_INTERVAL": "500"}
    code, err, took, _ = run_measured(
        tmp_path, scenario(tmp_path, demo_url), "-t", "2", "--otel", env={**env, "OTEL_EXPORTER_OTLP_TIMEOUT": "3"}
    )
    assert code == 0, err
    assert "--otel: could not export" in err, err
    assert took < 2 + 3 + 3 + 15, took  # the run, the export's timeout, the SDK's shutdown, a busy machine


def test_a_node_exporter_that_trickles_or_floods_is_a_warning_and_the_run_ends_on_time(
    tmp_path: Path, demo_url: str, peers: list
) -> None:
    slow, flood = Peer("trickle"), Peer("endless", limit=16 * MiB)
    peers += [slow, flood]
    monitor = (
        f"monitor:\n  interval: 1s\n  hosts:\n    - {{name: slow, node_exporter: {slow.url}/metrics}}\n"
        f"    - {{name: flood, node_exporter: {flood.url}/metrics}}\n"
    )
    code, err, took, rss = run_measured(tmp_path, scenario(tmp_path, demo_url, monitor), "-t", "3")
    assert code == 0, err
    assert "node_exporter of 'slow'" in err and "slow (no complete answer in 1s)" in err, err
    assert "node_exporter of 'flood'" in err and "answers more than 8 MiB" in err, err
    assert took < 3 + 15, took
    assert rss < 200, rss
