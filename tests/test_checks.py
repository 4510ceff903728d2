"""Checkpoints at run time, specified through the real ``Check`` model as users write them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runner.compile.checkpoints import Checkpoint, compile_checks
from runner.http.response import Response
from runner.scenario.model import Check

Headers = list[tuple[str, str]]

LOGIN_PAGE = b"""<html><head><title>Log in</title></head><body>
<h1>Welcome to the demo shop</h1>
<div class="btnbox"><input type="hidden" name="session" value="9f86d081"/></div>
</body></html>"""


def response(body: bytes | str = b"", status: int = 200, headers: Headers | None = None, **kw: Any) -> Response:
    if isinstance(body, str):
        body = body.encode()
    return Response("GET", "http://test/", status=status, headers=headers, body=body, **kw)


def json_response(document: Any, status: int = 200) -> Response:
    return response(json.dumps(document), status, [("Content-Type", "application/json")])


def checkpoint(spec: dict[str, Any]) -> Checkpoint:
    """The one checkpoint compiled from ``spec`` (a status checkpoint keeps the default one out)."""
    compiled = compile_checks([Check.model_validate(spec)])
    return compiled[-1]


def check(spec: dict[str, Any], resp: Response, variables: dict[str, Any] | None = None) -> str | None:
    return checkpoint(spec).check(resp, variables or {})


# --------------------------------------------------------------------------------------------- default status


def test_default_status_check_is_added_first_without_a_status_checkpoint():
    compiled = compile_checks([Check.model_validate({"contains": "Welcome"})])
    assert [c.description for c in compiled] == ["status < 400", "body contains 'Welcome'"]
    assert compile_checks([])[0].description == "status < 400"


@pytest.mark.parametrize("status", [200, 204, 301, 302, 399])
def test_default_status_check_passes_below_400(status):
    assert compile_checks([])[0].check(response(status=status), {}) is None


def test_default_status_check_fails_4xx_5xx_with_the_reason():
    default = compile_checks([])[0]
    assert default.check(response(status=500, reason="Internal Server Error"), {}) == "HTTP 500 Internal Server Error"
    assert default.check(response(status=404, reason="Nicht gefunden"), {}) == "HTTP 404 Nicht gefunden"
    assert default.check(response(status=503), {}) == "HTTP 503 Service Unavailable"  # no reason sent
    assert default.check(response(status=499), {}) == "HTTP 499"
    assert default.on_fail == "continue"


def test_default_status_check_reports_the_network_error():
    default = compile_checks([])[0]
    assert default.check(response(status=0, error="connection refused"), {}) == "connection refused"
    assert default.check(response(status=0), {}) == "no response"


def test_explicit_status_checkpoint_replaces_the_default():
    compiled = compile_checks([Check.model_validate({"status": 404}), Check.model_validate({"contains": "x"})])
    assert [c.description for c in compiled] == ["status is 404", "body contains 'x'"]
    assert compiled[0].check(response(status=404), {}) is None


# ----------------------------------------------------------------------------------------------------- status


def test_status_code():
    assert check({"status": 200}, response(status=200)) is None
    assert check({"status": 200}, response(status=404)) == "status 404, expected 200"
    assert checkpoint({"status": 200}).description == "status is 200"


def test_status_class_and_list():
    spec = {"status": ["2xx", 302]}
    assert checkpoint(spec).description == "status is 2xx or 302"
    for ok in (200, 201, 299, 302):
        assert check(spec, response(status=ok)) is None
    assert check(spec, response(status=301)) == "status 301, expected 2xx or 302"
    assert check({"status": "4xx"}, response(status=422)) is None
    assert check({"status": "4xx"}, response(status=500)) == "status 500, expected 4xx"


def test_status_checkpoint_may_expect_an_error():
    assert check({"status": [401, 403]}, response(status=403)) is None


# ------------------------------------------------------------------------------------------------------- body


def test_body_contains():
    page = response(LOGIN_PAGE)
    assert check({"contains": "Welcome"}, page) is None
    assert check({"contains": "Goodbye"}, page) == "body does not contain 'Goodbye'"
    assert checkpoint({"contains": "Welcome"}).description == "body contains 'Welcome'"


def test_body_not_contains():
    page = response(LOGIN_PAGE)
    assert check({"not_contains": "Error"}, page) is None
    assert check({"not_contains": "Welcome"}, page) == "body contains 'Welcome'"
    assert checkpoint({"not_contains": "Error"}).description == "body does not contain 'Error'"


def test_body_contains_ignore_case():
    page = response(LOGIN_PAGE)
    assert check({"contains": "WELCOME"}, page) == "body does not contain 'WELCOME'"
    assert check({"contains": "WELCOME", "ignore_case": True}, page) is None
    assert check({"not_contains": "welcome", "ignore_case": True}, page) == "body contains 'welcome'"
    assert checkpoint({"contains": "x", "ignore_case": True}).description == "body contains 'x' (ignoring case)"


def test_body_contains_non_ascii_in_utf8_and_latin1():
    utf8 = response("Grüße aus Köln", headers=[("Content-Type", "text/plain; charset=utf-8")])
    latin1 = response("Grüße aus Köln".encode("latin-1"), headers=[("Content-Type", "text/plain; charset=latin-1")])
    for resp in (utf8, latin1):
        assert check({"contains": "Köln"}, resp) is None
        assert check({"contains": "KÖLN", "ignore_case": True}, resp) is None
        assert check({"contains": "aus"}, resp) is None
        assert check({"contains": "AUS", "ignore_case": True}, resp) is None
        assert check({"contains": "Wien"}, resp) == "body does not contain 'Wien'"


def test_body_contains_in_utf16():
    resp = response("Hello World".encode("utf-16"), headers=[("Content-Type", "text/plain; charset=utf-16")])
    assert check({"contains": "World"}, resp) is None
    assert check({"contains": "world", "ignore_case": True}, resp) is None


def test_body_contains_template():
    variables = {"user": "ann"}
    page = response("Hello ann, welcome back")
    assert check({"contains": "Hello {{ user }}"}, page, variables) is None
    assert check({"contains": "Hello {{ user }}"}, page, {"user": "bob"}) == "body does not contain 'Hello bob'"
    assert check({"contains": "HELLO {{ user | upper }}", "ignore_case": True}, page, variables) is None
    assert check({"not_contains": "bye {{ user }}"}, page, variables) is None


def test_body_matches():
    page = response(LOGIN_PAGE)
    assert check({"matches": r'value="[0-9a-f]{8}"'}, page) is None
    assert check({"matches": r"<H1>", "ignore_case": True}, page) is None
    assert check({"matches": r"order #\d+"}, page) == r"body does not match 'order #\d+'"
    assert checkpoint({"matches": r"\d+"}).description == r"body matches '\d+'"


# --------------------------------------------------------------------------------------------------- jsonpath


def test_jsonpath_equals():
    resp = json_response({"status": "error", "count": 3, "ok": True, "user": {"id": 7}})
    assert check({"jsonpath": "$.status", "equals": "error"}, resp) is None
    assert check({"jsonpath": "$.status", "equals": "ok"}, resp) == "jsonpath $.status: expected 'ok', got 'error'"
    assert check({"jsonpath": "$.count", "equals": 3}, resp) is None
    assert check({"jsonpath": "$.count", "equals": 4}, resp) == "jsonpath $.count: expected 4, got 3"
    assert check({"jsonpath": "$.ok", "equals": True}, resp) is None
    assert check({"jsonpath": "$.user", "equals": {"id": 7}}, resp) is None
    assert checkpoint({"jsonpath": "$.status", "equals": "ok"}).description == "jsonpath $.status equals 'ok'"


def test_equals_compares_as_text_when_one_side_is_a_string():
    resp = json_response({"count": 3, "ok": True, "price": 2.5})
    assert check({"jsonpath": "$.count", "equals": "3"}, resp) is None
    assert check({"jsonpath": "$.ok", "equals": "true"}, resp) is None  # JSON spelling
    assert check({"jsonpath": "$.price", "equals": "2.5"}, resp) is None
    assert check({"jsonpath": "$.count", "equals": "03"}, resp) == "jsonpath $.count: expected '03', got 3"


def test_equals_does_not_confuse_true_and_1():
    resp = json_response({"ok": True, "n": 1})
    assert check({"jsonpath": "$.ok", "equals": 1}, resp) == "jsonpath $.ok: expected 1, got true"
    assert check({"jsonpath": "$.n", "equals": True}, resp) == "jsonpath $.n: expected true, got 1"


def test_equals_ignore_case():
    resp = json_response({"status": "OK"})
    assert check({"jsonpath": "$.status", "equals": "ok"}, resp) == "jsonpath $.status: expected 'ok', got 'OK'"
    assert check({"jsonpath": "$.status", "equals": "ok", "ignore_case": True}, resp) is None


def test_equals_template_renders_with_the_variables():
    resp = json_response({"user": "ann", "id": 42, "greeting": "hi ann"})
    variables = {"username": "ann", "user_id": 42, "id_text": "42"}
    assert check({"jsonpath": "$.user", "equals": "{{ username }}"}, resp, variables) is None
    assert check({"jsonpath": "$.id", "equals": "{{ user_id }}"}, resp, variables) is None  # native int
    assert check({"jsonpath": "$.id", "equals": "{{ id_text }}"}, resp, variables) is None  # extracted text
    assert check({"jsonpath": "$.greeting", "equals": "hi {{ username }}"}, resp, variables) is None
    failure = check({"jsonpath": "$.user", "equals": "{{ username }}"}, resp, {"username": "bob"})
    assert failure == "jsonpath $.user: expected 'bob', got 'ann'"


def test_equals_template_inside_a_structure():
    resp = json_response({"user": {"name": "ann", "id": 42}})
    spec = {"jsonpath": "$.user", "equals": {"name": "{{ username }}", "id": 42}}
    assert check(spec, resp, {"username": "ann"}) is None
    assert check(spec, resp, {"username": "bob"}) == (
        """jsonpath $.user: expected {"name": "bob", "id": 42}, got {"name": "ann", "id": 42}"""
    )


def test_undefined_variable_is_a_failure_naming_it_not_an_exception():
    resp = json_response({"user": "ann"})
    failure = check({"jsonpath": "$.user", "equals": "{{ username }}"}, resp)
    assert failure == "jsonpath $.user: cannot render '{{ username }}': 'username' is undefined"
    failure = check({"contains": "Hello {{ who }}", "message": "not greeted"}, response("Hello"))
    assert failure == "body: cannot render 'Hello {{ who }}': 'who' is undefined"  # not hidden by message
    failure = check({"jsonpath": "$.user", "equals": {"name": "{{ username }}"}}, resp)
    assert failure == """jsonpath $.user: cannot render {"name": "{{ username }}"}: 'username' is undefined"""


def test_broken_expression_is_a_failure_not_an_exception():
    failure = check({"jsonpath": "$.n", "equals": "{{ 1 // zero }}"}, json_response({"n": 1}), {"zero": 0})
    assert failure.startswith("jsonpath $.n: cannot render '{{ 1 // zero }}': ZeroDivisionError: ")


def test_jsonpath_several_matches_test_the_first():
    resp = json_response({"items": [{"name": "pen"}, {"name": "book"}]})
    assert check({"jsonpath": "$.items[*].name", "equals": "pen"}, resp) is None
    assert check({"jsonpath": "$.items[*].name", "equals": "book"}, resp) == (
        "jsonpath $.items[*].name: expected 'book', got 'pen'"
    )


def test_jsonpath_missing():
    resp = json_response({"a": 1})
    assert check({"jsonpath": "$.b", "equals": 1}, resp) == "jsonpath $.b: not found, expected 1"
    assert check({"jsonpath": "$.b", "contains": "x"}, resp) == "jsonpath $.b: not found"
    assert check({"jsonpath": "$.b", "matches": "x"}, resp) == "jsonpath $.b: not found"
    assert check({"jsonpath": "$.b", "not_contains": "x"}, resp) is None


def test_jsonpath_contains_not_contains_matches():
    resp = json_response({"message": "Order 1234 accepted", "code": 1234})
    assert check({"jsonpath": "$.message", "contains": "accepted"}, resp) is None
    assert check({"jsonpath": "$.message", "contains": "rejected"}, resp) == (
        "jsonpath $.message: 'Order 1234 accepted' does not contain 'rejected'"
    )
    assert check({"jsonpath": "$.message", "contains": "ACCEPTED", "ignore_case": True}, resp) is None
    assert check({"jsonpath": "$.message", "not_contains": "accepted"}, resp) == (
        "jsonpath $.message: 'Order 1234 accepted' contains 'accepted'"
    )
    assert check({"jsonpath": "$.code", "matches": r"^\d{4}$"}, resp) is None
    assert check({"jsonpath": "$.message", "matches": r"^\d+$"}, resp) == (
        r"jsonpath $.message: 'Order 1234 accepted' does not match '^\d+$'"
    )
    assert check({"jsonpath": "$.message", "matches": "^order", "ignore_case": True}, resp) is None


def test_jsonpath_exists():
    resp = json_response({"token": "abc", "empty": None, "items": [{"id": 1}, {"id": 2}]})
    assert check({"jsonpath": "$.token", "exists": True}, resp) is None
    assert check({"jsonpath": "$.empty", "exists": True}, resp) is None  # present, even if null
    assert check({"jsonpath": "$.items[?(@.id == 2)]", "exists": True}, resp) is None  # any match
    assert check({"jsonpath": "$.error", "exists": True}, resp) == "jsonpath $.error: not found"
    assert check({"jsonpath": "$.error", "exists": False}, resp) is None
    assert check({"jsonpath": "$.token", "exists": False}, resp) == "jsonpath $.token: expected none, found 'abc'"
    assert checkpoint({"jsonpath": "$.error", "exists": False}).description == "jsonpath $.error does not exist"


def test_jsonpath_on_a_non_json_body_fails_with_a_reason():
    failure = check({"jsonpath": "$.status", "equals": "ok"}, response("<h1>502 Bad Gateway</h1>"))
    assert failure == "jsonpath $.status: body is not JSON: '<h1>502 Bad Gateway</h1>'"
    assert check({"jsonpath": "$.a", "exists": True}, response(b"")) == "jsonpath $.a: body is empty, not JSON"


def test_long_values_are_truncated():
    resp = json_response({"text": "x" * 500})
    failure = check({"jsonpath": "$.text", "equals": "short"}, resp)
    assert failure == "jsonpath $.text: expected 'short', got '" + "x" * 79 + "…'"


# ------------------------------------------------------------------------------------------------------ xpath


def test_xpath_on_an_html_login_page():
    page = response(LOGIN_PAGE, headers=[("Content-Type", "text/html")])
    session = "//div[@class='btnbox']/input[@name='session']/@value"
    assert check({"xpath": session, "exists": True}, page) is None
    assert check({"xpath": session, "equals": "9f86d081"}, page) is None
    assert check({"xpath": "//h1", "contains": "Welcome"}, page) is None
    assert check({"xpath": "//title", "equals": "Log out"}, page) == "xpath //title: expected 'Log out', got 'Log in'"
    assert check({"xpath": "//form", "exists": False}, page) is None


def test_xpath_on_xml():
    resp = response(
        b"<order><id>17</id><line/><line/><state>paid</state></order>",
        headers=[("Content-Type", "application/xml")],
    )
    assert check({"xpath": "/order/state", "equals": "paid"}, resp) is None
    assert check({"xpath": "count(//line)", "equals": 2}, resp) is None
    assert check({"xpath": "/order/id", "equals": 17}, resp) is None  # text against a number: as text
    assert check({"xpath": "/order/id", "matches": r"^\d+$"}, resp) is None
    bad = response(b"<order>", headers=[("Content-Type", "application/xml")])
    assert check({"xpath": "/order", "exists": True}, bad).startswith("xpath /order: body is not XML")


# ----------------------------------------------------------------------------------------------------- header


def test_header_checks():
    resp = response(headers=[("Content-Type", "application/json; charset=utf-8"), ("Set-Cookie", "a=1")])
    assert check({"header": "content-type", "contains": "json"}, resp) is None
    assert check({"header": "Content-Type", "equals": "text/html"}, resp) == (
        "header Content-Type: expected 'text/html', got 'application/json; charset=utf-8'"
    )
    assert check({"header": "Set-Cookie", "exists": True}, resp) is None
    assert check({"header": "Location", "exists": True}, resp) == "header Location: not found"
    assert check({"header": "Location", "exists": False}, resp) is None
    assert check({"header": "Location", "equals": "/home"}, resp) == "header Location: not found, expected '/home'"


# ---------------------------------------------------------------------------------------------- time and size


def test_max_time():
    assert checkpoint({"max_time": "500ms"}).description == "response time <= 500 ms"
    assert check({"max_time": "500ms"}, response(elapsed_ms=499.9)) is None
    assert check({"max_time": "500ms"}, response(elapsed_ms=500.0)) is None
    assert check({"max_time": "500ms"}, response(elapsed_ms=812.3)) == "response time 812 ms > 500 ms"
    assert check({"max_time": "500ms"}, response(elapsed_ms=500.4)) == "response time 500.4 ms > 500 ms"
    assert check({"max_time": 2}, response(elapsed_ms=2500)) == "response time 2500 ms > 2000 ms"


def test_size():
    assert checkpoint({"max_size": 10}).description == "body size <= 10 bytes"
    assert checkpoint({"min_size": 1}).description == "body size >= 1 bytes"
    assert check({"max_size": 10}, response(b"x" * 10)) is None
    assert check({"max_size": 10}, response(b"x" * 11)) == "body size 11 bytes > 10 bytes"
    assert check({"min_size": 1}, response(b"x")) is None
    assert check({"min_size": 1}, response(b"")) == "body size 0 bytes < 1 bytes"


# ----------------------------------------------------------------------------------------------------- common


@pytest.mark.parametrize(
    "spec",
    [
        {"status": 200},
        {"contains": "x"},
        {"not_contains": "x"},
        {"matches": "x"},
        {"jsonpath": "$.a", "exists": False},
        {"xpath": "//a", "not_contains": "x"},
        {"header": "X", "exists": False},
        {"max_time": 10},
        {"max_size": 100},
        {"contains": "x", "message": "custom"},
    ],
)
def test_network_error_fails_every_checkpoint_with_its_error(spec):
    assert check(spec, response(status=0, error="timed out after 10 s")) == "timed out after 10 s"


def test_custom_message_replaces_the_generated_one():
    spec = {"contains": "Welcome", "message": "the home page did not load"}
    assert check(spec, response("Error")) == "the home page did not load"
    assert check(spec, response("Welcome")) is None


def test_on_fail_is_carried():
    assert checkpoint({"status": 200, "on_fail": "stop_user"}).on_fail == "stop_user"
    assert checkpoint({"contains": "x"}).on_fail == "continue"


@pytest.mark.parametrize(
    "spec",
    [
        {"contains": "échec"},
        {"not_contains": "échec"},
        {"contains": ""},
        {"contains": "Échec", "ignore_case": True},
        {"contains": "{{ word }}"},
        {"jsonpath": "$.a", "equals": 1},
    ],
)
@pytest.mark.parametrize("text", ["", "un échec", "un ÉCHEC", '{"a": 1}', "échec" * 3])
def test_a_text_message_matched_as_it_is_agrees_with_the_checkpoint(spec: dict[str, Any], text: str) -> None:
    """A WebSocket reply is matched on its text when the checkpoint allows it: the same verdict as on the
    message as a response (its body the text in UTF-8)."""
    compiled = checkpoint(spec)
    on_text = compiled.text_test()
    if "{{" in str(spec) or "ignore_case" in spec or "jsonpath" in spec:
        assert on_text is None  # needs the variables, folding, or parsing: the checkpoint decides
        return
    assert on_text is not None
    as_response = Response("MESSAGE", "ws://test/", 200, "text message", [], text.encode(), charset="utf-8")
    assert on_text(text) == (compiled.check(as_response, {}) is None)
