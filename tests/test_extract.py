"""Extractors at run time, specified through the real ``Extract`` model as users write them."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from runner.compile.extract import Extractor, compile_extractor
from runner.http.response import Response
from runner.scenario.model import Extract

LOGIN_PAGE = b"""<!doctype html>
<html><head><title>lrun demo shop - log in</title></head>
<body>
<h1>Welcome to the demo shop</h1>
<script>
var csrf = "c5f3a1";
</script>
<form method="post" action="/login">
<label>User <input type="text" name="user"/></label>
<label>Password <input type="password" name="password"/></label>
<div class="btnbox"><input type="hidden" name="session" value="9f86d081884c7d65"/>
<input type="submit" value="Log in"/></div>
<input type="hidden" name="session" value="not-in-the-btnbox"/>
</form>
</body></html>"""

ITEMS_XML = b"""<?xml version="1.0"?>
<catalog>
  <item id="1"><name>Pen</name><price>1.50</price></item>
  <item id="2"><name>Book <b>deluxe</b></name><price>12</price></item>
  <item id="3"><name>Lamp</name><price>30</price></item>
</catalog>"""


Headers = list[tuple[str, str]]


def response(body: bytes | str = b"", status: int = 200, headers: Headers | None = None, **kw: Any) -> Response:
    if isinstance(body, str):
        body = body.encode()
    return Response("GET", "http://test/", status=status, headers=headers, body=body, **kw)


def json_response(document: Any) -> Response:
    return response(json.dumps(document), headers=[("Content-Type", "application/json")])


def xml_response(body: bytes = ITEMS_XML) -> Response:
    return response(body, headers=[("Content-Type", "application/xml; charset=utf-8")])


def html_response(body: bytes = LOGIN_PAGE) -> Response:
    return response(body, headers=[("Content-Type", "text/html; charset=utf-8")])


def extractor(spec: dict[str, Any], variable: str = "v") -> Extractor:
    return compile_extractor(variable, Extract.model_validate(spec))


def run(spec: dict[str, Any], resp: Response, cookies: Any = None) -> tuple[Any, str | None]:
    """(the saved value or the sentinel 'UNSET', the miss message)."""
    variables: dict[str, Any] = {}
    message = extractor(spec).extract(resp, variables, cookies)
    return variables.get("v", "UNSET"), message


# ------------------------------------------------------------------------------------------------------ regex


def test_regex_defaults_to_group_1_when_the_pattern_has_one():
    assert run({"regex": r"id=(\d+)"}, response("a id=42 b id=7")) == ("42", None)


def test_regex_without_group_saves_the_whole_match():
    assert run({"regex": r"id=\d+"}, response("a id=42")) == ("id=42", None)


def test_regex_numbered_and_named_groups():
    body = "user=ann;id=42"
    assert run({"regex": r"user=(\w+);id=(\d+)", "group": 2}, response(body)) == ("42", None)
    assert run({"regex": r"user=(?P<name>\w+)", "group": "name"}, response(body)) == ("ann", None)
    assert run({"regex": r"user=(\w+)", "group": 0}, response(body)) == ("user=ann", None)


def test_regex_group_the_pattern_lacks_is_a_compile_error():
    with pytest.raises(ValueError, match="no group 2"):
        extractor({"regex": r"id=(\d+)", "group": 2})
    with pytest.raises(ValueError, match="no group named 'x'"):
        extractor({"regex": r"id=(?P<id>\d+)", "group": "x"})


def test_regex_skips_matches_where_the_group_took_no_part():
    assert run({"regex": r"error|token=(\w+)"}, response("error then token=abc")) == ("abc", None)


def test_regex_ignore_case():
    assert run({"regex": r"ID=(\d+)"}, response("id=5"))[0] == "UNSET"
    assert run({"regex": r"ID=(\d+)", "ignore_case": True}, response("id=5")) == ("5", None)


def test_regex_description():
    assert extractor({"regex": r"id=(\d+)"}).description == r"regex 'id=(\d+)' group 1"
    assert extractor({"regex": r"id=\d+"}).description == r"regex 'id=\d+'"


@pytest.mark.parametrize(
    ("match", "expected"),
    [("first", "1"), ("last", "3"), ("all", ["1", "2", "3"]), (1, "1"), (2, "2"), (3, "3")],
)
def test_regex_match_choices(match, expected):
    assert run({"regex": r"n=(\d)", "match": match}, response("n=1 n=2 n=3")) == (expected, None)


def test_random_match_picks_among_all():
    random.seed(7)
    seen = {run({"regex": r"n=(\d)", "match": "random"}, response("n=1 n=2 n=3"))[0] for _ in range(60)}
    assert seen == {"1", "2", "3"}


def test_nth_match_beyond_the_matches_is_a_miss():
    value, message = run({"regex": r"n=(\d)", "match": 4}, response("n=1 n=2 n=3"))
    assert value == "UNSET"
    assert message == r"v: regex 'n=(\d)' group 1 found only 3 matches (match: 4)"


@pytest.mark.parametrize("match", ["first", "last", "random", "all", 2])
def test_no_match_is_a_miss_for_every_choice(match):
    value, message = run({"regex": r"n=(\d)", "match": match}, response("nothing here"))
    assert value == "UNSET"
    assert message == r"v: regex 'n=(\d)' group 1 matched nothing"


# --------------------------------------------------------------------------------------------------- boundary


def test_boundary_first_and_all():
    body = '<input name="a"/><input name="b"/><input name="c"/>'
    spec = {"boundary": {"left": 'name="', "right": '"'}}
    assert run(spec, response(body)) == ("a", None)
    assert run({**spec, "match": "all"}, response(body)) == (["a", "b", "c"], None)
    assert run({**spec, "match": "last"}, response(body)) == ("c", None)
    assert run({**spec, "match": 2}, response(body)) == ("b", None)


def test_boundary_occurrences_do_not_overlap():
    # After a value the search resumes past its right boundary: "[b]" is not seen from the first "[".
    spec = {"boundary": {"left": "[", "right": "]"}, "match": "all"}
    assert run(spec, response("[a [b] c] [d]")) == (["a [b", "d"], None)


def test_boundary_empty_value_is_found():
    assert run({"boundary": {"left": 'value="', "right": '"'}}, response('value=""')) == ("", None)


def test_boundary_unclosed_right_is_no_match():
    spec = {"boundary": {"left": "token=", "right": ";"}, "match": "all"}
    assert run(spec, response("token=abc; token=def"))[0] == ["abc"]
    value, message = run(spec, response("token=abc"))
    assert value == "UNSET"
    assert message == "v: boundary 'token=' … ';' matched nothing"


def test_boundary_ignore_case_keeps_the_original_text():
    spec = {"boundary": {"left": "<TITLE>", "right": "</title>"}}
    body = "<html><title>My Shop</TITLE></html>"
    assert run(spec, response(body))[0] == "UNSET"
    assert run({**spec, "ignore_case": True}, response(body)) == ("My Shop", None)


def test_boundary_description():
    description = extractor({"boundary": {"left": 'name="', "right": '"'}}).description
    assert description == "boundary 'name=\"' … '\"'"


# --------------------------------------------------------------------------------------------------- jsonpath


def test_jsonpath_keeps_json_types():
    document = {"token": "abc", "count": 3, "user": {"id": 7}, "ids": [1, 2], "flag": False}
    resp = json_response(document)
    assert run({"jsonpath": "$.token"}, resp) == ("abc", None)
    assert run({"jsonpath": "$.count"}, resp) == (3, None)
    assert run({"jsonpath": "$.user"}, resp) == ({"id": 7}, None)
    assert run({"jsonpath": "$.flag"}, resp) == (False, None)
    assert run({"jsonpath": "$.ids[*]", "match": "all"}, resp) == ([1, 2], None)


def test_jsonpath_filters_and_match_choices():
    resp = json_response({"items": [{"id": 1, "stock": 0}, {"id": 2, "stock": 5}, {"id": 3, "stock": 9}]})
    spec = {"jsonpath": "$.items[?(@.stock > 0)].id"}
    assert run(spec, resp) == (2, None)
    assert run({**spec, "match": "last"}, resp) == (3, None)
    assert run({**spec, "match": "all"}, resp) == ([2, 3], None)


def test_jsonpath_missing_key_is_a_miss():
    value, message = run({"jsonpath": "$.token"}, json_response({"error": "bad"}))
    assert value == "UNSET"
    assert message == "v: jsonpath $.token matched nothing"


def test_jsonpath_on_a_non_json_body_is_a_miss_with_a_reason():
    value, message = run({"jsonpath": "$.token"}, response("<h1>502 Bad Gateway</h1>\n"))
    assert value == "UNSET"
    assert message == "v: jsonpath $.token: body is not JSON: '<h1>502 Bad Gateway</h1>'"
    long_page = "<html><body>" + "x" * 1000 + "</body></html>"
    message = run({"jsonpath": "$.token"}, response(long_page))[1]
    assert message == "v: jsonpath $.token: body is not JSON: '<html><body>" + "x" * 27 + "…'"
    assert run({"jsonpath": "$.token"}, response(b""))[1] == "v: jsonpath $.token: body is empty, not JSON"


# ------------------------------------------------------------------------------------------------------ xpath


def test_xpath_classic_login_page_session():
    spec = {"xpath": "//div[@class='btnbox']/input[@name='session']/@value"}
    assert run(spec, html_response()) == ("9f86d081884c7d65", None)


def test_xpath_saves_plain_strings():
    variables: dict[str, Any] = {}
    extractor({"xpath": "//input[@name='session']/@value"}).extract(html_response(), variables)
    assert type(variables["v"]) is str  # not lxml's smart string, which would keep the whole tree alive


def test_xpath_match_choices_on_html():
    spec = {"xpath": "//input[@name='session']/@value"}
    assert run({**spec, "match": "all"}, html_response()) == (["9f86d081884c7d65", "not-in-the-btnbox"], None)
    assert run({**spec, "match": "last"}, html_response()) == ("not-in-the-btnbox", None)


def test_xpath_elements_give_their_text_content():
    assert run({"xpath": "//h1"}, html_response()) == ("Welcome to the demo shop", None)
    assert run({"xpath": "//item[@id='2']/name"}, xml_response()) == ("Book deluxe", None)


def test_xpath_text_nodes_and_functions():
    resp = xml_response()
    assert run({"xpath": "//item/name/text()", "match": "all"}, resp) == (["Pen", "Book ", "Lamp"], None)
    assert run({"xpath": "count(//item)"}, resp) == (3, None)
    assert run({"xpath": "sum(//price)"}, resp) == (43.5, None)
    assert run({"xpath": "boolean(//item[@id='9'])"}, resp) == (False, None)
    assert run({"xpath": "string(//item[2]/@id)"}, resp) == ("2", None)
    assert run({"xpath": "number(//nothing)"}, resp)[0] == "UNSET"  # NaN


def test_xpath_document_auto_uses_the_content_type():
    # XML is case-sensitive, HTML is not: the same path tells the two parsers apart.
    body = b"<Root><Item>x</Item></Root>"
    spec = {"xpath": "//Item"}
    assert run(spec, xml_response(body)) == ("x", None)
    assert run(spec, html_response(body))[0] == "UNSET"  # the HTML parser lowercases tags
    assert run({"xpath": "//item"}, html_response(body)) == ("x", None)
    assert run({**spec, "document": "xml"}, html_response(body)) == ("x", None)


def test_xpath_html_forced_on_xml():
    assert run({"xpath": "//item[@id='3']/name", "document": "html"}, xml_response()) == ("Lamp", None)


def test_xpath_body_that_is_not_xml_is_a_miss():
    value, message = run({"xpath": "//a"}, xml_response(b"<a><b></a>"))
    assert value == "UNSET"
    assert message.startswith("v: xpath //a: body is not XML")


def test_xpath_unknown_namespace_prefix_is_a_miss_not_an_exception():
    value, message = run({"xpath": "//soap:Body"}, xml_response())
    assert value == "UNSET"
    assert message == "v: xpath //soap:Body: xpath error: Undefined namespace prefix"


def test_xpath_blank_html_body_is_a_miss():
    value, message = run({"xpath": "//a"}, html_response(b"   "))
    assert value == "UNSET"
    assert message.startswith("v: xpath //a: body is not HTML")


# ------------------------------------------------------------------------------------- header, cookie, status


def test_header_is_case_insensitive_with_all_values():
    resp = response(headers=[("X-Trace", "a"), ("Content-Type", "text/plain"), ("x-trace", "b")])
    assert run({"header": "x-TRACE"}, resp) == ("a", None)
    assert run({"header": "X-Trace", "match": "all"}, resp) == (["a", "b"], None)
    assert run({"header": "X-Trace", "match": 2}, resp) == ("b", None)
    assert run({"header": "Location"}, resp) == ("UNSET", "v: header Location matched nothing")


def test_a_regex_on_a_header_takes_the_id_out_of_its_value():
    """``Location: /ticket/7`` -> ``7``: the id alone, so the later URLs keep their literal structure."""
    resp = response(status=303, headers=[("Location", "http://127.0.0.1:8089/ticket/7?new=1"), ("X-Id", "n-9")])
    spec = {"header": "location", "regex": r"^(?:https?://[^/]+)?/ticket/(\d+)"}
    assert run(spec, resp) == ("7", None)
    assert run({**spec, "regex": r"/ticket/(?P<n>\d+)", "group": "n"}, resp) == ("7", None)
    assert run({"header": "Location", "regex": r"/TICKET/\d+", "ignore_case": True}, resp) == ("/ticket/7", None)
    assert run({"header": "Location", "regex": r"/TICKET/(\d+)"}, resp) == (
        "UNSET",
        "v: header Location regex '/TICKET/(\\d+)' group 1 matched nothing",
    )
    every = {"header": "Location", "regex": r"(\d+)", "match": "all"}
    assert run(every, resp) == (["127", "0", "0", "1", "8089", "7", "1"], None)
    two = response(headers=[("Link", "</items/3>; rel=prev"), ("Link", "</items/5>; rel=next")])
    assert run({"header": "link", "regex": r"/items/(\d+)>; rel=next"}, two) == ("5", None)
    assert run({"header": "link", "regex": r"/items/(\d+)", "match": "last"}, two) == ("5", None)
    # only the header is searched, never the body
    assert run({"header": "Location", "regex": "(ticket)"}, response(b"ticket", headers=[("X", "y")]))[0] == "UNSET"
    assert Extract.model_validate({"header": "Location", "regex": "(x)"}).kind == "header"  # with discard_body too


def test_a_header_regex_is_checked_where_it_is_written():
    with pytest.raises(ValueError, match="invalid regular expression"):
        Extract.model_validate({"header": "Location", "regex": "(unclosed"})
    with pytest.raises(ValueError, match="there is no group 2"):
        Extract.model_validate({"header": "Location", "regex": "(a)", "group": 2})
    with pytest.raises(ValueError, match=r"exactly one of.*found regex, jsonpath"):
        Extract.model_validate({"jsonpath": "$.a", "regex": "(a)"})
    with pytest.raises(ValueError, match=r"exactly one of.*found header, cookie"):
        Extract.model_validate({"header": "Location", "cookie": "sid", "regex": "(a)"})


class Jar:
    def __init__(self, **cookies: str) -> None:
        self.cookies = cookies

    def get(self, name: str) -> str | None:
        return self.cookies.get(name)


def test_cookie_from_set_cookie_first_then_jar():
    resp = response(headers=[("Set-Cookie", "sid=new123; Path=/; HttpOnly"), ("Set-Cookie", "other=1")])
    assert run({"cookie": "sid"}, resp, Jar(sid="old")) == ("new123", None)
    assert run({"cookie": "sid"}, response(), Jar(sid="old")) == ("old", None)
    assert run({"cookie": "sid"}, response(), {"sid": "from-a-dict"}) == ("from-a-dict", None)
    assert run({"cookie": "sid"}, response(), Jar()) == ("UNSET", "v: cookie sid matched nothing")
    assert run({"cookie": "sid"}, response()) == ("UNSET", "v: cookie sid matched nothing")


def test_cookie_name_is_exact():
    resp = response(headers=[("Set-Cookie", "SID=upper"), ("Set-Cookie", "sid2=x")])
    assert run({"cookie": "sid"}, resp)[0] == "UNSET"


def test_cookie_deleted_by_this_response_is_a_miss_even_if_the_jar_has_it():
    for deletion in ("sid=; Max-Age=0", "sid=gone; Expires=Thu, 01-Jan-1970 00:00:01 GMT"):
        value, message = run({"cookie": "sid"}, response(headers=[("Set-Cookie", deletion)]), Jar(sid="old"))
        assert value == "UNSET"
        assert message == "v: cookie sid: this response deletes the cookie"


def test_cookie_with_future_expiry_is_kept():
    resp = response(headers=[("Set-Cookie", "sid=abc; Expires=Fri, 31 Dec 2100 23:59:59 GMT")])
    assert run({"cookie": "sid"}, resp) == ("abc", None)
    resp = response(headers=[("Set-Cookie", "sid=abc; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=600")])
    assert run({"cookie": "sid"}, resp) == ("abc", None)  # Max-Age wins


def test_status_is_saved_as_int():
    assert run({"status": True}, response(status=302)) == (302, None)


# ----------------------------------------------------------------------------------------------------- misses


def test_network_error_is_a_miss_for_every_kind():
    failed = response(status=0, error="connection refused")
    for spec in ({"status": True}, {"jsonpath": "$.a"}, {"regex": "x"}, {"cookie": "sid"}):
        value, message = run(spec, failed, Jar(sid="x"))
        assert value == "UNSET"
        assert message is not None
        assert message.endswith(": no response (connection refused)")
    assert run({"jsonpath": "$.a"}, failed)[1] == "v: jsonpath $.a: no response (connection refused)"


def test_miss_policy_defaults_to_fail_and_to_warn_with_a_default():
    assert extractor({"regex": "x"}).fail_on_miss is True
    assert extractor({"regex": "x", "default": "none"}).fail_on_miss is False
    assert extractor({"regex": "x", "default": "none", "on_missing": "fail"}).fail_on_miss is True
    assert extractor({"regex": "x", "on_missing": "warn"}).fail_on_miss is False


def test_miss_saves_the_default_when_given():
    variables: dict[str, Any] = {"v": "previous"}
    message = extractor({"jsonpath": "$.token", "default": "anonymous"}).extract(json_response({}), variables)
    assert message == "v: jsonpath $.token matched nothing"
    assert variables["v"] == "anonymous"


def test_explicit_null_default_is_saved():
    variables: dict[str, Any] = {"v": "previous"}
    extractor({"regex": "x", "default": None}).extract(response("y"), variables)
    assert variables["v"] is None


def test_miss_without_default_leaves_the_variable_as_it_was():
    variables: dict[str, Any] = {"v": "previous"}
    message = extractor({"regex": "id=(\\d+)", "on_missing": "warn"}).extract(response("y"), variables)
    assert message == r"v: regex 'id=(\d+)' group 1 matched nothing"
    assert variables == {"v": "previous"}


def test_mutable_default_is_not_shared_between_users():
    ex = extractor({"regex": "x", "default": []})
    first: dict[str, Any] = {}
    second: dict[str, Any] = {}
    ex.extract(response("y"), first)
    ex.extract(response("y"), second)
    first["v"].append(1)
    assert second["v"] == []


def test_found_value_overwrites_and_message_names_the_variable():
    token = extractor({"jsonpath": "$.token"}, variable="token")
    variables: dict[str, Any] = {"token": "old"}
    assert token.extract(json_response({"token": "new"}), variables) is None
    assert variables == {"token": "new"}
    assert token.extract(json_response({}), variables) == "token: jsonpath $.token matched nothing"


@pytest.mark.parametrize(
    "text",
    ['{"a": 1}', ' {"a":1}', '{"a":1}  \n', '{"a":1} x', '\ufeff{"a":1}', "", "nul", "[1,2", '"x"', "{}\x0b", "12 "],
)
def test_a_body_parses_as_json_loads_parses_it_and_fails_with_its_words(text: str) -> None:
    def outcome(parse: Any) -> tuple[str, Any]:
        try:
            return "parsed", parse()
        except ValueError as exc:
            return "refused", str(exc)

    response = Response("GET", "http://x/", 200, "OK", [], text.encode())
    assert outcome(response.json) == outcome(lambda: json.loads(text))
