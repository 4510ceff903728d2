"""A Locust user's command lines work: -f, --headless, -l, --show-task-ratio(-json)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import write

from conftest import run_lrun

SCENARIO = """host: demo
users:
  shopper:
    weight: 3
    tags: [shop]
    tasks:
      - {weight: 2, get: /items}
      - {weight: 1, get: "/items/{{ random_int(1, 9) }}", name: "/items/[id]"}
      - {weight: 1, sequence: [{get: /}, {get: /about}], name: browse}
  admin:
    count: 1
    sequence: [{get: /}, {get: /about}]
  reader:
    weight: 1
    tasks: [{get: /about}]
"""


def test_list_shows_user_types_tasks_and_weights(tmp_path: Path) -> None:
    result = run_lrun("-l", str(write(tmp_path, SCENARIO)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "shopper (weight 3, tags: shop)",
        "    GET /items  (weight 2)",
        "    /items/[id]  (weight 1)",
        "    browse  (weight 1)",
        "admin (count 1)",
        "    sequence of 2 steps",
        "reader (weight 1)",
        "    GET /about  (weight 1)",
    ]


def test_task_ratio_json_follows_locusts_layout(tmp_path: Path) -> None:
    result = run_lrun("-f", str(write(tmp_path, SCENARIO)), "--show-task-ratio-json")
    assert result.returncode == 0, result.stderr
    ratio = json.loads(result.stdout)
    assert ratio["per_class"]["shopper"]["ratio"] == 0.75
    assert ratio["per_class"]["shopper"]["tasks"]["GET /items"]["ratio"] == 0.5
    assert ratio["total"]["shopper"]["tasks"]["GET /items"]["ratio"] == 0.375
    assert ratio["total"]["reader"]["tasks"]["GET /about"]["ratio"] == 0.25
    assert ratio["per_class"]["admin"] == {"ratio": 0.0, "count": 1, "tasks": {"sequence of 2 steps": {"ratio": 1.0}}}


def test_task_ratio_text(tmp_path: Path) -> None:
    result = run_lrun(str(write(tmp_path, SCENARIO)), "--show-task-ratio")
    assert result.returncode == 0, result.stderr
    assert "   75.0%  shopper\n       50.0%  GET /items\n" in result.stdout
    assert "Total task ratio" in result.stdout and "       37.5%  GET /items" in result.stdout
    assert " 1 users  admin" in result.stdout


def test_f_and_headless_run_as_locust_users_type_them(tmp_path: Path, demo_url: str) -> None:
    path = write(tmp_path, SCENARIO)
    result = run_lrun("-f", str(path), "--headless", "-H", demo_url, "-u", "2", "-t", "2s", "--only-summary")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Aggregated" in result.stdout
    result = run_lrun("run", str(path), "-f", str(tmp_path / "other.yaml"))
    assert result.returncode == 2 and "two scenarios" in result.stderr


def test_the_demo_target_leaves_8089_to_the_web_ui() -> None:
    from runner.demo.server import DEMO_PORT

    assert DEMO_PORT != 8089
    assert f"[default: {DEMO_PORT}]" in run_lrun("demo", "--help").stdout


def test_the_readmes_first_scenario_validates_and_runs(tmp_path: Path, demo_url: str) -> None:
    import re

    from conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Your first scenario") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    path = write(tmp_path, block.group(1), "first.yaml")
    assert run_lrun("validate", str(path)).returncode == 0
    debug = run_lrun("debug", str(path), "-H", demo_url)
    assert debug.returncode == 0 and "3 requests, 0 failed, 0 errors" in debug.stdout, debug.stdout
