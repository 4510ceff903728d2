"""``lrun import`` takes recordings from anyone: a HAR is untrusted input. Template syntax in any name or value
is sent literally (never rendered, by a run or by ``--verify``), YAML syntax and line breaks in any string come
out as data, and a hostile file is one line naming the file and the problem (exit 2), never a traceback."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest
import yaml
from har_helpers import har_entry

from conftest import run_lrun
from runner.errors import ScenarioError
from runner.scenario import load_scenario
from runner.scenario.templating import compile_template

SECRET = "s3cret-from-the-environment"
INJECTED = "{{ env('LRUN_HOSTILE_SECRET') }}"
ORIGIN = "http://127.0.0.1:8000"


def entry(method: Any = "GET", path: str = "/", status: Any = 200, text: str = "{}", **kw: Any) -> dict[str, Any]:
    """``har_entry``'s entry with its parts as given, hostile ones included: ``headers`` (the raw list), ``post``
    (postData), ``started`` and ``time`` optional."""
    made = har_entry(method, "/", status, text=text)
    made["request"]["url"] = path if "://" in path else ORIGIN + path
    made["request"]["headers"] = kw.get("headers", [])
    if "post" in kw:
        made["request"]["postData"] = kw["post"]
    made["startedDateTime"] = kw.get("started", "2026-01-01T00:00:00.000Z")
    made["time"] = kw.get("time", 5)
    return made


def har(entries: list[Any], **log: Any) -> dict[str, Any]:
    return {"log": {"version": "1.2", "creator": {"name": "test", "version": "1"}, "entries": entries, **log}}


def write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def requests_of(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for step in scenario["users"]["recorded"]["sequence"]:
        out += step["steps"] if "transaction" in step else [step]
    return out


def rendered(value: Any) -> Any:
    """What a replay sends for a scenario value: every string (keys too) rendered as the template it is."""
    if isinstance(value, str):
        return compile_template(value).render({})
    if isinstance(value, dict):
        return {rendered(k): rendered(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rendered(v) for v in value]
    return value


class Recorder:
    """A loopback server that answers 200 ``{}`` and keeps every request's target and body."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen.append((self.command, self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


# -- template syntax is data -------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_template_syntax_in_names_is_sent_literally_by_verify_and_by_a_run(
    tmp_path: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``{{ env('…') }}`` in a query key, a form key and a JSON key (nested too) reaches the target as written,
    from ``--verify`` during the import and from a run; the environment's secret never does."""
    monkeypatch.setenv("LRUN_HOSTILE_SECRET", SECRET)
    key = INJECTED.replace(" ", "%20").replace("{", "%7B").replace("}", "%7D").replace("'", "%27")
    form = {INJECTED: "1", "q": "{% if true %}x{% endif %}"}
    document = {INJECTED: {"inner {# c #}": [INJECTED]}, "plain": "{{ 7 * 7 }}"}
    recording = write(
        tmp_path / "hostile.har",
        har(
            [
                entry("GET", f"/q?{key}=1&v={key}"),
                entry(
                    "POST",
                    "/form",
                    post={
                        "mimeType": "application/x-www-form-urlencoded",
                        "params": [{"name": k, "value": v} for k, v in form.items()],
                    },
                ),
                entry("POST", "/json", post={"mimeType": "application/json", "text": json.dumps(document)}),
            ]
        ),
    )
    scenario = tmp_path / "hostile.yaml"
    result = run_lrun("import", str(recording), "-o", str(scenario), "--verify", "-H", recorder.url)
    assert result.returncode == 0, result.stderr
    steps = requests_of(yaml.safe_load(scenario.read_text()))
    assert rendered(steps[0]["query"]) == {INJECTED: "1", "v": INJECTED}
    assert rendered(steps[1]["form"]) == form and rendered(steps[2]["json"]) == document
    run = run_lrun(str(scenario), "-H", recorder.url, "--only-summary")
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(recorder.seen) == 6  # three from --verify, three from the run
    for method, target, body in recorder.seen:
        sent = target + " " + body.decode()
        assert SECRET not in sent and "49" not in sent, sent
        if method == "GET":
            assert dict(parse_qsl(urlsplit(target).query)) == {INJECTED: "1", "v": INJECTED}
        elif target == "/form":
            assert dict(parse_qsl(body.decode())) == form
        else:
            assert json.loads(body) == document


def test_escapes_survive_correlation(tmp_path: Path) -> None:
    """A response value that matches a piece of an escape (``}}x}}9abc123`` in ``{{ '{{' }}x}}9abc123``) is not
    correlated into it: that would write ``{{ '{{' {{ token }}``, a template that does not parse."""
    recording = write(
        tmp_path / "c.har",
        har(
            [
                entry("GET", "/a", text='{"token": "}}x}}9abc123"}'),
                entry("GET", "/b", headers=[{"name": "X-Mark", "value": "{{x}}9abc123"}]),
            ]
        ),
    )
    scenario = tmp_path / "c.yaml"
    assert run_lrun("import", str(recording), "-o", str(scenario)).returncode == 0
    load_scenario(scenario)
    [_, second] = requests_of(yaml.safe_load(scenario.read_text()))
    assert rendered(second["headers"]) == {"X-Mark": "{{x}}9abc123"}


# -- YAML syntax and line breaks are data ----------------------------------------------------------------------------

NASTY = [
    "line one\nload: {users: 1000}\n# x",
    "- item",
    "&anchor *alias",
    "!!python/object/apply:os.system ['echo pwned']",
    "key: value # not a comment",
    "'single' \"double\" `back`",
    "\u2028 line separator \x85 next line \r return",
    "tab\there",
    "{% raw %}{{ x }}{% endraw %}",
    "%YAML 1.1",
    "---",
    "...",
    "ünïcødé ✓ 🚀 \u202e",
]


def test_yaml_syntax_and_line_breaks_round_trip(tmp_path: Path) -> None:
    """In the creator's name, page titles, query keys and values, form fields, headers, JSON and raw bodies:
    the scenario validates, its load and steps are what was recorded, and every value replays as recorded."""
    query = urlencode([(f"k{i}{n[:8]}", n) for i, n in enumerate(NASTY)], quote_via=quote)
    form = [{"name": f"f {n}", "value": n} for n in NASTY]
    pages = [{"id": f"p{i}", "title": n, "startedDateTime": "2026-01-01T00:00:00Z"} for i, n in enumerate(NASTY[:3])]
    entries = [
        {**entry("GET", f"/search?{query}"), "pageref": "p0"},
        {
            **entry("POST", "/form", post={"mimeType": "application/x-www-form-urlencoded", "params": form}),
            "pageref": "p1",
        },
        {
            **entry("POST", "/json", post={"mimeType": "application/json", "text": json.dumps({n: n for n in NASTY})}),
            "pageref": "p2",
        },
        entry("POST", "/raw", post={"mimeType": "text/plain", "text": "\n".join(NASTY)}),
        entry(
            "GET",
            "/h",
            headers=[{"name": "X-Nasty", "value": n.replace("\n", " ").replace("\r", " ")} for n in NASTY[1:3]],
        ),
    ]
    creator = {"name": NASTY[0], "version": "\n".join(NASTY)}
    recording = write(
        tmp_path / "nasty.har", {"log": {"version": "1.2", "creator": creator, "pages": pages, "entries": entries}}
    )
    scenario = tmp_path / "nasty.yaml"
    result = run_lrun("import", str(recording), "-o", str(scenario))
    assert result.returncode == 0, result.stderr
    assert all(
        line.startswith(("#", " ", "name:", "host:", "load:", "users:")) or not line
        for line in scenario.read_text().splitlines()
    )
    load_scenario(scenario)  # raises ScenarioError when it does not validate
    data = yaml.safe_load(scenario.read_text())
    assert data["load"] == {"users": 1, "spawn_rate": 1, "iterations": 1} and data["name"] == "nasty"
    steps = requests_of(data)
    assert rendered(steps[0]["query"]) == {f"k{i}{n[:8]}": n for i, n in enumerate(NASTY)}
    assert rendered(steps[1]["form"]) == {f"f {n}": n for n in NASTY}
    assert rendered(steps[2]["json"]) == {n: n for n in NASTY}
    assert rendered(steps[3]["body"]) == "\n".join(NASTY)
    assert [s["transaction"] for s in data["users"]["recorded"]["sequence"][:3]] == NASTY[:3]


def test_no_line_breaks_inside_templates(tmp_path: Path) -> None:
    """The writer never folds a long line: a ``{{ … }}`` (a correlation or an escaped literal) stays on one line.
    (At width 110, one in two of these 80 templates was cut in two.)"""
    token = "tok-" + "9" * 20
    tokens = " ".join([token] * 40)
    braces = " ".join(["{{ x }}"] * 40)
    recording = write(
        tmp_path / "long.har",
        har(
            [
                entry("POST", "/login", text=json.dumps({"token": token})),
                entry(
                    "POST",
                    "/x",
                    headers=[{"name": "Authorization", "value": f"Bearer {token}"}],
                    post={"mimeType": "text/plain", "text": f"{tokens} {braces}"},
                ),
            ]
        ),
    )
    scenario = tmp_path / "long.yaml"
    assert run_lrun("import", str(recording), "-o", str(scenario)).returncode == 0
    text = scenario.read_text()
    templates = re.findall(r"\{\{.*?\}\}", text, re.DOTALL)
    assert len(templates) == 81 and not [t for t in templates if "\n" in t], [t for t in templates if "\n" in t]
    load_scenario(scenario)
    [_, step] = requests_of(yaml.safe_load(text))
    assert step["headers"]["Authorization"] == "Bearer {{ token }}"
    assert compile_template(step["body"]).render({"token": token}) == f"{tokens} {braces}"


# -- hostile files: one line naming the file and the problem, exit 2 ----------------------------------------------

NESTED = "[" * 100_000 + "]" * 100_000


def huge_number() -> str:
    return json.dumps(har([entry()])).replace('"time": 5', '"time": ' + "9" * 5000)


FATAL: list[tuple[str, Any, str]] = [
    (
        "status-1e400",
        json.dumps(har([entry()])).replace('"status": 200', '"status": 1e400'),
        "entry 1: the status inf is not an HTTP status",
    ),
    ("status-huge", har([entry(status=10**30)]), "entry 1: the status 1000000000000000000000000000000 is not"),
    ("status-superscript", har([entry(status="²00")]), "entry 1: the status '²00' is not an HTTP status"),
    ("status-list", har([entry(status=[200])]), "entry 1: the status [200] is not an HTTP status"),
    ("url-ipv6", har([entry("GET", "http://[::1")]), "entry 1: the URL 'http://[::1' is not a valid URL"),
    ("url-port", har([entry("GET", "http://127.0.0.1:99999/")]), "is not a valid URL: Port out of range"),
    ("url-backslash", har([entry("GET", "http://127.0.0.1\\@example.com/")]), "names no valid host"),
    ("url-space-host", har([entry("GET", "http://127.0.0.1 /")]), "names no valid host"),
    ("url-no-host", har([entry("GET", "http:///path")]), "entry 1: the URL 'http:///path' names no valid host"),
    (
        "method-newline",
        har([entry("GET\nX-Injected: yes")]),
        r"entry 1: the method 'GET\nX-Injected: yes' is not an HTTP method",
    ),
    ("method-space", har([entry("GET /admin HTTP/1.1")]), "is not an HTTP method"),
    ("method-number", har([entry(7)]), "entry 1: the method 7 is not an HTTP method"),
    ("nested-file", '{"log": ' + NESTED + "}", "JSON nested too deeply to read"),
    ("nested-entry", har([{**entry(), "_x": json.loads("[" * 200 + "]" * 200)}]), "nested 203 levels deep"),
    ("huge-number", huge_number(), "not a HAR file: Exceeds the limit (4300 digits)"),
    ("empty-log", {"log": {}}, "not a HAR file (no log.entries)"),
    ("entries-not-a-list", {"log": {"entries": {"0": entry()}}}, "not a HAR file (no log.entries)"),
    ("top-level-list", [entry()], "not a HAR file (no log.entries)"),
    ("no-entries", har([]), "the recording has no usable entries"),
    ("only-junk", har([None, 5, "x", {"request": 5}]), "the recording has no usable entries"),
    ("aborted", har([entry(status=0)]), "no usable entries: entry 1: skipped: no response recorded"),
    ("not-json", "<html>not json</html>", "not valid JSON"),
    ("nan", '{"log": NaN}', "not a HAR file (no log.entries)"),
]


@pytest.mark.parametrize(("name", "content", "message"), FATAL, ids=[c[0] for c in FATAL])
def test_hostile_files_are_one_line_and_exit_2(tmp_path: Path, name: str, content: Any, message: str) -> None:
    path = write(tmp_path / f"{name}.har", content)
    result = run_lrun("import", str(path), timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]
    assert result.stderr.startswith(f"lrun import: {path}") and message in result.stderr, result.stderr


def test_binary_and_utf16_files_are_one_line(tmp_path: Path) -> None:
    for name, data in [
        ("binary", bytes(range(256)) * 4),
        ("utf16-junk", '\ufeff{"log": 1}'.encode("utf-16-le") + b"\x00\xd8"),
        ("gzip", b"\x1f\x8b\x08\x00" + bytes(64)),
        (
            "utf8-surrogate",
            json.dumps(har([entry("GET", "/\ud800")]), ensure_ascii=False).encode("utf-8", "surrogatepass"),
        ),
    ]:
        path = tmp_path / f"{name}.har"
        path.write_bytes(data)
        result = run_lrun("import", str(path), timeout=60)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert len(result.stderr.strip().splitlines()) == 1 and str(path) in result.stderr, result.stderr


# -- strange but readable files: a scenario that validates ------------------------------------------------------------

TOLERATED: list[tuple[str, Any, str]] = [
    ("pages-5", har([entry()], pages=5), "log.pages is 5, not a list of pages: ignored"),
    (
        "lone-surrogate",
        json.dumps(har([entry("GET", "/a?q=x", text='{"v": "y"}')]))
        .replace("q=x", "q=\\ud800")
        .replace('"y"', '"\\udfff"'),
        "replaced by U+FFFD",
    ),
    ("nested-body", har([entry("POST", "/j", post={"mimeType": "application/json", "text": NESTED})]), ""),
    ("nested-response", har([entry("GET", "/a", text=NESTED), entry("GET", "/b?x=abc123def456")]), ""),
    (
        "infinite-body",
        har([entry("POST", "/j", post={"mimeType": "application/json", "text": '{"n": 1e400, "m": NaN}'})]),
        "",
    ),
    ("far-future", har([entry("GET", "/a"), entry("GET", "/b", started="9999-12-31T23:59:59.999Z")]), ""),
    (
        "bogus-times",
        har(
            [
                entry(started=5, time="x"),
                entry("GET", "/b", started="yesterday", time=1e308),
                entry("GET", "/c", started="0001-01-01T00:00:00Z", time=-1),
            ]
        ),
        "",
    ),
    (
        "bad-header",
        har(
            [
                entry(
                    headers=[
                        {"name": "X-A\r\nX-Injected", "value": "1"},
                        {"name": "X-B", "value": "a\r\nX-Injected: 1"},
                        {"name": "X-Ok", "value": "fine"},
                    ]
                ),
                entry("POST", "/b", post={"mimeType": "text/plain\r\nX-Injected: 1", "text": "x"}),
            ]
        ),
        "header 'X-A\\r\\nX-Injected' left out: not a valid HTTP header",
    ),
    (
        "wrong-types",
        har(
            [
                {
                    **entry(),
                    "request": {**entry()["request"], "headers": "abc", "queryString": 5, "postData": [1]},
                    "response": {**entry()["response"], "headers": {"a": 1}, "content": "text"},
                    "pageref": 5,
                    "_resourceType": {},
                }
            ],
            creator=[1],
            version=1.2,
        ),
        "",
    ),
    ("huge-integers", har([entry(time=10**400), entry("GET", "/b", time=-(10**400), started=10**400)]), ""),
    ("status-strings", har([entry(status="200"), entry("GET", "/b", status=200.0)]), ""),
    ("deep-header-value", har([entry(headers=[{"name": "X-Deep", "value": json.loads("[" * 15 + "]" * 15)}])]), ""),
]


@pytest.mark.parametrize(("name", "content", "warning"), TOLERATED, ids=[c[0] for c in TOLERATED])
def test_strange_files_give_a_scenario_that_validates(tmp_path: Path, name: str, content: Any, warning: str) -> None:
    path = write(tmp_path / f"{name}.har", content)
    scenario = tmp_path / f"{name}.yaml"
    result = run_lrun("import", str(path), "-o", str(scenario), timeout=60)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert warning in result.stderr, result.stderr
    try:
        load_scenario(scenario)
    except ScenarioError as exc:
        pytest.fail(f"{name}: the imported scenario does not validate: {exc}\n{scenario.read_text()[:3000]}")
    text = scenario.read_text()
    assert "X-Injected" not in text.split("\nname:")[1]
    for step in requests_of(yaml.safe_load(text)):
        think = step.get("think")
        assert think is None or float(think.removesuffix("s")) <= 600, think


def test_control_characters_in_a_path_are_sent_percent_encoded(tmp_path: Path) -> None:
    """As a browser sends them; an upper-case scheme is still HTTP."""
    recording = write(tmp_path / "p.har", har([entry("GET", "HTTP://127.0.0.1:8000/a b\x00c\x7f/")]))
    scenario = tmp_path / "p.yaml"
    result = run_lrun("import", str(recording), "-o", str(scenario))
    assert result.returncode == 0, result.stderr
    load_scenario(scenario)
    assert requests_of(yaml.safe_load(scenario.read_text()))[0]["get"] == "/a%20b%00c%7F/"


def test_a_correlation_named_after_a_strange_key_is_a_valid_variable(tmp_path: Path) -> None:
    """``²`` is a word character (and a digit to ``isdigit``) but no part of an identifier."""
    entries = [entry("GET", "/a", text=json.dumps({"²abc": "val9x8y7z6", "²": "val1x2y3z4"}))]
    recording = write(tmp_path / "k.har", har([*entries, entry("GET", "/b?q=val9x8y7z6&r=val1x2y3z4")]))
    scenario = tmp_path / "k.yaml"
    result = run_lrun("import", str(recording), "-o", str(scenario))
    assert result.returncode == 0 and "correlated abc = " in result.stderr, result.stderr
    assert "correlated value = " in result.stderr, result.stderr
    load_scenario(scenario)


def test_pool_columns_from_strange_field_names_are_identifiers(tmp_path: Path) -> None:
    names = ["²abc", "9", "user name", "{{ env('X') }}"]
    page = "<html><form>" + "".join(f'<input type="text" name="{n}">' for n in names) + "</form></html>"
    first = entry("GET", "/form")
    first["response"]["content"] = {"mimeType": "text/html", "text": page}
    fields = [{"name": n, "value": f"typed {i}"} for i, n in enumerate(names)]
    post = entry("POST", "/send", post={"mimeType": "application/x-www-form-urlencoded", "params": fields})
    recording = write(tmp_path / "f.har", har([first, post]))
    scenario = tmp_path / "f.yaml"
    result = run_lrun("import", str(recording), "-o", str(scenario), "--pool")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "f.csv").read_text().splitlines()[0] == "field_abc,field_9,user_name"
    load_scenario(scenario)
    form = requests_of(yaml.safe_load(scenario.read_text()))[1]["form"]
    assert rendered({k: v for k, v in form.items() if "inputs" not in v}) == {"{{ env('X') }}": "typed 3"}


def test_an_output_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    recording = write(tmp_path / "r.har", har([entry()]))
    result = run_lrun("import", str(recording), "-o", str(tmp_path / "missing" / "r.yaml"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert (
        result.stderr.strip()
        == f"lrun import: cannot write {tmp_path / 'missing' / 'r.yaml'}: No such file or directory"
    )
