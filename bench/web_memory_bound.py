#!/usr/bin/env python3
"""What a ``--web`` run keeps per second, over simulated hours: the memory of its live statistics and samples.

An hour-long ``bench/web_soak.py`` rises for the whole hour (73 -> 87 MB at 1,000 users): the charts keep 1 s
points for the first hour. This replays the same per-second work without waiting for the clock: a
``RequestStats(full_history=True)`` (the web UI's: a series per request name) with ``--names`` names getting
``--rate`` requests a second each, and a ``ResourceMonitor`` sampled once a second, for ``--hours`` simulated
hours; every 10 simulated minutes it prints the Python heap they hold (tracemalloc). The series reach their
3,600 points at one hour, then merge pairs: the heap stops growing there.

    python bench/web_memory_bound.py [--hours 3] [--names 8] [--rate 20]
"""

from __future__ import annotations

import argparse
import random
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.monitor.local import ResourceMonitor
from runner.stats import RequestStats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--names", type=int, default=8)
    parser.add_argument("--rate", type=int, default=20, help="requests a second per name")
    args = parser.parse_args()
    now = [1_800_000_000.0]
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    stats = RequestStats(full_history=True, clock=lambda: now[0])
    monitor = ResourceMonitor(clock=lambda: now[0], monotonic=lambda: now[0])
    names = [f"/page/{i}" for i in range(args.names)]
    rng = random.Random(1)
    print(f"{'minute':>7} {'heap MiB':>9} {'series points':>14}")
    for second in range(1, int(args.hours * 3600) + 1):
        for name in names:
            for _ in range(args.rate):
                stats.log("GET", name, rng.lognormvariate(3, 0.6), 1000, None)
        now[0] += 1
        stats.sample(now[0], 1000)
        monitor.sample(now[0])
        if second % 600 == 0:
            heap = (tracemalloc.get_traced_memory()[0] - base) / 2**20
            print(f"{second // 60:>7} {heap:>9.2f} {len(stats.series):>14}", flush=True)


if __name__ == "__main__":
    main()
