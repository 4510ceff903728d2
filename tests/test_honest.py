"""Honest numbers under overload: the run time is a deadline, a starved event loop is flagged, CPU figures and
open-model lateness are measured, not guessed. Real lrun processes against a real (slow-ish) server on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from test_cli import write

from conftest import run_lrun

# A gevent HTTP/1.1 server that answers every request after DELAY seconds (without holding a thread) and keeps,
# for /__stats, how many requests it received and when the last one arrived (time.time(): lrun's clock too).
SLOW_SERVER = r"""
import json, sys, time
import gevent
from gevent.pywsgi import WSGIServer

DELAY = float(sys.argv[1])
seen = {"count": 0, "last": 0.0}

def app(environ, start_response):
    if environ["PATH_INFO"] == "/__stats":
        body = json.dumps(seen).encode()
    else:
        seen["count"] += 1
        seen["last"] = time.time()
        gevent.sleep(DELAY)
        body = b"ok"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]

server = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None, backlog=4096)
server.start()
print(server.server_port, flush=True)
server.serve_forever()
"""


@pytest.fixture
def slow_server() -> Iterator[str]:
    """The slow server in its own process (50 ms a response); its URL."""
    process = subprocess.Popen([sys.executable, "-c", SLOW_SERVER, "0.05"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(10)


def server_stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/__stats", timeout=10) as response:
        return json.loads(response.read())


def test_run_time_is_a_deadline_under_overload(tmp_path: Path, slow_server: str) -> None:
    """2000 users with no think time saturate lrun; -t 3s still ends on time, and nothing is sent after it."""
    scenario = write(tmp_path, "users: {u: {sequence: [{get: /a}, {get: /b}, {get: /c}]}}\n", "s.yaml")
    out = tmp_path / "r.json"
    args = ["-H", slow_server, "-u", "2000", "-r", "1000", "-t", "3s", "--stop-timeout", "1s", "--json", str(out)]
    result = run_lrun(str(scenario), *args, timeout=120)
    results = json.loads(out.read_text())
    server = server_stats(slow_server)
    start = datetime.fromisoformat(results["start"]).timestamp()
    assert server["count"] > 0, result.stdout + result.stderr
    # no request begins after the run time plus the stop timeout (1 s of margin for a starved loop)
    assert server["last"] - start < 3.0 + 1.0 + 1.0, (server["last"] - start, result.stderr[-2000:])
    # the run ends within the run time + the stop timeout + a generous margin (it took twice the run time before)
    assert results["duration_s"] < 3.0 + 1.0 + 3.0, results["duration_s"]
    # requests that began after the deadline are not counted: lrun never counts more than the server received
    assert results["total"]["requests"] <= server["count"]
