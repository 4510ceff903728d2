#!/usr/bin/env python3
"""Machine instructions per WebSocket round trip: a count the machine's load does not change.

``websocket.yaml`` (50 users, a 64-byte message and its echo awaited) against an echo server already running
(``bench/ws_echo.js``, bench/README.md "WebSocket echo"), through the engine, the WebSocket connection and the real
statistics (``RequestStats``), as ``lrun run`` does it, under ``valgrind --tool=callgrind``. Each tree runs twice,
``--few`` and ``--many`` round trips per user; the difference of the two runs' instruction totals over the
difference of their round trips leaves out start-up (imports, the scenario, the connections). User space only:
the kernel's side of the system calls is not counted. The trees (``--trees``, default ``.``): ``.`` this working
tree, a commit (exported with ``git archive``) or a folder holding a ``runner``, each run by this Python with
``PYTHONPATH`` pointing at it, pinned to core 0 (``taskset``).

    taskset -c 1 node ws_echo.js 8765 &
    python bench/ws_instructions.py [--url http://127.0.0.1:8765] [--trees main,.] [--few 20] [--many 120]

``--bytecodes`` counts Python bytecodes per round trip by function instead (a ``sys.settrace`` tracer, no
valgrind): where the interpreter's share goes.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from callgrind import count

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def child(url: str, users: int, iterations: int) -> None:
    """Run in the measured process: ``users`` users, ``iterations`` round trips each; print the count."""
    from gevent import monkey

    monkey.patch_all()
    from runner.compile.compiler import CompileOptions, compile_scenario
    from runner.engine.runner import LocalRunner
    from runner.scenario import load_scenario
    from runner.stats import RequestStats

    compiled = compile_scenario(load_scenario(str(HERE / "websocket.yaml")), CompileOptions(host=url))
    stats = RequestStats()
    runner = LocalRunner(compiled.user_classes, stats, iterations=iterations, run_state=compiled.fresh_state())
    runner.start(users, 1000, 600)
    runner.wait(3600)
    print(f"requests {stats.total.num_requests} failures {stats.total.num_failures}")


def bytecodes(url: str, users: int, few: int, many: int, top: int) -> None:
    """Python bytecodes per round trip, by function (two traced runs subtracted)."""
    from gevent import monkey

    monkey.patch_all()
    from runner.compile.compiler import CompileOptions, compile_scenario
    from runner.engine.runner import LocalRunner
    from runner.scenario import load_scenario
    from runner.stats import RequestStats

    counts: collections.Counter[str] = collections.Counter()

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            counts[f"{Path(code.co_filename).name}:{code.co_name}"] += 1
        return tracer

    compiled = compile_scenario(load_scenario(str(HERE / "websocket.yaml")), CompileOptions(host=url))

    def run(iterations: int, traced: bool) -> tuple[int, collections.Counter[str]]:
        stats = RequestStats()
        runner = LocalRunner(compiled.user_classes, stats, iterations=iterations, run_state=compiled.fresh_state())
        counts.clear()
        if traced:
            sys.settrace(tracer)
        try:
            runner.start(users, 1000, 600)
            runner.wait(600)
        finally:
            sys.settrace(None)
        if stats.total.num_failures:
            raise SystemExit(f"{stats.total.num_failures} round trips failed")
        return stats.total.num_requests, counts.copy()

    run(3, traced=False)  # warm
    n1, before = run(few, traced=True)
    n2, after = run(many, traced=True)
    per = {name: (after[name] - before.get(name, 0)) / (n2 - n1) for name in after}
    print(f"{sum(per.values()):.0f} bytecodes per round trip ({n2 - n1} round trips apart)")
    for name, value in sorted(per.items(), key=lambda item: -item[1])[:top]:
        if value >= 0.5:
            print(f"{value:8.1f}  {name}")


def measure(tree: Path, url: str, users: int, iterations: int, out: Path) -> tuple[int, int]:
    """(instructions, round trips) of one run under callgrind."""
    return count(tree, out, [__file__, "--child", url, str(users), str(iterations)], "round trips", pin=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8765", help="the echo server")
    parser.add_argument("--trees", default=".", help="commits, folders holding runner/, or .")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--few", type=int, default=20, help="round trips per user of the first run")
    parser.add_argument("--many", type=int, default=120, help="round trips per user of the second run")
    parser.add_argument("--bytecodes", action="store_true", help="Python bytecodes by function, no valgrind")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--child", nargs=3, metavar=("URL", "USERS", "ITERATIONS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    if args.bytecodes:
        bytecodes(args.url, args.users, args.few, args.many, args.top)
        return
    with tempfile.TemporaryDirectory(prefix="lrun-ws-instructions-") as name:
        tmp = Path(name)
        first = None
        for index, commit in enumerate(args.trees.split(",")):
            tree = ROOT if commit == "." else Path(commit)
            if commit != "." and not tree.is_dir():
                tree = tmp / f"tree{index}"
                tree.mkdir()
                argv = ["git", "archive", commit, "runner"]
                archive = subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
                subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
            few = measure(tree, args.url, args.users, args.few, tmp / f"few{index}.out")
            many = measure(tree, args.url, args.users, args.many, tmp / f"many{index}.out")
            per = (many[0] - few[0]) / (many[1] - few[1])
            first = first or per
            print(
                f"{commit:10} {per:12,.0f} instructions/round trip x{per / first:.3f}  "
                f"({many[1] - few[1]} round trips apart; totals {few[0]:,} and {many[0]:,})",
                flush=True,
            )


if __name__ == "__main__":
    main()
