"""A long ``--web`` run with a page open and a script polling: prints lrun's RSS over time (issue 29).

    python bench/web_soak.py                          # 1 hour, 1,000 users on the demo target, RSS every 60 s
    python bench/web_soak.py --duration 240 --users 200 --every 15

What it does: starts ``lrun SCENARIO --web --web-port 0 --autostart -u N -r R -t DURATION -H demo``, keeps one
event stream open (a browser: raw socket reading ``/api/events``), and polls ``/stats/requests``,
``/api/state`` and ``/api/series?key=total`` once a second on one kept-alive connection (a script), all on
loopback. Every ``--every`` seconds it prints lrun's RSS (``/proc/PID/status``, the lrun process alone: the demo
target is its own process). At the end: the RSS after warm-up (``--warmup`` s) and the growth from there.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
URL = re.compile(r"lrun web UI: http://([\d.]+):(\d+)")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def browser(host: str, port: int, stop: threading.Event, counts: dict[str, int]) -> None:
    """An open page: read the event stream until told to stop (or the server ends it)."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        sock.settimeout(2)
        while not stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return
            counts["events"] += data.count(b"event: snapshot")


def poller(host: str, port: int, stop: threading.Event, counts: dict[str, int]) -> None:
    """A script: the three REST reads once a second on one kept-alive connection."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    while not stop.wait(1.0):
        for path in ("/stats/requests", "/api/state", "/api/series?key=total"):
            try:
                conn.request("GET", path)
                reply = conn.getresponse()
                reply.read()
                counts["polls"] += 1
                counts["errors"] += reply.status != 200
            except OSError:
                counts["errors"] += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "quickstart.yaml"))
    parser.add_argument("--duration", type=int, default=3600, help="seconds of load")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--spawn-rate", type=int, default=100)
    parser.add_argument("--every", type=int, default=60, help="seconds between RSS lines")
    parser.add_argument("--warmup", type=int, default=120, help="seconds before the flat part begins")
    args = parser.parse_args()
    command = [sys.executable, "-m", "runner", "run", args.scenario, "--web", "--web-port", "0", "--autostart"]
    command += ["-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.duration}s", "-H", "demo"]
    command += ["--only-summary", "--autoquit", "1"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        match = None
        for line in process.stdout:
            if match := URL.search(line):
                break
        if match is None:
            print("lrun --web did not start", file=sys.stderr)
            return 1
        host, port = match.group(1), int(match.group(2))
        stop = threading.Event()
        counts = {"events": 0, "polls": 0, "errors": 0}
        threads = [
            threading.Thread(target=browser, args=(host, port, stop, counts), daemon=True),
            threading.Thread(target=poller, args=(host, port, stop, counts), daemon=True),
        ]
        for thread in threads:
            thread.start()
        began = time.monotonic()
        samples: list[tuple[float, float]] = []
        print(f"{'s':>6} {'RSS MB':>8} {'events':>7} {'polls':>6} {'errors':>6}", flush=True)
        while process.poll() is None and time.monotonic() - began < args.duration:
            time.sleep(min(args.every, max(0.0, args.duration - (time.monotonic() - began))))
            if process.poll() is not None:
                break
            elapsed, rss = time.monotonic() - began, rss_mb(process.pid)
            samples.append((elapsed, rss))
            print(
                f"{elapsed:6.0f} {rss:8.1f} {counts['events']:7d} {counts['polls']:6d} {counts['errors']:6d}",
                flush=True,
            )
        stop.set()
        flat = [rss for t, rss in samples if t >= args.warmup]
        if flat:
            print(
                f"after {args.warmup}s of warm-up: {flat[0]:.1f} MB -> {flat[-1]:.1f} MB "
                f"(min {min(flat):.1f}, max {max(flat):.1f}; growth {flat[-1] - flat[0]:+.1f} MB)"
            )
        return 0
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(10)


if __name__ == "__main__":
    sys.exit(main())
