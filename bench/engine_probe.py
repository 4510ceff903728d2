#!/usr/bin/env python3
"""lrun's engine in this process, against bench nginx, with or without cProfile: where does the CPU go?

Runs a bench scenario (plain, correlated, https: plain over TLS 1.3) through ``runner.engine.runner.LocalRunner``
with a statistics sink
that only counts, pinned to core 0 (nginx on core 1), for ``--duration`` seconds. It measures the engine,
the compiled steps and the HTTP session, without the command line and without the real statistics, so it is
a lower bound of what ``lrun run`` costs per request; run.py measures the real thing.

    python bench/engine_probe.py [--scenario plain] [--duration 10] [--profile [--top 30]]
    valgrind --tool=callgrind python bench/engine_probe.py --iterations 200   # instructions per request
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import cProfile  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BENCH, Children, Nginx  # noqa: E402


class CountingStats:
    def __init__(self) -> None:
        self.requests = 0
        self.failures = 0
        self.errors = 0
        self.first_failure: str | None = None

    def log(
        self,
        method: str,
        name: str,
        ms: float,
        size: int,
        failure: str | None,
        retries: int = 0,
        http2: bool = False,
        timings: tuple[float, ...] | None = None,
    ) -> None:
        self.requests += 1
        if failure is not None:
            self.failures += 1
            self.first_failure = self.first_failure or failure

    def log_error(self, error: BaseException, user_type: str) -> None:
        self.errors += 1
        self.first_failure = self.first_failure or repr(error)


def RealStats() -> Any:
    """``RequestStats`` with the counts ``main`` prints (the engine's real statistics: what ``lrun run`` pays)."""
    from runner.stats import RequestStats

    class Real(RequestStats):
        failures = errors = 0
        first_failure = None

        @property
        def requests(self) -> int:
            return self.total.num_requests

    return Real()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="plain", choices=["plain", "correlated", "https"])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument(
        "--iterations",
        type=int,
        help="each user runs this many iterations, then the run ends (a fixed amount "
        "of work: for callgrind's instruction counts, which do not depend on the machine's noise)",
    )
    parser.add_argument("--profile", action="store_true", help="run under cProfile and print the top functions")
    parser.add_argument("--real-stats", action="store_true", help="count into RequestStats, not a counting sink")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--pstats", metavar="FILE", help="also save the cProfile data (snakeviz, pstats)")
    args = parser.parse_args()

    from runner.compile.compiler import CompileOptions, compile_scenario
    from runner.engine.runner import LocalRunner
    from runner.scenario import load_scenario

    cpus = sorted(os.sched_getaffinity(0))
    gen_cpu, nginx_cpu = (cpus[0], cpus[1]) if len(cpus) > 1 else (cpus[0], cpus[0])
    children = Children()
    try:
        with tempfile.TemporaryDirectory(prefix="lrun-probe-") as tmp:
            nginx = Nginx(children, Path(tmp), nginx_cpu)
            os.sched_setaffinity(0, {gen_cpu})
            loaded = load_scenario(str(BENCH / f"{'plain' if args.scenario == 'https' else args.scenario}.yaml"))
            host = nginx.tls_url if args.scenario == "https" else nginx.url
            compiled = compile_scenario(loaded, CompileOptions(host=host))
            classes = compiled.user_classes
            stats: Any = CountingStats()
            if args.real_stats:
                stats = RealStats()
            runner = LocalRunner(classes, stats, iterations=args.iterations, run_state=compiled.fresh_state())
            profile = cProfile.Profile() if args.profile else None
            before = nginx.requests()
            wall, cpu = time.perf_counter(), time.process_time()
            if profile:
                profile.enable()
            runner.start(args.users, args.users, args.duration)
            runner.wait(args.duration + 30)
            if profile:
                profile.disable()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            counted = nginx.requests() - before
    finally:
        children.stop_all()
    print(
        f"{args.scenario}: {stats.requests:,} requests in {wall:.1f} s = {stats.requests / wall:,.0f} req/s, "
        f"{cpu / max(1, stats.requests) * 1e6:.0f} µs CPU/req, {stats.failures} failed, "
        f"{stats.errors if isinstance(stats, CountingStats) else len(stats.errors.exception_list())} errors "
        f"(nginx counted {counted:,}){' under cProfile' if profile else ''}"
    )
    if stats.first_failure:
        print(f"  first failure: {stats.first_failure}")
    if profile:
        if args.pstats:
            profile.dump_stats(args.pstats)
        st = pstats.Stats(profile).strip_dirs()
        st.sort_stats("tottime").print_stats(args.top)
        st.sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
