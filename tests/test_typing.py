"""The middle of lrun (the run, its results, its outputs, the engine) passes mypy's strict checks: pyproject's
per-module override turns them on there, and this runs mypy as the project configures it."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

STRICT = ("runner.drive", "runner.api", "runner.events", "runner.engine.*", "runner.outputs.*", "runner.report.*",
          "runner.live.*")  # fmt: skip


def test_the_middle_is_strictly_typed() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert all(f'"{module}"' in text for module in STRICT) and "disallow_any_generics = true" in text
    done = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
