"""Correlation at run time: extractors save values from responses into a user's variables.

Everything expensive (regex, JSONPath and XPath compilation, boundary preparation) happens once in
``compile_extractor``; ``Extractor.extract`` only searches. The JSONPath and XPath finders are shared with
the checkpoints (``runner.compile.checkpoints``).
"""

from __future__ import annotations

import copy
import math
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from lxml import etree

from runner.http.cookies import parse_set_cookie
from runner.http.response import Response
from runner.scenario.jsonpath import compile_jsonpath
from runner.scenario.model import Extract
from runner.scenario.scripting import Script, describe

__all__ = [
    "CookieGetter",
    "Extractor",
    "NoValue",
    "compile_extractor",
    "json_finder",
    "shorten",
    "xpath_finder",
]


class CookieGetter(Protocol):
    """The user's cookie jar, as far as extractors need it."""

    def get(self, name: str, /) -> str | None: ...


class NoValue(Exception):
    """The response cannot hold the value at all (the body is not JSON, not XML …); the text says why."""


Finder = Callable[[Response], list[Any]]
Values = Callable[[Response, CookieGetter | None], Iterable[Any]]


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters for a message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------------------------------------- finders


def json_finder(expr: str) -> Finder:
    """``find(response) -> matches`` of a JSONPath in the JSON body; ``NoValue`` for a non-JSON body."""
    find = compile_jsonpath(expr)

    def find_in(response: Response) -> list[Any]:
        try:
            document = response.json()
        except ValueError:
            if not response.body.strip():
                raise NoValue("body is empty, not JSON") from None
            raise NoValue(f"body is not JSON: '{shorten(response.text.strip(), 40)}'") from None
        try:
            return find(document)
        except Exception as exc:  # a filter expression the document does not fit
            raise NoValue(f"jsonpath error: {exc}") from None

    return find_in


_STRING = etree.XPath("string()", smart_strings=False)


def _xpath_value(item: Any) -> Any:
    if isinstance(item, str):
        return item
    if isinstance(item, etree._Element):
        return _STRING(item)  # text_content(): the concatenated text of the element and its descendants
    return str(item)  # namespace nodes come as (prefix, uri) tuples


def xpath_finder(expr: str, document: str = "auto") -> Finder:
    """``find(response) -> values`` of an XPath in the HTML or XML body.

    Node results become strings (attribute values, text nodes, the text content of elements); XPath
    functions give their value: a bool, a str, an int for integral numbers (``count()``), else a float.
    ``NaN`` (``number()`` of nothing) is no value. Raises ``NoValue`` when the body cannot be parsed.
    """
    xpath = etree.XPath(expr, smart_strings=False)

    def find_in(response: Response) -> list[Any]:
        as_xml = response.is_xml if document == "auto" else document == "xml"
        try:
            root = response.xml if as_xml else response.html
            result = xpath(root)
        except etree.XPathError as exc:
            raise NoValue(f"xpath error: {exc}") from None
        except (ValueError, etree.LxmlError) as exc:
            raise NoValue(str(exc) if as_xml else f"body is not HTML: {exc}") from None
        if not as_xml and response.html_cut and (not result or isinstance(result, bool | float)):
            raise NoValue(response.html_cut)  # the answer may lie in the part lxml cut off
        if isinstance(result, list):
            return [_xpath_value(item) for item in result]
        if isinstance(result, float):
            if math.isnan(result):
                return []
            return [int(result) if result.is_integer() else result]
        return [result]  # bool or str

    return find_in


# ----------------------------------------------------------------------------------------------- sources


def _regex_values(
    pattern: str, group: int | str | None, ignore_case: bool, header: str | None = None
) -> tuple[Values, str]:
    """A regex's matches in the body, or in each value of ``header`` (``Location: /ticket/7`` -> ``7``)."""
    regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    if group is None:
        group = 1 if regex.groups else 0
    elif isinstance(group, int) and group > regex.groups:
        raise ValueError(f"regex {pattern!r} has {regex.groups} group(s), no group {group}")
    elif isinstance(group, str) and group not in regex.groupindex:
        raise ValueError(f"regex {pattern!r} has no group named {group!r}")

    def values(response: Response, _cookies: CookieGetter | None) -> Iterator[str]:
        for text in (response.text,) if header is None else response.header_values(header):
            for match in regex.finditer(text):
                value = match.group(group)
                if value is not None:  # skip matches where an optional group took no part
                    yield value

    shown = f" group {group}" if regex.groups or group != 0 else ""
    return values, ("" if header is None else f"header {header} ") + f"regex '{pattern}'{shown}"


def _boundary_values(left: str, right: str, ignore_case: bool) -> Values:
    """LoadRunner's LB/RB: the text between each left boundary and the next right one, non-overlapping."""
    if ignore_case:
        left_re = re.compile(re.escape(left), re.IGNORECASE)
        right_re = re.compile(re.escape(right), re.IGNORECASE)

        def values(response: Response, _cookies: CookieGetter | None) -> Iterator[str]:
            text, pos = response.text, 0
            while (lb := left_re.search(text, pos)) is not None:
                rb = right_re.search(text, lb.end())
                if rb is None:
                    return
                yield text[lb.end() : rb.start()]
                pos = rb.end()

        return values

    skip, right_len = len(left), len(right)

    def values_exact(response: Response, _cookies: CookieGetter | None) -> Iterator[str]:
        text, find = response.text, response.text.find
        pos = find(left)
        while pos >= 0:
            start = pos + skip
            end = find(right, start)
            if end < 0:
                return
            yield text[start:end]
            pos = find(left, end + right_len)

    return values_exact


def _cookie_values(name: str) -> Values:
    def values(response: Response, cookies: CookieGetter | None) -> list[str]:
        found, deleted, now = [], False, time.time()
        for header in response.header_values("set-cookie"):
            parsed = parse_set_cookie(header, now)
            if parsed is not None and parsed.name == name:
                if parsed.deleted(now):
                    deleted = True
                else:
                    found.append(parsed.value)
        if found:
            return found
        if deleted:
            raise NoValue("this response deletes the cookie")
        held = cookies.get(name) if cookies is not None else None
        return [] if held is None else [held]

    return values


def _values_and_description(spec: Extract) -> tuple[Values, str]:
    kind = spec.kind
    if kind == "regex":
        assert spec.regex is not None
        return _regex_values(spec.regex, spec.group, spec.ignore_case)
    if kind == "boundary":
        assert spec.boundary is not None
        left, right = spec.boundary.left, spec.boundary.right
        return _boundary_values(left, right, spec.ignore_case), f"boundary '{left}' … '{right}'"
    if kind == "jsonpath":
        assert spec.jsonpath is not None
        find = json_finder(spec.jsonpath)
        return lambda response, _cookies: find(response), f"jsonpath {spec.jsonpath}"
    if kind == "xpath":
        assert spec.xpath is not None
        find = xpath_finder(spec.xpath, spec.document)
        return lambda response, _cookies: find(response), f"xpath {spec.xpath}"
    if kind == "header":
        name = spec.header
        assert name is not None
        if spec.regex is not None:
            return _regex_values(spec.regex, spec.group, spec.ignore_case, name)
        return lambda response, _cookies: response.header_values(name), f"header {name}"
    if kind == "cookie":
        assert spec.cookie is not None
        return _cookie_values(spec.cookie), f"cookie {spec.cookie}"
    if kind == "python":
        return lambda response, _cookies: (), f"python {spec.python}"
    return lambda response, _cookies: (response.status,), "status"


# ----------------------------------------------------------------------------------------------- extractor

_MISS = object()
_BODY_KINDS = frozenset(("regex", "boundary", "jsonpath", "xpath"))


def _select(match: str | int, values: Iterable[Any]) -> tuple[Any, str]:
    """(the chosen value, "") or (``_MISS``, why)."""
    if match == "first":
        for value in values:
            return value, ""
    elif match == "last":
        tail = deque(values, maxlen=1)
        if tail:
            return tail[0], ""
    elif isinstance(match, int):
        count = 0
        for count, value in enumerate(values, 1):
            if count == match:
                return value, ""
        if count:
            return _MISS, f"found only {count} match{'es' if count > 1 else ''} (match: {match})"
    else:
        found = list(values)
        if found:
            return (found if match == "all" else random.choice(found)), ""
    return _MISS, "matched nothing"


class Extractor:
    """One compiled ``extract`` entry: saves a value into ``variable``."""

    __slots__ = (
        "_default",
        "_has_default",
        "_match",
        "_reads_body",
        "_values",
        "description",
        "fail_on_miss",
        "variable",
    )

    def __init__(self, variable: str, spec: Extract) -> None:
        self.variable = variable
        self._values, self.description = _values_and_description(spec)
        self._reads_body = spec.kind in _BODY_KINDS
        self._match = spec.match
        self.fail_on_miss = spec.missing_policy == "fail"
        self._has_default = "default" in spec.model_fields_set
        self._default = spec.default

    def extract(self, response: Response, variables: dict[str, Any], cookies: CookieGetter | None = None) -> str | None:
        """Save the value into ``variables[self.variable]``; None when found.

        On no match: save the default (when the spec has one; otherwise leave the variable as it was) and
        return a message; the caller fails the request or warns, as ``fail_on_miss`` says.
        """
        if not response.status:
            return self._miss(variables, f": no response ({response.error or 'no error given'})")
        if self._reads_body and response.unread:
            return self._miss(variables, f": {response.unread}")
        try:
            value, why = _select(self._match, self._values(response, cookies))
        except NoValue as exc:
            return self._miss(variables, f": {exc}")
        if value is _MISS:
            return self._miss(variables, " " + why)
        variables[self.variable] = value
        return None

    def _miss(self, variables: dict[str, Any], why: str) -> str:
        if self._has_default:
            default = self._default
            variables[self.variable] = copy.deepcopy(default) if isinstance(default, dict | list) else default
        return f"{self.variable}: {self.description}{why}"

    def __repr__(self) -> str:
        return f"<Extractor {self.variable}: {self.description}>"


class _PythonExtractor(Extractor):
    """An extractor that is a function of the scenario's module: f(response, variables) -> value or None."""

    __slots__ = ("_file", "_function")

    def __init__(self, variable: str, spec: Extract, script: Script) -> None:
        super().__init__(variable, spec)
        assert spec.python is not None
        self._function = script.function(spec.python)
        self._file = str(script.path)

    def extract(self, response: Response, variables: dict[str, Any], cookies: CookieGetter | None = None) -> str | None:
        if not response.status:
            return self._miss(variables, f": no response ({response.error or 'no error given'})")
        try:
            value = self._function(response, variables)
        except Exception as exc:
            return self._miss(variables, f": {describe(exc, self._file)}")
        if value is None:
            return self._miss(variables, " found nothing")
        variables[self.variable] = value
        return None


def compile_extractor(variable: str, spec: Extract, script: Script | None = None) -> Extractor:
    """Compile one extractor; raises ``ValueError`` for a regex group the pattern does not have."""
    if spec.python is not None:
        if script is None:
            raise ValueError("a python extractor needs the scenario's python: module")
        return _PythonExtractor(variable, spec, script)
    return Extractor(variable, spec)
