"""A second real third-party application: Trac, from PyPI, recorded in Chromium (create a ticket: a form token
in a hidden input and a cookie, a 303 to the new ticket; the active tickets report; the ticket again by its link
there). The imported scenario replays with several data rows over ``--processes 2``; Trac's own database and
access log must show exactly the tickets lrun counted, each opened twice by its own id."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from trac_tickets import serve

from conftest import ROOT, run_lrun

pytest.importorskip("playwright", reason="playwright (the test extra) drives Chromium")
pytest.importorskip("trac", reason="trac (the test extra) is the application under test")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("chromium") is None or not Path("/usr/bin/chromium").exists(),
        reason="no /usr/bin/chromium: apt-get install chromium (.ci/run does)",
    ),
]
SUMMARIES = ["Printer jams", "Coffee machine empty", "Wifi drops at noon"]


def test_trac_recording_replays_over_two_processes_each_ticket_opened_by_its_own_id(tmp_path: Path) -> None:
    folder, har, scenario = tmp_path / "trac", tmp_path / "trac.har", tmp_path / "tickets.yaml"
    with serve(folder) as trac:
        walk = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "record_trac.py"), trac.url, str(har)],
            capture_output=True,
            text=True,
            timeout=150,
        )
        assert walk.returncode == 0, walk.stderr
        assert walk.stdout.strip().endswith("/ticket/1")
    result = run_lrun("import", str(har), "-o", str(scenario), "--pool", "--think", "none")
    assert result.returncode == 0, result.stderr
    assert "correlated form_token = " in result.stderr and "ticket_url" not in result.stderr
    # the new ticket's id out of the 303's Location (this user's own ticket), every later /ticket/N by it
    own = "correlated ticket_id = '1': from #2 POST /newticket (header: Location, regex: ^(?:https?://[^/]+)?/ticket/"
    assert own in result.stderr, result.stderr
    assert "warning: '1'" not in result.stderr  # /report/1 is a report, known before the ticket was made
    text = scenario.read_text()
    assert "get: /ticket/{{ ticket_id }}" in text and "get: /report/1" in text
    assert "matches: '^(?:https?://[^/]+)?/ticket/[^/?&#]+$'" in text  # the 303 goes to a ticket
    rows = "".join(f"{s},anonymous,seen on floor {n}\n" for n, s in enumerate(SUMMARIES, start=1))
    scenario.with_suffix(".csv").write_text("field_summary,field_reporter,field_description\n" + rows)
    results = tmp_path / "results.json"
    with serve(folder) as trac:
        trac.clear_log()
        run = run_lrun(
            str(scenario), "-H", trac.url, "-u", "2", "-r", "10", "-i", "2", "--processes", "2",
            "--json", str(results), "--only-summary", timeout=240,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        made = [t for t in trac.tickets() if t[0] != 1]
        log = trac.log()
    counted = {(r["method"], r["name"]): r for r in json.loads(results.read_text())["requests"]}
    assert len(made) == counted["POST", "/newticket"]["requests"] == 4  # 2 users x 2 iterations
    assert {summary for _, summary in made} <= set(SUMMARIES)
    opened = Counter(path for method, path, status in log if method == "GET" and path.startswith("/ticket/"))
    assert opened == Counter({f"/ticket/{id_}": 2 for id_, _ in made})  # after the 303, then by its link
    assert counted["GET", "/ticket/[id]"]["requests"] == 8 and counted["GET", "/ticket/[id]"]["failures"] == 0
