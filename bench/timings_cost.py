#!/usr/bin/env python3
"""What the request timings (dns, connect, tls, send, ttfb, receive per request name) cost: CPU per request of
``lrun run bench/plain.yaml`` against bench nginx, this tree side by side with a base commit's tree.

The base commit (default cc9308c, main before the timings) is exported with ``git archive`` to a temporary
directory and run by the same Python with ``PYTHONPATH`` pointing at it (an editable install's finder comes
after ``PYTHONPATH``). lrun is pinned to core 0, nginx to core 1; the two alternate for ``--rounds`` rounds, so
a busy machine hurts each about the same. CPU is lrun's own (``wait4``'s rusage), requests are the results'
total; ``--https`` runs against nginx's TLS port instead.

    python bench/timings_cost.py [--base cc9308c] [--duration 15] [--users 50] [--rounds 3] [--https]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BENCH, Children, Nginx

ROOT = BENCH.parent


def one(children: Children, tmp: Path, url: str, tree: Path | None, args: argparse.Namespace) -> dict[str, float]:
    variant = "base" if tree else "timings"
    out = tmp / f"{variant}-{time.monotonic_ns()}.json"
    # the venv's lrun script, not ``python -m``: that would put the working directory (this tree) first on the path
    argv = [str(Path(sys.executable).parent / "lrun"), "run", str(BENCH / "plain.yaml"), "-H", url]
    argv += ["-u", str(args.users), "-r", str(args.users), "-t", f"{args.duration}s", "--json", str(out)]
    argv += ["--only-summary"]
    env = {**os.environ, "PYTHONPATH": str(tree)} if tree else None
    child = children.start(f"lrun-{variant}", argv, 0, tmp / f"{variant}.log", env=env)
    child.wait(args.duration + 120)
    usage = child.rusage
    results = json.loads(out.read_text())
    cpu = usage.ru_utime + usage.ru_stime if usage else float("nan")
    return {"requests": results["total"]["requests"], "cpu_s": cpu, "timed": "timings" in results["total"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="cc9308c", help="the commit to compare with (default cc9308c)")
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--https", action="store_true", help="against nginx's TLS port")
    args = parser.parse_args()
    children = Children()
    try:
        with tempfile.TemporaryDirectory() as name:
            tmp = Path(name)
            base = tmp / "base"
            base.mkdir()
            archive = subprocess.run(["git", "archive", args.base, "runner"], cwd=ROOT, check=True, capture_output=True)
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
            nginx = Nginx(children, tmp, 1)
            url = nginx.tls_url if args.https else nginx.url
            rows: dict[str, list[dict[str, float]]] = {"base": [], "timings": []}
            for _ in range(args.rounds):
                rows["base"].append(one(children, tmp, url, base, args))
                rows["timings"].append(one(children, tmp, url, None, args))
            if any(r["timed"] for r in rows["base"]) or not all(r["timed"] for r in rows["timings"]):
                raise SystemExit("the base run has timings, or this tree's has none: not the trees asked for")
            first = None
            for variant, runs in rows.items():
                requests = sum(r["requests"] for r in runs)
                per = sum(r["cpu_s"] for r in runs) / requests * 1e6
                each_us = sorted(r["cpu_s"] / r["requests"] * 1e6 for r in runs)
                best = each_us[0]  # noise only adds CPU: the least is the truest, the median the steadiest
                median = statistics.median(each_us)
                first = first or (per, best, median)
                each = ", ".join(f"{r['requests'] / r['cpu_s']:.0f}" for r in runs)
                print(
                    f"{variant:8} {requests / (args.duration * len(runs)):8.0f} req/s  {per:6.1f} µs CPU/request "
                    f"x{per / first[0]:.3f}, least {best:6.1f} x{best / first[1]:.3f}, "
                    f"median {median:6.1f} x{median / first[2]:.3f}  "
                    f"(requests per CPU second by round: {each})"
                )
    finally:
        children.stop_all()


if __name__ == "__main__":
    main()
