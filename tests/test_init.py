"""``lrun init``: the starter a new user types first runs as it is, validates, and never overwrites their files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import demo_reset, demo_stats, run_json

from conftest import run_lrun


def test_init_writes_a_starter_that_validates(tmp_path: Path) -> None:
    done = run_lrun("init", str(tmp_path / "load"))
    assert done.returncode == 0, done.stderr
    for name in ("scenario.yaml", "data/users.csv", "lrun.schema.json", "ci/github-actions.yml"):
        assert (tmp_path / "load" / name).is_file(), name
    scenario = (tmp_path / "load" / "scenario.yaml").read_text()
    assert scenario.startswith("# yaml-language-server: $schema=lrun.schema.json")
    assert "load-test" in yaml.safe_load((tmp_path / "load" / "ci/github-actions.yml").read_text())["jobs"]
    checked = run_lrun("validate", "--strict", str(tmp_path / "load" / "scenario.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.e2e
def test_the_starter_runs_against_the_demo(tmp_path: Path, demo_url: str) -> None:
    """Each of the 10 users logs in once with its own account (the demo's own count), and the run passes."""
    assert run_lrun("init", str(tmp_path)).returncode == 0
    demo_reset(demo_url)
    done, results = run_json(tmp_path, str(tmp_path / "scenario.yaml"), "-H", demo_url, "-r", "10", "-t", "5s")
    assert done.returncode == 0, done.stdout + done.stderr
    assert results["passed"] is True and not results.get("load_warnings")
    assert results["user_counts"]["started"] == 10
    logins = next(e for e in results["requests"] if e["method"] == "POST" and e["name"] == "/login")
    cut = sum(r["count"] for r in results["interrupted"]["requests"] if r["name"] == "/login")
    assert logins["failures"] == 0 and logins["requests"] + cut == 10
    assert demo_stats(demo_url)["logins"] == logins["requests"]


def test_init_never_overwrites(tmp_path: Path) -> None:
    mine = tmp_path / "scenario.yaml"
    mine.write_text("my work\n")
    done = run_lrun("init", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--force" in done.stderr
    assert mine.read_text() == "my work\n"
    assert not (tmp_path / "data").exists()
    assert run_lrun("init", "--force", str(tmp_path)).returncode == 0
    assert mine.read_text().startswith("# yaml-language-server")
