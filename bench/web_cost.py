"""What the web UI costs a load test: lrun's CPU seconds per request with two live pages vs none, and its memory
over a run with a page connected. Against nginx on loopback (bench/nginx.conf), as bench/run.py.

    python bench/web_cost.py                      # 2 rounds of 20 s each way, then 120 s of memory
    python bench/web_cost.py --duration 30 --rounds 3 --memory-duration 600

The "pages" are SSE clients (raw sockets reading ``/api/events``), not browsers, so what is measured is lrun.
lrun runs pinned to core 0 and nginx to core 1; rounds interleave headless and web runs. CPU is the lrun
process's user + system time from its first request (nginx's counter moves) to its exit (wait4), over the
requests made in that time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run as harness  # noqa: E402  (bench/run.py: children by PID, nginx, /proc readers)

URL = re.compile(rb"lrun web UI: (http://[\d.]+:\d+)")
SNAPSHOTS = re.compile(rb"web UI: (\d+) snapshots pushed, ([\d.]+) ms of CPU each")


def sse_client(url: str, until: float, counts: dict[str, int]) -> None:
    """Read the event stream until ``until`` (monotonic) or the server closes it; count events and bytes."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        while time.monotonic() < until:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            counts["bytes"] += len(chunk)
            counts["events"] += chunk.count(b"event: snapshot")


def wait_for_url(child: harness.Child, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = URL.search(child.log_path.read_bytes())
        if match:
            return match.group(1).decode()
        if not child.alive():
            raise harness.BenchError(f"lrun --web exited:\n{child.log_tail()}")
        time.sleep(0.1)
    raise harness.BenchError(f"lrun --web printed no URL:\n{child.log_tail()}")


def one_run(
    children: harness.Children, tmp: Path, nginx: Any, args: argparse.Namespace, *, web: bool, clients: int, name: str
) -> dict[str, Any]:
    out = tmp / f"{name}.json"
    lrun = str(Path(sys.executable).parent / "lrun")
    argv = [lrun, str(BENCH / "plain.yaml"), "-H", nginx.url, "-u", str(args.users), "-r", str(args.users)]
    argv += ["-t", f"{args.duration}s", "--only-summary", "--json", str(out)]
    if web:
        argv += ["--web", "--web-port", "0", "--autostart", "--autoquit", "0"]
    child = children.start(name, argv, 0, tmp / f"{name}.log")
    counts = {"events": 0, "bytes": 0}
    readers = []
    rss: list[tuple[float, int]] = []
    if web:
        url = wait_for_url(child)
        until = time.monotonic() + args.duration + 30
        readers = [threading.Thread(target=sse_client, args=(url, until, counts), daemon=True) for _ in range(clients)]
        for reader in readers:
            reader.start()
    started = time.monotonic()
    base = nginx.requests()
    while nginx.requests() == base and child.alive() and time.monotonic() - started < 60:
        time.sleep(0.02)  # the load starts: from here on, the CPU counts
    with contextlib.suppress(OSError):
        cpu0, requests0 = harness.cpu_seconds(child.pid), nginx.requests() - base
    while child.alive():
        if time.monotonic() - started > args.duration + 120:
            children.stop(child)
            raise harness.BenchError(f"{name} did not end:\n{child.log_tail()}")
        with contextlib.suppress(OSError):
            rss.append((round(time.monotonic() - started, 1), harness.rss_kib(child.pid)[0]))
        time.sleep(args.sample_every)
    for reader in readers:
        reader.join(5)
    usage = child.rusage
    assert usage is not None
    results = json.loads(out.read_text())
    requests = results["total"]["requests"]
    total_cpu = usage.ru_utime + usage.ru_stime
    cpu = usage.ru_utime + usage.ru_stime - cpu0
    requests -= requests0
    snapshots = SNAPSHOTS.search(child.log_path.read_bytes())
    return {
        "name": name,
        "web": web,
        "clients": clients,
        "requests": requests,
        "cpu_s": round(cpu, 3),  # from the first request on
        "cpu_s_total": round(total_cpu, 3),  # with startup
        "cpu_us_per_request": round(cpu / requests * 1e6, 3) if requests else None,
        "rps": round(results["total"]["rps"], 1),
        "events_read": counts["events"],
        "snapshots": int(snapshots.group(1)) if snapshots else 0,
        "snapshot_cpu_ms": float(snapshots.group(2)) if snapshots else None,
        "peak_rss_kib": usage.ru_maxrss,
        "rss_kib": rss,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=20, help="seconds of each CPU run")
    parser.add_argument("--rounds", type=int, default=2, help="headless/web pairs, interleaved")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--clients", type=int, default=2, help="SSE clients during the web runs")
    parser.add_argument("--memory-duration", type=int, default=120, help="seconds of the memory run (0: none)")
    parser.add_argument("--sample-every", type=float, default=1.0, help="seconds between RSS samples")
    parser.add_argument("--out", default=str(BENCH / "web_cost.json"))
    args = parser.parse_args()
    children = harness.Children()
    try:
        with tempfile.TemporaryDirectory(prefix="lrun-web-cost-") as name:
            tmp = Path(name)
            nginx = harness.Nginx(children, tmp, 1)
            runs = []
            for round_ in range(args.rounds):
                for web in (False, True):
                    label = f"{'web' if web else 'headless'}-{round_ + 1}"
                    harness.log(f"{label}: {args.users} users for {args.duration}s")
                    runs.append(one_run(children, tmp, nginx, args, web=web, clients=args.clients, name=label))
                    harness.log(f"  {runs[-1]['cpu_us_per_request']} µs CPU/request, {runs[-1]['rps']} rps")
            memory = None
            if args.memory_duration:
                harness.log(f"memory: {args.memory_duration}s with one SSE client")
                long = argparse.Namespace(**{**vars(args), "duration": args.memory_duration, "sample_every": 5.0})
                memory = one_run(children, tmp, nginx, long, web=True, clients=1, name="memory")
    finally:
        children.stop_all()
    summary: dict[str, Any] = {"runs": runs}
    if runs:
        headless = statistics.median(r["cpu_us_per_request"] for r in runs if not r["web"])
        web_cost = statistics.median(r["cpu_us_per_request"] for r in runs if r["web"])
        summary.update(
            cpu_us_per_request_headless=headless, cpu_us_per_request_web=web_cost, ratio=round(web_cost / headless, 4)
        )
        print(f"CPU per request: headless {headless:.2f} µs, with {args.clients} SSE clients {web_cost:.2f} µs")
        print(f"ratio web/headless: {summary['ratio']:.4f} ({(summary['ratio'] - 1) * 100:+.2f} %)")
        pairs = zip([r for r in runs if not r["web"]], [r for r in runs if r["web"]], strict=True)
        print("per round:", ", ".join(f"{w['cpu_us_per_request'] / h['cpu_us_per_request']:.3f}" for h, w in pairs))
        building = [r["snapshot_cpu_ms"] for r in runs if r["snapshot_cpu_ms"] is not None]
        if building:
            ms = statistics.median(building)
            summary["snapshot_cpu_ms"] = ms
            print(f"the UI's snapshot: {ms:.2f} ms of CPU once a second for all pages ({ms / 10:.2f} % of a core)")
    if memory is not None:
        samples = memory["rss_kib"]
        during = [(t, kib) for t, kib in samples if t <= args.memory_duration]  # not the results at the end
        settled = [kib for t, kib in during if t >= 30] or [kib for _, kib in during]
        summary["memory"] = {
            "duration_s": args.memory_duration,
            "rss_kib_after_30s": settled[0],
            "rss_kib_last": settled[-1],
            "rss_kib_max": max(settled),
            "growth_kib": settled[-1] - settled[0],
            "samples": samples,
            "requests": memory["requests"],
            "events_read": memory["events_read"],
        }
        m = summary["memory"]
        print(
            f"memory over {args.memory_duration}s with a page connected: {m['rss_kib_after_30s']} KiB after 30 s, "
            f"{m['rss_kib_last']} KiB at the end (max {m['rss_kib_max']}; growth {m['growth_kib']:+d} KiB), "
            f"{m['requests']} requests, {m['events_read']} events read"
        )
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"details in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
