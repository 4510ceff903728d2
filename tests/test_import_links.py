"""Ids in URLs, whatever their length, taken from the link or JSON field that gave them (``importers/links``),
and the checkpoints that catch soft failures (``importers/checks``): recordings written from the HAR 1.2
specification, with links relative, absolute and HTML-escaped, ids in several links, and common words."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from har_helpers import har_entry, imported, scenario_steps, write_har

from runner.config import resolve
from runner.importers.checks import location_pattern

PAGE = "text/html"


def page(body: str, title: str = "Notes") -> str:
    return f"<html><head><title>{title}</title></head><body>{body}</body></html>"


def run(tmp_path: Path, entries: list[dict[str, Any]], **write: Any) -> tuple[Any, list[dict[str, Any]]]:
    result = imported(write_har(tmp_path / "r.har", entries), **write)
    return result, scenario_steps(result.yaml)


def found(result: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    return {c.name: (c.value, c.extractor) for c in result.correlations.found}


def test_relative_absolute_and_escaped_links_give_short_ids(tmp_path: Path) -> None:
    body = (
        '<a href="notes/5">five</a> <a href="https://app.example.test/tags/7/edit">seven</a>'
        '<a href="/view?id=42&amp;mode=full">forty-two</a>'
    )
    result, steps = run(
        tmp_path,
        [
            har_entry("GET", "/app/", mime=PAGE, text=page(body)),
            har_entry("GET", "/app/notes/5", mime=PAGE, text=page("a note")),
            har_entry("GET", "/tags/7/edit", mime=PAGE, text=page("a tag")),
            har_entry("GET", "/view?id=42&mode=full", mime=PAGE, text=page("a view")),
        ],
    )
    assert found(result) == {
        "note_id": ("5", {"regex": 'href="notes/(\\d+)"'}),  # relative: as the page writes it
        "tag_id": ("7", {"regex": 'href="(?:https?://[^/"\']+)?/tags/(\\d+)/edit"'}),  # any host: -H retargets
        "view_id": ("42", {"regex": 'href="/view\\?id=(\\d+)\\&amp;mode=full"'}),  # as escaped in the HTML
    }
    assert [s["get"] for s in steps[1:]] == ["/app/notes/{{ note_id }}", "/tags/{{ tag_id }}/edit", "/view"]
    assert steps[3]["query"] == {"id": "{{ view_id }}", "mode": "full"}
    assert steps[0]["extract"] == {name: spec for name, (_, spec) in found(result).items()}
    for name, (value, spec) in found(result).items():  # each regex finds the recorded id in the recorded page
        assert re.search(spec["regex"], page(body)).group(1) == value, name


def test_an_id_in_several_links_is_taken_by_its_link_text_or_its_place_with_a_warning(tmp_path: Path) -> None:
    links = '<a href="/items/3">Blue mug</a><a href="/items/7">Red mug</a><a href="/items/7/reviews">reviews</a>'
    result, steps = run(
        tmp_path,
        [har_entry("GET", "/shop", mime=PAGE, text=page(links)), har_entry("GET", "/items/7", mime=PAGE)],
    )
    assert steps[1]["get"] == "/items/{{ item_id }}"
    [(value, spec)] = found(result).values()
    assert value == "7" and spec == {"regex": 'href="/items/(\\d+)"[^>]*>\\s*Red\\ mug\\s*</a>'}
    assert result.correlations.warnings == []
    # the link's text is what the user typed (it changes with every data row): by its place, and a warning
    typed = '<a href="/items/3">older</a><a href="/items/8">Red mug</a>'
    added = {"mimeType": "application/x-www-form-urlencoded", "text": "t=Red+mug"}
    result, _ = run(
        tmp_path,
        [
            har_entry("POST", "/items", 302, post=added,
                      response_headers=[("Location", "/shop")]),
            har_entry("GET", "/shop", mime=PAGE, text=page(typed)),
            har_entry("GET", "/items/8", mime=PAGE),
        ],
    )  # fmt: skip
    assert found(result) == {"item_id": ("8", {"regex": 'href="/items/(\\d+)"', "match": 2})}
    [warning] = result.correlations.warnings
    assert warning.uses == ["#3 GET /items/8 url"]
    assert "2 different ids in links of this pattern on #2; took the second, as recorded" in warning.why


def test_an_id_from_a_json_answer_named_after_what_it_is(tmp_path: Path) -> None:
    result, steps = run(
        tmp_path,
        [
            har_entry("POST", "/api/notes", 201, text='{"id": 17, "title": "x"}'),
            har_entry("GET", "/api/notes/17"),
            har_entry("DELETE", "/api/notes/17"),
        ],
    )
    assert found(result) == {"note_id": ("17", {"jsonpath": "$.id"})}
    assert [s.get("get") or s.get("delete") for s in steps[1:]] == ["/api/notes/{{ note_id }}"] * 2


def test_common_words_and_unrelated_numbers_make_no_correlation(tmp_path: Path) -> None:
    """A word (typed, or a constant like ``list``) and a small number that merely occurs in a response stay."""
    text = '{"mode": "list", "items": [{"id": 3, "name": "express"}, {"id": 19}], "page": 2}'
    result, steps = run(
        tmp_path,
        [
            har_entry("GET", "/start", mime=PAGE, text=page('<a href="/notes/list">all</a> express list 19')),
            har_entry("GET", "/config", text=text),
            har_entry("GET", "/notes/list?q=express&page=2"),
            har_entry("GET", "/step/19"),
        ],
    )
    assert result.correlations.found == [] and result.correlations.warnings == []
    assert steps[2]["get"] == "/notes/list" and steps[3]["get"] == "/step/19"


def test_an_id_the_recording_created_and_no_response_gave_is_a_warning_naming_its_request(tmp_path: Path) -> None:
    form = {"mimeType": "application/x-www-form-urlencoded", "text": "title=hello"}
    result, _ = run(
        tmp_path,
        [
            har_entry("GET", "/notes/new", mime=PAGE, text=page("<form></form>")),
            har_entry("POST", "/notes", 200, post=form, text='{"ok": true}'),
            har_entry("GET", "/notes/31/edit", mime=PAGE, text=page("edit")),
        ],
    )
    [warning] = result.correlations.warnings
    assert (warning.value, warning.uses) == ("31", ["#3 GET /notes/31/edit path segment 2"])
    assert "sent after #2 POST /notes" in warning.why and "the recording created it" in warning.why
    assert "warning: '31' used by #3 GET /notes/31/edit" in "\n".join(result.report())


def test_checkpoints_catch_redirects_to_elsewhere_failed_logins_and_pages_of_typed_data(tmp_path: Path) -> None:
    login = {"mimeType": "application/x-www-form-urlencoded", "text": "username=ada&password=pw-1815"}
    add = {"mimeType": "application/x-www-form-urlencoded", "text": "title=Shopping+list"}
    form = page('<input type="text" name="username"><input type="password" name="password">', "Log in")
    _, steps = run(
        tmp_path,
        [
            har_entry("GET", "/login", mime=PAGE, text=form),
            har_entry("POST", "/login", 302, post=login, response_headers=[("Location", "/home")]),
            har_entry("GET", "/add", mime=PAGE, text=page('<input name="title">', "Add")),
            har_entry("POST", "/add", 302, post=add,
                      response_headers=[("Location", "http://app.example.test/notes/12?token=9f8e7d6c5b4a")]),
            har_entry("GET", "/notes/12", mime=PAGE, text=page("<h1>Shopping list</h1>", "Shopping list | Notes")),
        ],
        pool=True,
        pool_file="r.csv",
    )  # fmt: skip
    assert steps[1]["check"] == [
        {"status": 302, "on_fail": "stop_iteration"},
        {"header": "Location", "matches": "^/home$", "on_fail": "stop_iteration"},
    ]
    assert steps[3]["check"][1] == {
        "header": "Location",
        "matches": "^(?:https?://[^/]+)?/notes/[^/?&#]+\\?token=[^/?&#]+$",
    }
    # the typed title is the pool's column in the checks too (another row, another title); without --pool it stays
    assert steps[4]["check"][1:] == [{"contains": "{{ inputs.title }} | Notes"}]
    assert steps[1]["form"] == {"username": "{{ inputs.username }}", "password": "{{ inputs.password }}"}
    _, plain = run(tmp_path, [har_entry("GET", "/n", mime=PAGE, text=page("<h1>Inbox</h1>", "Shopping list"))])
    assert plain[0]["check"] == [{"status": 200}, {"contains": "Shopping list"}, {"contains": "Inbox"}]


def test_location_patterns() -> None:
    assert location_pattern("/admin/notes/note/") == "^/admin/notes/note/$"
    assert location_pattern("/login/?next=/admin/") == "^/login/\\?next=/admin/$"
    assert location_pattern("https://x.test/o/5") == "^(?:https?://[^/]+)?/o/[^/?&#]+$"
    typed = frozenset({"red mug"})
    assert location_pattern("/search?q=red+mug&page=list", typed) == "^/search\\?q=[^/?&#]+\\&page=list$"


def test_a_run_time_from_the_user_replaces_the_scenarios_iteration_cap() -> None:
    """The imported ``iterations: 1`` is a one-replay default: ``-t`` loops the users; ``-u`` alone keeps it."""
    load = {"users": 1, "iterations": 1}
    assert resolve({"users": 2, "run_time": "10s"}, environ={}, scenario_load=load).iterations is None
    assert resolve({"users": 2}, environ={}, scenario_load=load).iterations == 1
    assert resolve({"run_time": "10s", "iterations": 3}, environ={}, scenario_load=load).iterations == 3
    assert resolve({}, environ={"LRUN_RUN_TIME": "5s"}, scenario_load=load).iterations is None
    assert resolve({}, environ={}, scenario_load={**load, "run_time": "1m"}).iterations == 1


class Tickets:
    """A loopback application whose new ticket's number is only in the text of the answer ("Ticket 8 opened"):
    nothing an importer can take it from; or, with ``location`` (``absolute`` or ``relative``), only in a 303's
    ``Location``. Tickets 1 to ``existing`` exist already; every request is logged."""

    def __init__(self, existing: int, location: str = "") -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.tickets = set(range(1, existing + 1))
        self.seen: list[str] = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                app.seen.append(f"{self.command} {self.path}")
                moved = ""
                if self.command == "POST":
                    number = max(app.tickets) + 1
                    app.tickets.add(number)
                    status, text = 200, page(f"Ticket <b>{number}</b> opened", "Opened")
                    if location:
                        status, moved = 303, ("" if location == "relative" else app.url) + f"/tickets/{number}"
                else:
                    number = int(re.fullmatch(r"/tickets/(\d+)(?:/edit)?", self.path).group(1))  # type: ignore[union-attr]
                    shown = page("<form></form>", "Edit") if self.path.endswith("/edit") else page("a ticket", "Ticket")
                    status, text = (200, shown) if number in app.tickets else (404, "no")
                data = text.encode()
                self.send_response(status)
                if moved:
                    self.send_header("Location", moved)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Tickets:
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_verify_fails_when_the_replay_sends_an_id_this_replay_was_not_given(tmp_path: Path) -> None:
    """The recording opened ticket 7, which it had just made; the replay makes ticket 8 but still opens 7, which
    exists, so every status is as recorded: only the id check sees that the replay reads the recording's ticket."""
    from conftest import run_lrun

    form = {"mimeType": "application/x-www-form-urlencoded", "text": "subject=printer"}
    har = write_har(
        tmp_path / "t.har",
        [
            har_entry("POST", "/tickets", post=form, mime=PAGE, text=page("Ticket <b>7</b> opened", "Opened")),
            har_entry("GET", "/tickets/7", mime=PAGE, text=page("a ticket", "Ticket")),
        ],
    )
    with Tickets(existing=7) as app:
        result = run_lrun("import", str(har), "--verify", "-H", app.url)
        assert app.seen == ["POST /tickets", "GET /tickets/7"]
    assert result.returncode == 1, result.stderr
    assert "ok   #2 GET /tickets/7: 200 (recorded 200)" in result.stderr
    assert (
        "verify: #2 GET /tickets/7 sends '7' as recorded, but no response of this replay gave it "
        "(the recording created it)" in result.stderr
    )
    with Tickets(existing=6) as app:  # this replay's new ticket is 7 again: what it sends, it was given
        result = run_lrun("import", str(har), "--verify", "-H", app.url)
    assert result.returncode == 0, result.stderr


def test_a_short_id_in_a_form_field_from_a_hidden_input_or_a_warning(tmp_path: Path) -> None:
    form = page('<form method="post"><input type="hidden" name="cart_id" value="42"><input name="qty"></form>')
    post = {"mimeType": "application/x-www-form-urlencoded", "text": "cart_id=42&qty=1"}
    result, steps = run(
        tmp_path, [har_entry("GET", "/cart", mime=PAGE, text=form), har_entry("POST", "/buy", post=post)]
    )
    assert found(result) == {"cart_id": ("42", {"xpath": '//input[@name="cart_id"]/@value'})}
    assert steps[1]["form"] == {"cart_id": "{{ cart_id }}", "qty": "1"}  # a quantity is not an id
    made = {"mimeType": "application/x-www-form-urlencoded", "text": "order_id=9001"}
    result, _ = run(
        tmp_path,
        [har_entry("POST", "/orders", text='{"ok": true}'), har_entry("POST", "/pay", post=made)],
    )
    [warning] = result.correlations.warnings
    assert (warning.value, warning.uses) == ("9001", ["#2 POST /pay form order_id"])


NEW = {"mimeType": "application/x-www-form-urlencoded", "text": "subject=printer"}


def created_then_opened(location: str) -> list[dict[str, Any]]:
    """The recording made ticket 7, whose number only the 303's ``Location`` gave, then opened and edited it."""
    return [
        har_entry("POST", "/tickets", 303, mime=PAGE, post=NEW, response_headers=[("Location", location)]),
        har_entry("GET", "/tickets/7", mime=PAGE, text=page("a ticket", "Ticket")),
        har_entry("GET", "/tickets/7/edit", mime=PAGE, text=page("<form></form>", "Edit")),
        har_entry("GET", "/tickets/7", mime=PAGE, text=page("a ticket", "Ticket")),
    ]


@pytest.mark.parametrize(
    ("location", "regex"),
    [
        ("https://app.example.test/tickets/7", "^(?:https?://[^/]+)?/tickets/(\\d+)(?=[?#]|$)"),
        ("/tickets/7", "^(?:https?://[^/]+)?/tickets/(\\d+)(?=[?#]|$)"),
        ("tickets/7", "(?:^|/)tickets/(\\d+)(?=[?#]|$)"),  # relative to the POST's /
    ],
)
def test_an_id_only_a_location_gave_is_its_id_by_a_regex_on_the_header(
    tmp_path: Path, location: str, regex: str
) -> None:
    from runner.compile.extract import compile_extractor
    from runner.http.response import Response
    from runner.scenario import load_scenario
    from runner.scenario.model import Extract

    result, steps = run(tmp_path, created_then_opened(location))
    assert found(result) == {"ticket_id": ("7", {"header": "Location", "regex": regex})}
    opened, edited = "/tickets/{{ ticket_id }}", "/tickets/{{ ticket_id }}/edit"
    assert [s.get("get") for s in steps[1:]] == [opened, edited, opened]
    assert steps[0]["extract"] == {"ticket_id": {"header": "Location", "regex": regex}}
    assert result.correlations.warnings == []
    scenario = tmp_path / "t.yaml"
    scenario.write_text(result.yaml)
    loaded = load_scenario(scenario)  # validates: raises on any problem
    assert loaded.model is not None
    # the regex takes the id alone out of what a server answers: relative or absolute, any host, with a query
    take = compile_extractor("v", Extract.model_validate(steps[0]["extract"]["ticket_id"]))
    for answer in ("/tickets/815", "http://127.0.0.1:8089/tickets/815", "/tickets/815?created=1"):
        variables: dict[str, Any] = {}
        response = Response("POST", "http://127.0.0.1/tickets", status=303, headers=[("Location", answer)])
        assert take.extract(response, variables) is None and variables == {"v": "815"}, answer


def test_a_long_id_or_a_query_id_from_a_location_is_named_after_what_it_is(tmp_path: Path) -> None:
    uuid = "3f2b9c1e-8d4a-4b6f-9e2d-7c5a1b3e9f08"
    result, steps = run(
        tmp_path,
        [
            har_entry("POST", "/api/orders", 201, response_headers=[("Location", f"/api/orders/{uuid}")]),
            har_entry("GET", f"/api/orders/{uuid}"),
            har_entry("POST", "/pay", 302, response_headers=[("Location", "/receipt?receipt_id=4711&lang=en")]),
            har_entry("GET", "/receipt?receipt_id=4711&lang=en", mime=PAGE, text=page("thanks")),
        ],
    )
    assert found(result) == {
        "order_id": (uuid, {"header": "Location", "regex": "^(?:https?://[^/]+)?/api/orders/([^/?&#]+)(?=[?#]|$)"}),
        "receipt_id": (
            "4711",
            {"header": "Location", "regex": "^(?:https?://[^/]+)?/receipt\\?(?:[^#]*&)?receipt_id=(\\d+)(?=[&#]|$)"},
        ),
    }
    assert steps[1]["get"] == "/api/orders/{{ order_id }}"
    assert steps[3]["get"] == "/receipt" and steps[3]["query"] == {"receipt_id": "{{ receipt_id }}", "lang": "en"}
    assert result.correlations.warnings == []


@pytest.mark.parametrize("location", ["absolute", "relative"])
def test_a_replay_opens_each_ticket_it_made_by_the_id_its_location_gave(tmp_path: Path, location: str) -> None:
    """Two users, three iterations each: six new tickets (8 to 13), each opened twice and edited once by its own
    id, as the server logged it; the recording's ticket 7 (which exists) is never opened."""
    from conftest import run_lrun

    recorded = "https://app.example.test/tickets/7" if location == "absolute" else "/tickets/7"
    har = write_har(tmp_path / "t.har", created_then_opened(recorded))
    scenario = tmp_path / "t.yaml"
    assert run_lrun("import", str(har), "-o", str(scenario), "--think", "none").returncode == 0
    with Tickets(existing=7, location=location) as app:
        result = run_lrun(str(scenario), "-H", app.url, "-u", "2", "-i", "3", "--only-summary", timeout=180)
        seen = list(app.seen)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout, result.stdout
    assert seen.count("POST /tickets") == 6 and len(seen) == 24
    opened = sorted(int(line.split("/")[2]) for line in seen if line.startswith("GET") and "/edit" not in line)
    edited = sorted(int(line.split("/")[2]) for line in seen if line.endswith("/edit"))
    assert opened == sorted(list(range(8, 14)) * 2) and edited == list(range(8, 14))
    with Tickets(existing=7, location=location) as app:  # --verify: one replay, ticket 8, opened by its id
        verified = run_lrun("import", str(har), "--verify", "-H", app.url)
        assert app.seen == ["POST /tickets", "GET /tickets/8", "GET /tickets/8/edit", "GET /tickets/8"]
    assert verified.returncode == 0, verified.stderr
