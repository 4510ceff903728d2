#!/usr/bin/env python3
"""What the request timings cost, in machine instructions per request: a count the machine's load does not change.

One user of ``plain.yaml`` (``GET /`` in a loop, keep-alive) against bench nginx, through the engine, the HTTP
session and the real statistics (``RequestStats``), as ``lrun run`` does it, under ``valgrind --tool=callgrind``.
Each tree runs twice, ``--few`` and ``--many`` iterations; the difference of the two runs' instruction totals
divided by the difference of their requests leaves out start-up (imports, the scenario, the first connection).
The trees (``--trees``, default ``-,.``): ``.`` this working tree; ``-`` this tree with the phases neither
computed nor counted (``_NO_PHASES``: the timings' cost, all else equal); a commit, exported with ``git archive``
(``67b25a0^`` is the commit before the timings); or a folder holding a ``runner``. Each is run by this Python
with ``PYTHONPATH`` pointing at it. Only lrun's process is counted (valgrind does not follow nginx). About two
minutes a run on a 2-core VM (start-up under valgrind is most of it).

    python bench/timings_instructions.py [--trees -,.] [--few 100] [--many 1100]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from callgrind import count

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def child(url: str, iterations: int) -> None:
    """Run in the measured process: one user, ``iterations`` iterations; print the requests counted."""
    from gevent import monkey

    monkey.patch_all()
    from runner.compile.compiler import CompileOptions, compile_scenario
    from runner.engine.runner import LocalRunner
    from runner.scenario import load_scenario
    from runner.stats import RequestStats

    compiled = compile_scenario(load_scenario(str(HERE / "plain.yaml")), CompileOptions(host=url))
    if hasattr(compiled, "fresh_state"):
        state = compiled.fresh_state()
    else:  # the trees before RunState moved onto the compiled scenario
        from runner.engine.state import RunState

        state = RunState.fresh(compiled)  # type: ignore[attr-defined]
    stats = RequestStats()
    runner = LocalRunner(compiled.user_classes, stats, iterations=iterations, run_state=state)
    runner.start(1, 1, 60)
    runner.wait(600)
    print(f"requests {stats.total.num_requests} failures {stats.total.num_failures}")


# what --trees' "-" is: this tree with the phases neither computed nor counted (the session leaves the response's
# timings None, so statistics record none); the marks themselves (one perf_counter more) stay
_NO_PHASES = (
    "            sent = marks[3]\n            if reused:",
    "            sent = marks[3]\n            if True:\n                self._phases = None  # type: ignore\n"
    "            elif reused:",
)


def without_timings(target: Path) -> Path:
    """A copy of this tree's ``runner`` with ``_NO_PHASES`` applied."""
    shutil.copytree(ROOT / "runner", target / "runner")
    session = target / "runner" / "http" / "session.py"
    text = session.read_text()
    if _NO_PHASES[0] not in text:
        raise SystemExit("runner/http/session.py changed: update _NO_PHASES in bench/timings_instructions.py")
    session.write_text(text.replace(*_NO_PHASES))
    return target


def measure(tree: Path, url: str, iterations: int, out: Path) -> tuple[int, int]:
    """(instructions, requests) of one run under callgrind."""
    return count(tree, out, [__file__, "--child", url, str(iterations)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", default="-,.", help="commits, folders holding runner/, . or -")
    parser.add_argument("--few", type=int, default=100)
    parser.add_argument("--many", type=int, default=1100)
    parser.add_argument("--child", nargs=2, metavar=("URL", "ITERATIONS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    sys.path.insert(0, str(HERE))
    from run import Children, Nginx

    children = Children()
    try:
        with tempfile.TemporaryDirectory(prefix="lrun-instructions-") as name:
            tmp = Path(name)
            nginx = Nginx(children, tmp, 1)
            first = None
            for index, commit in enumerate(args.trees.split(",")):
                tree = ROOT if commit == "." else Path(commit)
                if commit == "-":
                    tree = without_timings(tmp / f"tree{index}")
                elif commit != "." and not tree.is_dir():
                    tree = tmp / f"tree{index}"
                    tree.mkdir()
                    archive = subprocess.run(
                        ["git", "archive", commit, "runner"], cwd=ROOT, check=True, capture_output=True
                    )
                    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
                few = measure(tree, nginx.url, args.few, tmp / f"few{index}.out")
                many = measure(tree, nginx.url, args.many, tmp / f"many{index}.out")
                per = (many[0] - few[0]) / (many[1] - few[1])
                first = first or per
                print(
                    f"{commit:10} {per:12,.0f} instructions/request x{per / first:.3f}  "
                    f"({many[1] - few[1]} requests apart; totals {few[0]:,} and {many[0]:,})",
                    flush=True,
                )
    finally:
        children.stop_all()


if __name__ == "__main__":
    main()
