#!/usr/bin/env python3
"""Python bytecodes run per request, by function: a count that does not depend on the machine's noise.

One user of a bench scenario (plain, correlated, https) against bench nginx, through the engine and the HTTP
session as ``engine_probe.py`` runs them, under a ``sys.settrace`` tracer with ``f_trace_opcodes``: two runs of
5 and 25 iterations, subtracted, so setup and teardown drop out. C work inside a call (a regular expression,
OpenSSL) is one bytecode here: count it with callgrind (bench/README.md).

    python bench/bytecodes.py [--scenario plain] [--top 30]
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import collections  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from types import FrameType  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_probe import CountingStats  # noqa: E402
from run import BENCH, Children, Nginx  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="plain", choices=["plain", "correlated", "https"])
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--real-stats", action="store_true", help="count into RequestStats, not a counting sink")
    parser.add_argument("--many", type=int, default=25, help="iterations of the second run (the first has 5)")
    args = parser.parse_args()

    from runner.compile.compiler import CompileOptions, compile_scenario
    from runner.engine.runner import LocalRunner
    from runner.scenario import load_scenario

    counts: collections.Counter[str] = collections.Counter()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            counts[f"{Path(code.co_filename).name}:{code.co_name}"] += 1
        return tracer

    children = Children()
    try:
        with tempfile.TemporaryDirectory(prefix="lrun-bytecodes-") as tmp:
            nginx = Nginx(children, Path(tmp), 0)
            loaded = load_scenario(str(BENCH / f"{'plain' if args.scenario == 'https' else args.scenario}.yaml"))
            host = nginx.tls_url if args.scenario == "https" else nginx.url
            compiled = compile_scenario(loaded, CompileOptions(host=host))

            def run(iterations: int, traced: bool) -> tuple[int, collections.Counter[str]]:
                stats: Any = CountingStats()
                if args.real_stats:
                    from runner.stats import RequestStats

                    stats = RequestStats()
                if hasattr(compiled, "fresh_state"):
                    state = compiled.fresh_state()
                else:  # an older tree (PYTHONPATH=…): RunState made its own
                    from runner.engine.state import RunState

                    state = RunState.fresh(compiled)  # type: ignore[attr-defined]
                runner = LocalRunner(compiled.user_classes, stats, iterations=iterations, run_state=state)
                counts.clear()
                if traced:
                    sys.settrace(tracer)
                try:
                    runner.start(1, 1, 60)
                    runner.wait(60)
                finally:
                    sys.settrace(None)
                requests = stats.total.num_requests if args.real_stats else stats.requests
                return requests, counts.copy()

            run(3, traced=False)  # warm: connections, caches
            few, before = run(5, traced=True)
            many, after = run(args.many, traced=True)
    finally:
        children.stop_all()
    requests = many - few
    per = {name: (after[name] - before.get(name, 0)) / requests for name in after if "bytecodes.py" not in name}
    print(f"{args.scenario}: {sum(per.values()):.0f} bytecodes per request ({requests} requests apart)")
    for name, value in sorted(per.items(), key=lambda item: -item[1])[: args.top]:
        if value >= 0.5:
            print(f"{value:8.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
