"""HTTP/2 beside HTTP/1.1 over TLS, and lrun against a base commit on the HTTP/1.1 flows, in one run.

    python bench/http2.py [--base cc9308c] [--duration 10] [--rounds 3]

The harness of ``bench/run.py`` (nginx pinned to core 1, the generator alone on core 0, nginx's own request
counter, CPU from the kernel, noise flagged), with two generators: this checkout's lrun, and the ``--base``
commit's (``git archive`` into a temp dir, run with the same Python and PYTHONPATH pointing at it). Scenarios:

* plain, correlated: HTTP/1.1 in the clear (bench/plain.yaml, bench/correlated.yaml), both builds;
* https: the plain loop over TLS 1.3 on nginx's HTTP/1.1-only TLS port, both builds;
* h2: the plain loop over TLS 1.3 on nginx's ``http2`` port: 50 users, each its own HTTP/2 connection; this
  build only (the base speaks HTTP/1.1 only).

Rounds are interleaved (base, this, base, this …) and the median round is shown, with the ratio this / base.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import (
    BenchError,
    Children,
    Nginx,
    Tool,
    ensure_nginx,
    fmt,
    load_run,
    log,
    lrun_tool,
    median_run,
    ratio,
    table,
)

ROOT = Path(__file__).resolve().parent.parent
BOTH = ("plain", "correlated", "https")


def base_tool(tool: Tool, commit: str, tmp: Path) -> Tool:
    """lrun as of ``commit``: its runner/ package from git, run by this Python."""
    folder = tmp / "base"
    folder.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "runner"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    argv0 = ["env", f"PYTHONPATH={folder}", sys.executable, "-m", "runner.cli"]
    return replace(tool, argv0=argv0, version=f"{tool.version} @ {commit}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="cc9308c", help="the commit to compare with (default cc9308c)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per build and scenario, interleaved")
    parser.add_argument("--only", default="plain,correlated,https,h2", help="scenarios, comma-separated")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results-http2.json"))
    args = parser.parse_args()
    only = [s for s in args.only.split(",") if s]
    ensure_nginx(False)
    cpus = sorted(os.sched_getaffinity(0))
    gen_cpu, nginx_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (cpus[0], cpus[0])
    os.sched_setaffinity(0, {nginx_cpu})
    this = lrun_tool()
    if not this.available:
        log(f"lrun: {this.why_not}")
        return 2
    children = Children()
    results: dict[str, Any] = {"base": args.base, "duration_s": args.duration, "rounds": args.rounds, "scenarios": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="lrun-h2-bench-") as name:
            tmp = Path(name)
            base = base_tool(this, args.base, tmp)
            nginx = Nginx(children, tmp, nginx_cpu)
            for scenario in only:
                runs: dict[str, list[dict[str, Any]]] = {}
                for _ in range(args.rounds):
                    for label, tool in (("base", base), ("this", this)):
                        if label == "base" and scenario not in BOTH:
                            continue
                        where = tmp / f"{label}-{scenario}-{len(runs.get(label, []))}"
                        where.mkdir()
                        time.sleep(1)
                        runs.setdefault(label, []).append(
                            load_run(children, nginx, tool, scenario, args.duration, where, gen_cpu)
                        )
                results["scenarios"][scenario] = {label: median_run(r) for label, r in runs.items()}
    except BenchError as exc:
        log(str(exc))
        return 2
    finally:
        children.stop_all()
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    rows = [["scenario", "build", "req/s (lrun)", "req/s (nginx)", "CPU µs/req", "failures", "every round's req/s"]]
    for scenario, entry in results["scenarios"].items():
        for label, run in entry.items():
            rounds = ", ".join(fmt(r.get("rps")) for r in run.get("rounds", [run]))
            rows.append(
                [
                    scenario,
                    label,
                    fmt(run.get("rps")),
                    fmt(run.get("nginx_rps")),
                    fmt(run.get("cpu_us_per_request"), ".1f"),
                    fmt(run.get("failures")),
                    rounds,
                ]
            )
        if "base" in entry:
            rows.append(
                [
                    scenario,
                    "this/base",
                    fmt(ratio(entry["this"].get("rps"), entry["base"].get("rps")), ".3f"),
                    "",
                    fmt(ratio(entry["this"].get("cpu_us_per_request"), entry["base"].get("cpu_us_per_request")), ".3f"),
                    "",
                    "",
                ]
            )
    print(table(rows))
    noisy = [f"{s} {label}" for s, e in results["scenarios"].items() for label, r in e.items() if r.get("noise")]
    if noisy:
        print(f"NOISY (other processes took CPU on the cores): {', '.join(noisy)}")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
