"""How much one master costs per worker: a real ``lrun --master`` against many simulated workers.

    python bench/master_scale.py                       # 50, 100, 200 workers, 40 s each
    python bench/master_scale.py --workers 200 --minutes 10    # the flat-memory run
    python bench/master_scale.py --workers 500 --rate 200 --minutes 5    # issue 15's row: 500 workers, 200 req/s

Each simulated worker is a real ZeroMQ DEALER socket speaking the real protocol: it connects with the
token's CURVE keys (the port is encrypted, as in a real run), says hello, heartbeats every second, answers
spawns, and every second sends a ``Report`` whose statistics are a real ``RequestStats.delta()`` of a few
dozen request names (about 1,000 requests a second per worker, log-normal response times, 1 % failures).
The simulated workers all live in one helper process, so the master is the only busy lrun. The master is
sampled from /proc every second: CPU (user + system) and resident memory. On a shared machine the master may
get less CPU than it needs and fall behind (its queue then grows in memory): ``CPU needed`` is what keeping up
takes, from all the CPU it used (``wait4``) for all the requests it merged.
At the end the master's total must equal what the simulated workers sent, or the run counts as failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NAMES = 36  # request names per report: "a few dozen"
RATE = 1000  # requests per second per simulated worker
VARIANTS = 8  # distinct deltas built per second, shared round-robin by the workers
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------------------------------ the simulation


def build_deltas(second: int, rng: random.Random, rate: int = RATE, names: int = NAMES) -> list[tuple[dict, int]]:
    """``VARIANTS`` statistics deltas for one epoch second, each with its request count."""
    from runner.stats import RequestStats

    deltas = []
    for _ in range(VARIANTS):
        now = [float(second)]
        stats = RequestStats(clock=lambda now=now: now[0])
        for i in range(rate):
            now[0] = second + i / rate
            name = f"/api/resource{rng.randrange(names)}"
            failure = "HTTP 500 Internal Server Error" if rng.random() < 0.01 else None
            stats.log("POST" if name.endswith("7") else "GET", name, rng.lognormvariate(3.0, 0.7), 2048, failure)
        deltas.append((stats.delta(entry_seconds=False), rate))  # what a worker sends (without --csv-full-history)
    return deltas


def simulate(count: int, port: int, token: str, seconds: float, rate: int = RATE, names: int = NAMES) -> None:
    """``count`` workers in this process until the master says quit (or ``seconds`` pass).

    Prints ``{"ready": …}`` once every worker got its first spawn (the test runs), and at the end
    ``{"sent_requests": …}``: the requests in every report sent.
    """
    import zmq

    from runner.distributed import protocol as p
    from runner.distributed.security import from_token

    keys = from_token(token)  # the master's port is CURVE-secured, as in a real run with a token
    context = zmq.Context()
    sockets, index_of = [], {}
    poller = zmq.Poller()
    for index in range(count):
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, f"sim-{os.getpid()}-{index}".encode())
        sock.setsockopt(zmq.LINGER, 0)
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = (
            keys.server_public,
            keys.client_public,
            keys.client_secret,
        )
        sock.connect(f"tcp://127.0.0.1:{port}")
        sockets.append(sock)
        index_of[sock] = index
        poller.register(sock, zmq.POLLIN)
        worker_id = f"sim-{os.getpid()}-{index}"
        sock.send(p.encode(p.Hello(worker_id, token, "sim", os.getpid(), 1, "sim", False, time.time())))
    rng = random.Random(1)
    phase = [rng.random() for _ in sockets]  # each worker reports at its own moment of the second
    order = sorted(range(count), key=phase.__getitem__)
    welcomed, quit_ = [False] * count, [False] * count
    users, seq, spawn_seq = [0] * count, [0] * count, [0] * count
    sent_requests, ready_said = 0, False
    deltas: list[tuple[dict, int]] = []
    current, cursor = int(time.time()), 0
    deadline = time.monotonic() + seconds
    while not all(quit_) and time.monotonic() < deadline:
        now = time.time()
        if int(now) != current:
            current, cursor = int(now), 0
            deltas = build_deltas(current - 1, rng, rate, names) if any(users) else []  # the second that just ended
        while cursor < count and now - current >= phase[order[cursor]]:
            index = order[cursor]
            cursor += 1
            if not welcomed[index] or quit_[index]:
                continue
            sockets[index].send(p.encode(p.Heartbeat("running", users[index], 30.0, 80_000_000, spawn_seq[index])))
            if deltas and users[index]:
                seq[index] += 1
                delta, requests = deltas[index % VARIANTS]
                sockets[index].send(p.encode(p.Report(seq[index], delta, users[index])))
                sent_requests += requests
        due = current + phase[order[cursor]] if cursor < count else current + 1
        for sock, _ in poller.poll(timeout=max(0.0, min(50.0, (due - time.time()) * 1000))):
            index = index_of[sock]
            while sock.poll(0):
                message = p.decode(sock.recv())
                if isinstance(message, p.Welcome):
                    welcomed[index] = True
                    sock.send(p.encode(p.Heartbeat("ready", 0, 0.0, 80_000_000, 0)))
                elif isinstance(message, p.Spawn):
                    spawn_seq[index] = message.seq
                    users[index] = sum(message.targets.values())
                    sock.send(p.encode(p.Spawned(message.seq, users[index])))
                    if not ready_said and all(spawn_seq):
                        ready_said = True
                        print(json.dumps({"ready": count}), flush=True)
                elif isinstance(message, p.Stop):
                    users[index] = 0
                    empty = {"format": "lrun-stats-delta", "version": 1, "node": "sim", "entries": [], "errors": {}}
                    seq[index] += 1
                    sock.send(p.encode(p.Report(seq[index], empty, 0)))
                    sock.send(p.encode(p.Stopped(message.reason, False)))
                elif isinstance(message, p.Quit):
                    quit_[index] = True
                elif isinstance(message, p.Refused):
                    sys.exit(f"refused: {message.reason}")
    print(json.dumps({"sent_requests": sent_requests}), flush=True)
    context.destroy(linger=0)


# ------------------------------------------------------------------------------------------ measuring


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK  # utime + stime


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(workers: int, seconds: float, warmup: float, sample_every: float, rate: int, names: int) -> dict:
    """One master with ``workers`` simulated workers; its CPU and memory after ``warmup``."""
    port, token = free_port(), secrets.token_hex(8)
    lrun = [sys.executable, "-m", "runner"]
    if os.environ.get("LRUN_BENCH_PROFILE"):  # a cProfile of the master, for looking into its costs
        lrun = [sys.executable, "-m", "cProfile", "-o", os.environ["LRUN_BENCH_PROFILE"], "-m", "runner"]
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp, "scale.yaml")
        scenario.write_text(
            "host: http://127.0.0.1:9\nusers: {u: {sequence: [{get: /}]}}\n"
        )  # simulated workers send no request
        results = Path(tmp, "results.json")
        log = os.open(Path(tmp, "master.log"), os.O_WRONLY | os.O_CREAT)  # its warnings, counted at the end
        master = subprocess.Popen(
            [
                *lrun,
                "run",
                str(scenario),
                "--master",
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                str(port),
                "--master-token",
                token,
                "--expect-workers",
                str(workers),
                "--expect-workers-max-wait",
                "60s",
                "-H",
                "http://127.0.0.1:1",
                "-u",
                str(workers * 10),
                "-r",
                "100000",
                "-t",
                f"{warmup + seconds}s",
                "--report-interval",
                "1s",
                "--heartbeat-interval",
                "1s",
                "--only-summary",
                "--json",
                str(results),
                "-L",
                "WARNING",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        os.close(log)
        sim = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--simulate",
                str(workers),
                "--port",
                str(port),
                "--token",
                token,
                "--seconds",
                str(warmup + seconds + 900),
                "--rate",
                str(rate),
                "--names",
                str(names),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert sim.stdout is not None
            ready, _, _ = select.select([sim.stdout], [], [], 90)
            if not ready or "ready" not in sim.stdout.readline():
                raise SystemExit(f"the simulated workers did not get going with {workers} workers")
            time.sleep(warmup)
            samples = []
            cpu0, t0 = cpu_seconds(master.pid), time.monotonic()
            rss_first = rss_bytes(master.pid)
            end = t0 + seconds - 2
            while time.monotonic() < end and master.poll() is None:
                time.sleep(sample_every)
                samples.append((time.monotonic() - t0, cpu_seconds(master.pid), rss_bytes(master.pid)))
            cpu1, t1 = cpu_seconds(master.pid), time.monotonic()
            rss_last = rss_bytes(master.pid)
            total_cpu = wait_for_exit(master, 900)
            out, _ = sim.communicate(timeout=180)
        finally:
            for proc in (master, sim):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
        warnings = [line for line in Path(tmp, "master.log").read_text().splitlines() if "WARNING" in line]
        data = json.loads(results.read_text())
        sent = json.loads(out.strip().splitlines()[-1])["sent_requests"]
    rss = [s[2] for s in samples]
    return {
        "workers": workers,
        "cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
        # what it would take to keep up, from all the CPU it used for all the requests it merged: on a shared
        # machine the master may get less than it needs and fall behind, and cpu_percent is then what it got
        "cpu_needed_percent": round(100 * total_cpu / max(1, sent) * workers * rate, 1),
        "master_cpu_s": round(total_cpu, 1),
        "warnings": len(warnings),
        "first_warnings": warnings[:3],
        "rss_start_mib": round(rss_first / 2**20, 1),
        "rss_end_mib": round(rss_last / 2**20, 1),
        "rss_max_mib": round(max(rss, default=rss_last) / 2**20, 1),
        "measured_s": round(t1 - t0, 1),
        "master_requests": data["total"]["requests"],
        "sent_requests": sent,
        "exact": data["total"]["requests"] == sent,
        "rss_samples": [(round(t), round(r / 2**20, 1)) for t, _, r in samples[:: max(1, len(samples) // 20)]],
        "series": series(samples, (0.0, cpu0, rss_first)),
    }


def wait_for_exit(proc: subprocess.Popen, timeout: float) -> float:
    """Wait for ``proc`` to end (it may be behind and take a while); the CPU seconds it used, all of them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        time.sleep(0.2)
    raise SystemExit(f"the master did not end within {timeout:g}s of its run time")


def series(samples: list[tuple[float, float, int]], first: tuple[float, float, int]) -> list[dict]:
    """The master over time: each sample's seconds, CPU % of a core since the one before, and RSS in MiB."""
    rows, before = [], first
    for sample in samples:
        span = sample[0] - before[0]
        cpu = 100 * (sample[1] - before[1]) / span if span > 0 else 0.0
        rows.append({"t": round(sample[0]), "cpu_percent": round(cpu, 1), "rss_mib": round(sample[2] / 2**20, 1)})
        before = sample
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--seconds", type=float, default=40, help="measured time per worker count")
    parser.add_argument("--minutes", type=float, help="measure this many minutes instead (the flat-memory run)")
    parser.add_argument("--warmup", type=float, default=10, help="seconds before measuring")
    parser.add_argument("--rate", type=int, default=RATE, help="requests per second per simulated worker")
    parser.add_argument("--names", type=int, default=NAMES, help="request names in each report")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--simulate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.simulate:
        simulate(args.simulate, args.port, args.token, args.seconds, args.rate, args.names)
        return
    seconds = args.minutes * 60 if args.minutes else args.seconds
    rows = []
    print(
        f"{'workers':>8} {'master CPU':>11} {'CPU needed':>11} {'per worker':>11} {'RSS start':>10} {'RSS end':>9} "
        f"{'exact':>6} {'warnings':>9}"
    )
    for count in args.workers:
        row = measure(count, seconds, args.warmup, 10 if args.minutes else 1, args.rate, args.names)
        rows.append(row)
        print(
            f"{count:>8} {row['cpu_percent']:>10.1f}% {row['cpu_needed_percent']:>10.1f}% "
            f"{row['cpu_needed_percent'] / count:>10.2f}% {row['rss_start_mib']:>7.1f}MiB "
            f"{row['rss_end_mib']:>6.1f}MiB {row['exact']!s:>6} {row['warnings']:>9}",
            flush=True,
        )
        if args.minutes:  # the flat-memory run: the master over time
            for point in row["series"]:
                print(
                    f"{'':>8} t={point['t']:>4}s  CPU {point['cpu_percent']:>5.1f}%  RSS {point['rss_mib']:>6.1f} MiB"
                )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
