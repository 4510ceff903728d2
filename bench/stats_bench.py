"""Cost of ``RequestStats.log``, the statistics hot path: 1,000,000 logs over 20 names.

Timings are the best of several rounds (other processes on the machine only ever make a round slower). Also
shown: a 1% failure mix, the once-a-second ``sample`` and the final ``snapshot``.

    python bench/stats_bench.py [-n 1000000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import random
import time

from runner.stats import RequestStats

NAMES = [f"/api/items/{i}" for i in range(20)]


def make_calls(n: int, failure_rate: float) -> list[tuple[str, str, float, int, str | None]]:
    rng = random.Random(42)
    return [
        (
            "GET" if i % 4 else "POST",
            NAMES[i % len(NAMES)],
            rng.lognormvariate(3.0, 1.0),  # median 20 ms, long tail
            rng.randrange(200, 20_000),
            "HTTP 500 Internal Server Error" if rng.random() < failure_rate else None,
        )
        for i in range(n)
    ]


def best_ns_per_log(calls: list[tuple[str, str, float, int, str | None]], rounds: int) -> tuple[float, RequestStats]:
    best, stats = float("inf"), RequestStats()
    for _ in range(rounds):
        stats = RequestStats()
        log = stats.log
        started = time.perf_counter()
        for method, name, ms, size, failure in calls:
            log(method, name, ms, size, failure)
        best = min(best, (time.perf_counter() - started) / len(calls) * 1e9)
    return best, stats


def loop_overhead(calls: list[tuple[str, str, float, int, str | None]]) -> float:
    def nothing(method: str, name: str, ms: float, size: int, failure: str | None) -> None:
        pass

    started = time.perf_counter()
    for method, name, ms, size, failure in calls:
        nothing(method, name, ms, size, failure)
    return (time.perf_counter() - started) / len(calls) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    calls = make_calls(args.n, 0.0)
    ns, stats = best_ns_per_log(calls, args.rounds)
    empty = min(loop_overhead(calls) for _ in range(args.rounds))
    print(f"log, all ok:        {ns:7.0f} ns/log  (the loop and an empty call alone: {empty:.0f} ns)")
    ns_fail, _ = best_ns_per_log(make_calls(args.n, 0.01), args.rounds)
    print(f"log, 1% failures:   {ns_fail:7.0f} ns/log")

    now = time.time()
    started = time.perf_counter()
    for i in range(100):
        stats.sample(now + 1 + i, 100)
    print(f"sample:             {(time.perf_counter() - started) / 100 * 1e6:7.0f} µs/call (20 entries)")
    started = time.perf_counter()
    snapshot = stats.snapshot(duration=60.0)
    print(f"snapshot:           {(time.perf_counter() - started) * 1e3:7.1f} ms")
    total = snapshot["total"]
    buckets = len(total["histogram"]["counts"])
    print(f"total: {total['requests']} requests in {buckets} buckets, p99 {total['percentiles']['99']} ms")


if __name__ == "__main__":
    main()
