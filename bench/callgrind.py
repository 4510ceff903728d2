"""One measured run under ``valgrind --tool=callgrind`` for the instruction benches (``timings_instructions.py``,
``ws_instructions.py``): the child prints ``requests N failures M``; the run's instruction total and N come back."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def count(tree: Path, out: Path, child: list[str], unit: str = "requests", pin: bool = False) -> tuple[int, int]:
    """(instructions, requests) of ``python child...`` with ``tree`` first on the path; a failed run, or a failed
    request (``unit`` names them in the message), ends the bench."""
    argv = ["taskset", "-c", "0"] if pin else []
    argv += ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, *child]
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3600, check=False)
    found = re.search(r"requests (\d+) failures (\d+)", done.stdout)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{tree}: the run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    if int(found[2]):
        raise SystemExit(f"{tree}: {found[2]} {unit} failed")
    totals = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    assert totals is not None, out
    return int(totals[1]), int(found[1])
