"""The manual's examples are tests: every YAML block of docs/ and README.md validates, the shown commands' output
is what lrun prints, the reference pages are the code's, and the site builds (--strict: a broken link fails) and
opens in a real browser, with a search that works offline.

A YAML block that is not a whole scenario says so in an HTML comment on the line before it:

- ``<!-- fragment: top -->``: top-level keys, merged into a minimal scenario;
- ``<!-- fragment: user -->``, ``<!-- fragment: steps -->``, ``<!-- fragment: tasks -->``: one user type, a list
  of steps, a list of tasks; ``<!-- fragment: request -->``: keys of a request (extract, check …);
- ``<!-- not a scenario -->``: a Kubernetes manifest, a CI file, a sketch with ``[...]``.

A fragment that reads variables its page defined before names them: ``<!-- fragment: steps; given: token -->``.
A shell block marked ``<!-- test: output -->`` starts with ``$ lrun …``; the test runs it and finds each shown line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.errors import LrunError
from runner.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]
BLOCK = re.compile(r"(?:<!-- (?P<mark>[^>]*?) -->\n)?```(?P<lang>yaml|yml)\n(?P<body>.*?)^```", re.S | re.M)
BASE: dict = {"host": "demo", "users": {"visitor": {"sequence": [{"get": "/"}]}}}


def _blocks() -> list[tuple[str, str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            line = text.count("\n", 0, m.start("body")) + 1
            found.append((f"{page.relative_to(ROOT)}:{line}", m.group("mark") or "", m.group("body")))
    return found


def _as_scenario(mark: str, body: str) -> dict | None:
    data = yaml.safe_load(body)
    mark, _, given = mark.partition("; given: ")
    if given:  # variables a fragment reads that its page defined earlier
        variables = {name.strip(): "x" for name in given.split(",")}
        scenario = _as_scenario(mark, body)
        assert scenario is not None
        return {**scenario, "variables": {**variables, **scenario.get("variables", {})}}
    if mark == "not a scenario":
        return None
    if mark == "fragment: top":
        return {**BASE, **data}
    if mark == "fragment: user":
        return {"host": "demo", "users": {"one": data}}
    if mark == "fragment: steps":
        return {"host": "demo", "users": {"one": {"sequence": data}}}
    if mark == "fragment: request":
        return {"host": "demo", "users": {"one": {"sequence": [{"get": "/", **data}]}}}
    if mark == "fragment: tasks":
        return {"host": "demo", "users": {"one": {"tasks": data}}}
    assert not mark.startswith("fragment"), f"unknown mark {mark!r}"
    return data


@pytest.mark.parametrize(("where", "mark", "body"), _blocks(), ids=[b[0] for b in _blocks()])
def test_yaml_example_validates(where: str, mark: str, body: str) -> None:
    scenario = _as_scenario(mark, body)
    if scenario is None:
        yaml.safe_load(body)  # still YAML
        return
    assert isinstance(scenario, dict), f"{where}: not a mapping; mark it as a fragment or 'not a scenario'"
    # Examples name files next to the scenarios (data/*.csv, hooks.py, common.yaml): validate them from there.
    path = ROOT / "scenarios" / f".docs-example-{os.getpid()}.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False), encoding="utf-8")
    try:
        load_scenario(path, data_dir=ROOT / "scenarios")
    except LrunError as error:
        pytest.fail(f"{where}: {error}")
    finally:
        path.unlink()


def test_every_page_has_yaml_marked_right() -> None:
    """Unlabelled fences that hold a scenario would escape the test above."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"^```\n(.*?)^```", text, re.S | re.M):
            body = m.group(1)
            if re.match(r"\s*(host|users|load|pools|thresholds|steps|sequence):", body):
                line = text.count("\n", 0, m.start()) + 1
                pytest.fail(f"{page.relative_to(ROOT)}:{line}: a YAML example without ```yaml")


def test_reference_pages_are_the_codes() -> None:
    done = subprocess.run(
        [sys.executable, str(DOCS / "hooks" / "reference.py"), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr


def _shape(line: str) -> str:
    """A line with what changes from run to run (numbers, ids, ports) made generic."""
    line = re.sub(r"[0-9a-f]{16,}", "H", line)
    return " ".join(re.sub(r"\d+(\.\d+)?", "N", line).split())


OUTPUT = re.compile(r"<!-- test: output -->\n```\n\$ (?P<cmd>[^\n]+)\n(?P<out>.*?)^```", re.S | re.M)


def _outputs() -> list[tuple[str, str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in OUTPUT.finditer(text):
            found.append((f"{page.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 2}", m["cmd"], m["out"]))
    return found


@pytest.mark.e2e
@pytest.mark.parametrize(("where", "command", "shown"), _outputs(), ids=[o[0] for o in _outputs()])
def test_shown_output_is_what_lrun_prints(where: str, command: str, shown: str) -> None:
    """Each line shown (``...`` skips) appears in the command's output, in order, up to numbers and ids."""
    assert command.startswith("lrun "), where
    lrun = str(Path(sys.executable).with_name("lrun"))
    done = subprocess.run([lrun, *command.split()[1:]], capture_output=True, text=True, cwd=ROOT, timeout=120)
    actual = [_shape(line) for line in (done.stdout + done.stderr).splitlines()]
    position = 0
    for line in shown.splitlines():
        if not line.strip() or line.strip() == "...":
            continue
        want = _shape(line)
        while position < len(actual) and actual[position] != want:
            position += 1
        assert position < len(actual), f"{where}: `{command}` did not print {line!r}:\n{done.stdout}{done.stderr}"
        position += 1


def _mkdocs() -> str:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("mkdocs is not installed: pip install '.[docs]'")
        pytest.skip("mkdocs is not installed (pip install '.[docs]')")
    return str(mkdocs)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [_mkdocs(), "build", "--strict", "-d", str(out)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_site_builds_strict(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "reference" / "scenario" / "index.html").is_file()
    assert "rendezvous" in (site / "search" / "search_index.json").read_text(encoding="utf-8")


@pytest.mark.e2e
def test_site_opens_in_a_browser(site: Path) -> None:
    from browser import launch

    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "-d", str(site)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = re.search(r"port (\d+)", server.stdout.readline() if server.stdout else "")
        assert port, "http.server did not say its port"
        base = f"http://127.0.0.1:{port.group(1)}"
        with launch(viewport={"width": 1280, "height": 900}) as context:
            _browse(context.new_page(), base)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _browse(page: Any, base: str) -> None:
    page.goto(base + "/")
    assert "lrun" in page.title()
    page.goto(base + "/reference/scenario/#pool")
    assert page.locator("h2#pool").is_visible()
    assert "when_empty" in page.locator("article").inner_text()
    page.goto(base + "/")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    search = page.locator("input.md-search__input")
    search.click()
    result = page.locator(".md-search-result__item").first
    for _ in range(6):  # the index loads in a web worker: a query typed before it is ready may show nothing
        search.fill("")
        search.fill("rendezvous")
        try:
            result.wait_for(timeout=10_000)
            break
        except PlaywrightTimeout:  # type the query again
            continue
    result.wait_for(timeout=1_000)  # the last try's failure, if it never came
    assert "rendezvous" in page.locator(".md-search-result").inner_text().lower()


def test_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 200, len(lines)
