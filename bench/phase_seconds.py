#!/usr/bin/env python3
"""What the phases over time cost, in machine instructions per request: ``RequestStats.log`` with phases under
``valgrind --tool=callgrind``, simulated seconds (a fake clock), no network and no load sensitivity.

The per-second phase figures (``series[].timings``) are made once a second per request name (``PhaseTimes.close``
when the name's second is folded), never per request: their cost per request is that of a name's second divided
by the name's requests in it. So the worst case is many names at 1 request/s each (every request alone in its
name's second); a busy name pays almost nothing. Each tree runs ``--few`` and ``--many`` simulated seconds; the
difference of the instruction totals over the difference of requests leaves out start-up. The phase values come
from a pool seen once before the count (the steady state: no first-seen buckets). Trees as in
``timings_instructions.py``: ``.`` this tree, a commit (``git archive``) or a folder holding ``runner``.

    python bench/phase_seconds.py [--trees ef7b960,.] [--shapes 500x1,1x2000]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POOL = 499


def child(names: int, rate: int, seconds: int) -> None:
    """In the measured process: ``names`` names at ``rate`` requests/s each for ``seconds`` simulated seconds."""
    from runner.stats import RequestStats

    now = [1000.0]
    stats = RequestStats(clock=lambda: now[0])
    rng = random.Random(1)
    pool = [(0.0, 0.0, 0.0, rng.uniform(0.01, 0.05), rng.uniform(5, 50), rng.uniform(0.01, 0.1)) for _ in range(POOL)]
    for phases in pool:  # every bucket seen once: the steady state
        stats.log("GET", "/warm", 1.0, 1, None, timings=phases)
    per_second = names * rate
    k = 0
    for second in range(seconds):
        for i in range(per_second):
            now[0] = 1000 + second + i / per_second
            phases = pool[k % POOL]
            k += 1
            stats.log("GET", f"/n{i % names}", sum(phases), 100, None, timings=phases)
    stats.snapshot(duration=seconds)


def measure(tree: Path, names: int, rate: int, seconds: int) -> int:
    with tempfile.NamedTemporaryFile(suffix=".out") as out:
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}", sys.executable, __file__]
        argv += ["--child", str(names), str(rate), str(seconds)]
        env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3600, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{tree}: the run failed:\n{done.stderr[-2000:]}")
        totals = re.search(r"^(?:summary|totals): (\d+)", Path(out.name).read_text(), re.MULTILINE)
        assert totals is not None
        return int(totals[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", default=".", help="commits, folders holding runner/, or .")
    parser.add_argument("--shapes", default="500x1,1x2000", help="NAMESxRATE, comma-separated")
    parser.add_argument("--few", type=int, default=1)
    parser.add_argument("--many", type=int, default=6)
    parser.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="lrun-phase-seconds-") as name:
        for shape in args.shapes.split(","):
            names, rate = map(int, shape.split("x"))
            for index, commit in enumerate(args.trees.split(",")):
                tree = ROOT if commit == "." else Path(commit)
                if commit != "." and not tree.is_dir():
                    tree = Path(name) / f"tree{index}"
                    if not tree.exists():
                        tree.mkdir()
                        archive = subprocess.run(
                            ["git", "archive", commit, "runner"], cwd=ROOT, check=True, capture_output=True
                        )
                        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
                few, many = measure(tree, names, rate, args.few), measure(tree, names, rate, args.many)
                per = (many - few) / ((args.many - args.few) * names * rate)
                print(f"{names} names x {rate}/s  {commit:10} {per:10,.0f} instructions/request", flush=True)


if __name__ == "__main__":
    main()
