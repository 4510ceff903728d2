"""A real third-party application recorded in a real browser: Chromium (Playwright) logs in to a Django admin,
adds a note, opens it by its link in the list and logs out. The imported scenario (``--pool``) then replays with
several data rows over ``--processes 2``, and Django's own database and access log must show exactly the notes
lrun counted, each opened by its own id and by the user who made it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from django_notes import USERS, serve

from conftest import ROOT, run_lrun

pytest.importorskip("playwright", reason="playwright (the test extra) drives Chromium")
pytest.importorskip("django", reason="django (the test extra) is the application under test")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("chromium") is None or not Path("/usr/bin/chromium").exists(),
        reason="no /usr/bin/chromium: apt-get install chromium (.ci/run does)",
    ),
]

TITLES = {"ada": "Shopping list", "bob": "Garden plan", "cy": "Reading notes"}
CHANGE = "/admin/notes/note/"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Django project, with one note made before the recording (so the recorded id is 2, not 1)."""
    folder = tmp_path_factory.mktemp("django") / "site"
    subprocess.run([sys.executable, str(ROOT / "tests" / "django_notes.py"), str(folder)], check=True, timeout=120)
    import sqlite3

    with sqlite3.connect(folder / "db.sqlite3") as db:
        db.execute("INSERT INTO notes_note (title, body, owner_id) VALUES ('Older note', 'x', 1)")
    return folder


@pytest.fixture(scope="module")
def scenario(app: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recording, imported with a data pool of the three users (their own titles)."""
    out = tmp_path_factory.mktemp("recording")
    har = out / "admin.har"
    with serve(app) as django:
        walk = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "record_django.py"), django.url, str(har)],
            capture_output=True,
            text=True,
            timeout=150,
        )
        assert walk.returncode == 0, walk.stderr
        assert walk.stdout.strip().endswith(f"{CHANGE}2/change/")
    path = out / "admin.yaml"
    result = run_lrun("import", str(har), "-o", str(path), "--pool", "--think", "none")
    assert result.returncode == 0, result.stderr
    assert (
        "correlated note_id = '2': from #7 GET /admin/notes/note/ (regex: href=\"/admin/notes/note/(\\d+)/change/\")"
        in (result.stderr)
    ), result.stderr
    # the list links the older note too, and the new one's link text is what the user typed: the tester is told
    assert "2 different ids in links of this pattern on #7; took the first, as recorded (its link text is typed" in (
        result.stderr
    )
    text = path.read_text()
    assert f"get: {CHANGE}{{{{ note_id }}}}/change/" in text
    assert "contains: '{{ inputs.title }} | Change note | Django site admin'" in text  # typed data: templated
    assert "{header: Location, matches: ^/admin/notes/note/$}" in text  # the add's redirect, not only its 302
    assert "{status: 302, on_fail: stop_iteration}" in text  # the login
    rows = "".join(f"{u},{USERS[u]},{TITLES[u]},body of {u}\n" for u in ("ada", "bob", "cy"))
    path.with_suffix(".csv").write_text("username,password,title,body\n" + rows)
    assert run_lrun("validate", str(path)).returncode == 0
    return path


def test_replay_over_two_processes_makes_and_opens_each_users_own_note(app: Path, scenario: Path) -> None:
    results = scenario.parent / "results.json"
    with serve(app) as django:
        before = {n[0] for n in django.notes()}
        django.clear_log()
        run = run_lrun(
            str(scenario), "-H", django.url, "-u", "3", "-r", "10", "-i", "2", "--processes", "2",
            "--json", str(results), "--only-summary", timeout=240,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        made = [n for n in django.notes() if n[0] not in before]
        log = django.log()
    counted = {(r["method"], r["name"]): r for r in json.loads(results.read_text())["requests"]}
    adds, opens = counted["POST", f"{CHANGE}add/"], counted["GET", f"{CHANGE}[id]/change/"]
    assert adds["failures"] == opens["failures"] == 0
    assert len(made) == adds["requests"] == opens["requests"] == 6  # 3 users x 2 iterations
    assert all(title == TITLES[owner] for _, title, owner in made)  # each row logged in and typed its own
    opened = Counter((user, path) for user, method, path, _ in log if method == "GET" and path.endswith("/change/"))
    assert opened == Counter({(owner, f"{CHANGE}{id_}/change/"): 1 for id_, _, owner in made})


def test_a_failed_login_stops_the_iteration_and_a_run_time_replaces_the_replay(
    app: Path, scenario: Path, tmp_path: Path
) -> None:
    copy = tmp_path / scenario.name
    copy.write_text(scenario.read_text())
    copy.with_suffix(".csv").write_text("username,password,title,body\nbob,wrong-password,Never made,x\n")
    with serve(app) as django:
        before = len(django.notes())
        django.clear_log()
        results = tmp_path / "failed.json"
        run = run_lrun(
            str(copy), "-H", django.url, "-u", "1", "-t", "3s", "--stop-timeout", "10s",  # the last one finishes
            "--json", str(results), "--only-summary", timeout=120,
        )  # fmt: skip
        assert run.returncode == 1, run.stdout + run.stderr
        log = django.log()
        assert len(django.notes()) == before
    logins = [entry for entry in log if entry[1] == "POST" and entry[2].startswith("/admin/login/")]
    assert len(logins) >= 2, log  # -t 3s: the user iterated again (the imported iterations: 1 did not cap it)
    assert all(status == 200 for *_, status in logins)  # the login form again: a soft failure
    assert not [entry for entry in log if entry[2].startswith(CHANGE)]  # nothing ran logged out
    counted = {(r["method"], r["name"]): r for r in json.loads(results.read_text())["requests"]}
    login = counted["POST", "/admin/login/"]
    assert login["failures"] == login["requests"] == len(logins)  # lrun saw each one fail, as the server did
    assert ("POST", f"{CHANGE}add/") not in counted


def test_verify_replays_with_another_data_row(app: Path, scenario: Path, tmp_path: Path) -> None:
    """--verify changes what the user typed (not the credentials): a check still holding the recorded title would
    fail; the new note's title and its own id show the replay used the other row and this replay's id."""
    har = scenario.parent / "admin.har"
    with serve(app) as django:
        before = {n[0] for n in django.notes()}
        django.clear_log()
        result = run_lrun(
            "import", str(har), "-o", str(tmp_path / "v.yaml"), "--pool", "--think", "none", "--verify", "-H",
            django.url, timeout=180,
        )  # fmt: skip
        made = [n for n in django.notes() if n[0] not in before]
        log = django.log()
    assert result.returncode == 0, result.stderr
    assert (
        "verify: replaying with another data row (title='Shopping list (verify)', body='body (verify)')"
        in (result.stderr)
        or "verify: replaying with another data row (title='Shopping list (verify)'" in result.stderr
    )
    assert "verify: every status as recorded (9 requests)" in result.stderr
    [(id_, title, owner)] = made
    assert (title, owner) == ("Shopping list (verify)", "ada")
    assert ("ada", "GET", f"{CHANGE}{id_}/change/", 200) in log
    assert (tmp_path / "v.csv").read_text().splitlines()[1].startswith("ada,lovelace-1815,Shopping list,")
