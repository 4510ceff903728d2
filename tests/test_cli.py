"""End to end: the real ``lrun`` command against the real demo target on loopback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from helpers import demo_reset, demo_stats, write

from conftest import ROOT, SCENARIOS, lrun_command, run_lrun

FRAGMENTS = ("common.yaml", "pools.yaml")  # included by the examples, never run on their own
EXAMPLES = sorted(p.name for p in SCENARIOS.glob("*.yaml") if p.name not in FRAGMENTS)


# ------------------------------------------------------------------------------------------------ basics


def test_version_and_help() -> None:
    version = run_lrun("--version")
    assert version.returncode == 0 and version.stdout.startswith("lrun, version ")
    helped = run_lrun("--help")
    assert helped.returncode == 0
    for command in ("validate", "debug", "schema", "demo"):
        assert command in helped.stdout


def test_help_does_not_import_the_engine() -> None:
    """--help and --version stay fast: the CLI module imports neither gevent nor pydantic."""
    code = "import sys, runner.cli; print(sorted(m for m in ('gevent', 'pydantic', 'lxml') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr


# ------------------------------------------------------------------------------------------------ validate


def test_validate_the_examples_directory() -> None:
    result = run_lrun("validate", "scenarios")
    assert result.returncode == 0, result.stderr
    for name in EXAMPLES:
        assert f"scenarios/{name}: ok" in result.stdout
    for fragment in FRAGMENTS:  # validated through the scenarios that include them
        assert fragment not in result.stdout + result.stderr


def test_validate_reports_path_line_col_and_exits_2(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "host: demo\nusers:\n  u:\n    sequence:\n      - get: /items\n        hedaers: {A: b}\n",
    )
    result = run_lrun("validate", str(path))
    assert result.returncode == 2
    assert f"{path}:6:9: unknown key 'hedaers'" in result.stderr
    assert "did you mean 'headers'?" in result.stderr
    assert "Traceback (most recent call last)" not in result.stderr


def test_validate_a_missing_file_and_an_empty_directory(tmp_path: Path) -> None:
    missing = run_lrun("validate", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "nope.yaml:1:1: file not found" in missing.stderr
    empty = run_lrun("validate", str(tmp_path))
    assert empty.returncode == 2 and "no scenario files" in empty.stderr


def test_validate_warnings_pass_unless_strict(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "host: demo\nusers:\n  u:\n    tasks:\n      - get: '/items/{{ item }}'\n"
        "      - sequence: [{set: {item: 1}}]\n",
    )
    lenient = run_lrun("validate", str(path))
    assert lenient.returncode == 0
    assert f"{path}:5:14: warning: variable 'item' is only set by another task" in lenient.stderr
    assert run_lrun("validate", "--strict", str(path)).returncode == 2


def test_json_scenarios_validate_with_positions(tmp_path: Path) -> None:
    good = write(
        tmp_path,
        json.dumps({"host": "demo", "users": {"u": {"sequence": [{"get": "/"}]}}}, indent=2),
        "ok.json",
    )
    assert run_lrun("validate", str(good)).returncode == 0
    bad = write(
        tmp_path,
        '{\n  "host": "demo",\n  "users": {"u": {"sequence": [{"get": "/", "nmae": "x"}]}}\n}',
        "b.json",
    )
    result = run_lrun("validate", str(bad))
    assert result.returncode == 2
    assert f"{bad}:3:45: unknown key 'nmae'" in result.stderr
    syntax = write(tmp_path, '{"host": "demo",\n "users": }', "c.json")
    result = run_lrun("validate", str(syntax))
    assert result.returncode == 2 and f"{syntax}:2:11: JSON syntax error" in result.stderr


# ------------------------------------------------------------------------------------------------ debug


@pytest.mark.parametrize("name", EXAMPLES)
def test_debug_runs_every_example_against_the_demo(name: str) -> None:
    result = run_lrun("debug", f"scenarios/{name}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo target started at http://127.0.0.1:" in result.stdout
    assert " 0 failed, 0 errors" in result.stdout
    assert "Traceback (most recent call last)" not in result.stdout + result.stderr


def test_debug_shows_correlation_and_the_server_saw_it(demo_url: str) -> None:
    demo_reset(demo_url)
    result = run_lrun("debug", "scenarios/quickstart.yaml", "-H", demo_url, "--user", "shopper")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "GET /login -> 200" in result.stdout
    assert "saved session = " in result.stdout and "saved token = " in result.stdout
    assert "ok   body contains 'Welcome to the demo shop'" in result.stdout
    stats = demo_stats(demo_url)
    assert stats["logins"] == 1  # the hidden session value was posted back: the server accepted it
    assert stats["by_path"]["GET /login"] == 1 and stats["by_path"]["POST /login"] == 1


def test_templates_reach_the_server(tmp_path: Path, demo_url: str) -> None:
    path = write(
        tmp_path,
        """
host: demo
variables: {who: tester}
users:
  u:
    headers: {X-User: "{{ who }}-{{ user_id }}"}
    sequence:
      - set: {n: "{{ 40 + 2 }}", word: "w{{ 1 + 1 }}"}
      - post: /echo
        query: {q: "{{ word }}", many: [a, b]}
        json: {n: "{{ n }}", text: "n={{ n }}", list: ["{{ who }}"], id: "{{ uuid() }}"}
        check:
          - {jsonpath: $.json.n, equals: 42}
          - {jsonpath: $.json.text, equals: n=42}
          - {jsonpath: "$.json.list[0]", equals: tester}
          - {jsonpath: "$.query.q[0]", equals: w2}
          - {jsonpath: "$.query.many[1]", equals: b}
          - {jsonpath: "$.headers['x-user']", equals: tester-1}
          - {jsonpath: $.json.id, matches: "^[0-9a-f-]{36}$"}
      - post: /echo
        form: {a: "{{ who }}", b: 2}
        check:
          - {jsonpath: "$.form.a[0]", equals: tester}
          - {jsonpath: "$.headers['content-type']", contains: urlencoded}
      - put: /echo
        body: "raw {{ who }}"
        headers: {Content-Type: text/plain}
        check: [{jsonpath: $.body, equals: raw tester}, {jsonpath: $.method, equals: PUT}]
""",
    )
    result = run_lrun("debug", str(path), "-H", demo_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok   ") == 3 + 9 + 2


def test_debug_failures_exit_1_and_say_why(tmp_path: Path, demo_url: str) -> None:
    path = write(
        tmp_path,
        """
host: demo
users:
  u:
    sequence:
      - get: /items/1
        check: {jsonpath: $.name, equals: Blue mug}
      - get: /fail
      - get: /items
        extract: {x: {jsonpath: $.nothing}}
""",
    )
    result = run_lrun("debug", str(path), "-H", demo_url)
    assert result.returncode == 1
    out = result.stdout
    assert "FAIL jsonpath $.name equals 'Blue mug': jsonpath $.name: expected 'Blue mug', got 'Red mug'" in out
    assert "GET /fail -> 500" in out and "request failed: HTTP 500" in out
    assert "internal error (on purpose)" in out  # the failed response's body is shown
    assert "request failed: x: jsonpath $.nothing matched nothing" in out
    assert "3 requests, 3 failed, 0 errors" in out


@pytest.mark.parametrize(
    ("on_fail", "about", "last_user_ran"),
    [("continue", 1, True), ("stop_iteration", 0, True), ("stop_user", 0, True), ("stop_test", 0, False)],
)
def test_on_fail_decides_what_follows(
    tmp_path: Path, demo_url: str, on_fail: str, about: int, last_user_ran: bool
) -> None:
    path = write(
        tmp_path,
        f"""
host: demo
users:
  first:
    on_stop: [{{get: /items}}]
    sequence:
      - get: /items/1
        check: {{status: 404, on_fail: {on_fail}}}
      - get: /about
  second:
    sequence: [{{get: /xml}}]
""",
    )
    demo_reset(demo_url)
    result = run_lrun("debug", str(path), "-H", demo_url)
    assert result.returncode == 1
    by_path = demo_stats(demo_url)["by_path"]
    assert by_path.get("GET /about", 0) == about
    assert by_path.get("GET /items", 0) == 1  # on_stop runs whatever stopped the user
    assert by_path.get("GET /xml", 0) == (1 if last_user_ran else 0)


def test_debug_refused_connection_is_a_failure_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, "users:\n  u:\n    sequence: [{get: /}]\n")
    result = run_lrun("debug", str(path), "-H", "http://127.0.0.1:1")
    assert result.returncode == 1
    assert "GET / -> ---" in result.stdout and "connection refused" in result.stdout
    assert "Traceback (most recent call last)" not in result.stdout + result.stderr


def test_debug_user_errors(tmp_path: Path) -> None:
    unknown = run_lrun("debug", "scenarios/quickstart.yaml", "--user", "shoper")
    assert unknown.returncode == 2 and "no user type 'shoper' (did you mean 'shopper'?)" in unknown.stderr
    no_host = run_lrun("debug", str(write(tmp_path, "users:\n  u:\n    sequence: [{get: /}]\n")))
    assert no_host.returncode == 2 and "no host" in no_host.stderr
    bad_host = run_lrun("debug", "scenarios/quickstart.yaml", "-H", "localhost:80")
    assert bad_host.returncode == 2 and "is not a URL" in bad_host.stderr
    invalid = run_lrun("debug", str(write(tmp_path, "users: {u: {sequence: [{gte: /}]}}\n", "bad.yaml")))
    assert invalid.returncode == 2 and "bad.yaml:1:24: not a step" in invalid.stderr


def test_debug_template_error_is_one_line_and_a_python_bug_keeps_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "steps.py").write_text("def boom(user):\n    return {}['missing']\n")
    path = write(
        tmp_path,
        "host: http://127.0.0.1:1\nvariables: {n: 0}\npython: steps.py\n"
        "users:\n  a: {sequence: [{set: {y: '{{ 1 / n }}'}}]}\n  b: {sequence: [{call: boom}]}\n",
    )
    result = run_lrun("debug", str(path))
    assert result.returncode == 1, result.stderr
    a, b = result.stdout.split("user b ")
    assert "  error in a: ZeroDivisionError: division by zero\n" in a and "Traceback" not in a
    assert "error in b: ScriptError: steps.py:2 in boom: KeyError: 'missing'" in b
    assert "Traceback (most recent call last)" in b and 'steps.py", line 2, in boom' in b


# ------------------------------------------------------------------------------------------------ demo


def test_lrun_demo_serves_until_ctrl_c() -> None:
    process = subprocess.Popen(
        [*lrun_command(), "demo", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("lrun demo target listening on http://127.0.0.1:"), line
        url = line.split()[5]
        with urllib.request.urlopen(url + "/", timeout=10) as response:
            assert b"lrun demo shop" in response.read()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert "Traceback (most recent call last)" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_validate_skips_hidden_folders_and_results_files(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text("host: demo\nusers: {u: {sequence: [{get: /}]}}\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "broken.yaml").write_text("users: [\n")
    (tmp_path / "results.json").write_text('{\n  "format": "lrun-results",\n  "format_version": 1\n}\n')
    result = run_lrun("validate", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{tmp_path / 'ok.yaml'}: ok"


def test_typos_in_commands_and_file_names_get_a_suggestion() -> None:
    command = run_lrun("runn", "scenarios/quickstart.yaml")
    assert command.returncode == 2 and "No such command 'runn'. Did you mean 'run'?" in command.stderr
    for args in (["scenarios/quickstrat.yaml"], ["validate", "scenarios/quickstrat.yaml"]):
        result = run_lrun(*args)
        assert result.returncode == 2
        assert "scenarios/quickstrat.yaml:1:1: file not found" in result.stderr
        assert "did you mean scenarios/quickstart.yaml?" in result.stderr
