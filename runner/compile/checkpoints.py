"""Checkpoints at run time: does a response meet the scenario's expectations?

``compile_checks`` turns a request's ``check`` list into ``Checkpoint`` objects once; ``Checkpoint.check``
runs per response and returns None or a message a tester reads at once (``status 404, expected 200``).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from http import HTTPStatus
from typing import Any

from jinja2 import Undefined, UndefinedError

from runner.compile.extract import NoValue, json_finder, shorten, xpath_finder
from runner.http.response import Response
from runner.scenario.model import Check
from runner.scenario.scripting import Script, describe
from runner.scenario.templating import Constant, compile_template, compile_value

__all__ = ["Checkpoint", "compile_checkpoint", "compile_checks"]

Render = Callable[[Mapping[str, Any]], Any]


class _Unrenderable(Exception):
    """An expected value could not be rendered (an undefined variable …): a scenario bug, not a failure."""


def _text(value: Any) -> str:
    """A value as a tester reads it in a response: JSON spelling for true, false, null, objects."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _show(value: Any) -> str:
    """A value for a message: strings quoted, everything cut to about 80 characters."""
    text = shorten(_text(value))
    return f"'{text}'" if isinstance(value, str) else text


def _fail_if_undefined(value: Any) -> None:
    """Native rendering (``"{{ name }}"`` keeping its type) returns Undefined instead of raising."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    elif isinstance(value, dict):
        for item in value.values():
            _fail_if_undefined(item)
    elif isinstance(value, list):
        for item in value:
            _fail_if_undefined(item)


def _render(render: Render, variables: Mapping[str, Any], source: Any, subject: str) -> Any:
    try:
        value = render(variables)
        _fail_if_undefined(value)
        return value
    except Exception as exc:  # user-written template expressions can fail in many ways
        reason = exc.message if isinstance(exc, UndefinedError) else f"{type(exc).__name__}: {exc}"
        raise _Unrenderable(f"{subject}: cannot render {_show(source)}: {reason}") from None


def _equal(actual: Any, expected: Any, ignore_case: bool) -> bool:
    """``actual == expected``; when exactly one side is a string, compare as text."""
    if isinstance(actual, str) != isinstance(expected, str):
        actual, expected = _text(actual), _text(expected)
    elif isinstance(actual, bool) != isinstance(expected, bool):
        return False  # True == 1 in Python, not in a response
    if ignore_case and isinstance(actual, str):
        return actual.lower() == expected.lower()
    return actual == expected


_UTF8, _ASCII_COMPATIBLE, _OTHER = 2, 1, 0
_PROBE = "<a href='x'>Az09 {}[]:;,.!?=&%#@/\\-_+*</a>\r\n\t"


@lru_cache(maxsize=64)
def _charset_kind(charset: str) -> int:
    """Whether text can be searched in a body of this charset as UTF-8 bytes, ASCII bytes, or not at all."""
    try:
        name = codecs.lookup(charset).name
    except LookupError:
        return _UTF8  # an unknown charset: decoding would fail too; bytes are the best guess
    if name == "utf-8":
        return _UTF8
    try:
        return _ASCII_COMPATIBLE if _PROBE.encode(name) == _PROBE.encode() else _OTHER
    except (UnicodeError, LookupError):
        return _OTHER


class _Needle:
    """The text of a contains / not_contains, compiled once; a constant is encoded once too."""

    __slots__ = ("_data", "_folded", "_render", "ignore_case", "is_constant", "source")

    def __init__(self, source: str, ignore_case: bool) -> None:
        template = compile_template(source)
        self.source = source
        self.ignore_case = ignore_case
        self._render: Render | None = None if template.is_constant else template.render
        self.is_constant = template.is_constant
        self._folded = source.lower() if ignore_case else source
        self._data = self._folded.encode()

    def render(self, variables: Mapping[str, Any], subject: str) -> str:
        if self._render is None:
            return self.source
        return str(_render(self._render, variables, self.source, subject))

    def in_text(self, text: str, needle: str) -> bool:
        if self.ignore_case:
            return needle.lower() in text.lower()
        return needle in text

    def in_body(self, response: Response, variables: Mapping[str, Any]) -> tuple[bool, str]:
        """(found, the needle as rendered). Searches the body's bytes unless its charset forbids it."""
        if self._render is None:
            needle, folded, data = self.source, self._folded, self._data
        else:
            needle = self.render(variables, "body")
            folded, data = (needle.lower() if self.ignore_case else needle), None
        kind = _charset_kind(response.charset)
        if (kind == _UTF8 and not self.ignore_case) or (kind != _OTHER and folded.isascii()):
            body = response.body.lower() if self.ignore_case else response.body
            return (data if data is not None else folded.encode()) in body, needle
        text = response.text.lower() if self.ignore_case else response.text
        return folded in text, needle


# ----------------------------------------------------------------------------------------------- checkpoints


class Checkpoint:
    """One compiled checkpoint. ``check`` returns None when the response passes, else a failure message."""

    __slots__ = ("description", "message", "on_fail")
    reads_body = False  # a checkpoint on the body fails when the body was not kept (``Response.unread``)

    def __init__(self, description: str, on_fail: str = "continue", message: str | None = None) -> None:
        self.description = description  # as written: the checkpoint's name in the results
        self.on_fail = on_fail
        self.message = message  # replaces the generated message of a failure

    def label(self, variables: Mapping[str, Any]) -> str:
        """The description with the values compared as rendered now (``lrun debug`` shows it)."""
        return self.description

    def check(self, response: Response, variables: Mapping[str, Any]) -> str | None:
        """None when it passes; else the failure message (the checkpoint's ``message`` when set).

        A response that never arrived (status 0) or that failed after its status (too many redirects, a body
        that cannot be decoded) fails with its error; a body that was not kept fails the checkpoints on the
        body; a template that cannot be rendered fails with the error naming the variable: none of them is
        hidden behind ``message``.
        """
        if not response.status or response.error:
            return response.error or "no response"
        if self.reads_body and response.unread:
            return response.unread
        try:
            failure = self._test(response, variables)
        except _Unrenderable as exc:
            return str(exc)
        if failure is None:
            return None
        return self.message or failure

    def _test(self, response: Response, variables: Mapping[str, Any]) -> str | None:
        raise NotImplementedError

    def text_test(self) -> Callable[[str], bool] | None:
        """A predicate on a received text message equal to ``check(message as a response) is None``, when one
        needs neither a ``Response`` nor the variables (a WebSocket reply matched without building objects)."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


class _DefaultStatus(Checkpoint):
    """Added when a request has no status checkpoint: 4xx and 5xx fail."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("status < 400")

    def _test(self, response: Response, variables: Mapping[str, Any]) -> str | None:
        if response.status < 400:
            return None
        reason = response.reason
        if not reason:
            try:
                reason = HTTPStatus(response.status).phrase
            except ValueError:
                reason = ""
        return f"HTTP {response.status} {reason}".rstrip()


class _Status(Checkpoint):
    __slots__ = ("_classes", "_codes", "_expected")

    def __init__(self, spec: Check) -> None:
        wanted = spec.status if isinstance(spec.status, list) else [spec.status]
        self._expected = " or ".join(str(item) for item in wanted)
        self._codes = frozenset(item for item in wanted if isinstance(item, int))
        self._classes = frozenset(int(item[0]) for item in wanted if isinstance(item, str))
        super().__init__(f"status is {self._expected}", spec.on_fail, spec.message)

    def _test(self, response: Response, variables: Mapping[str, Any]) -> str | None:
        status = response.status
        if status in self._codes or status // 100 in self._classes:
            return None
        return f"status {status}, expected {self._expected}"


def _ms(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


class _MaxTime(Checkpoint):
    __slots__ = ("_limit_ms",)

    def __init__(self, spec: Check) -> None:
        assert spec.max_time is not None
        self._limit_ms = spec.max_time * 1000
        super().__init__(f"response time <= {_ms(self._limit_ms)} ms", spec.on_fail, spec.message)

    def _test(self, response: Response, variables: Mapping[str, Any]) -> str | None:
        elapsed = response.elapsed_ms
        if elapsed <= self._limit_ms:
            return None
        shown = f"{elapsed:.0f}"
        if float(shown) <= self._limit_ms:  # 500.4 ms over a 500 ms limit
            shown = _ms(elapsed)
        return f"response time {shown} ms > {_ms(self._limit_ms)} ms"


class _Size(Checkpoint):
    __slots__ = ("_max", "_min")

    def __init__(self, spec: Check) -> None:
        self._max, self._min = spec.max_size, spec.min_size
        bound = f"<= {self._max}" if self._max is not None else f">= {self._min}"
        super().__init__(f"body size {bound} bytes", spec.on_fail, spec.message)

    def _test(self, response: Response, variables: Mapping[str, Any]) -> str | None:
        size = response.size
        if self._max is not None and size > self._max:
            return f"body size {size} bytes > {self._max} bytes"
        if self._min is not None and size < self._min:
            return f"body size {size} bytes < {self._min} bytes"
        return None


def _label(check: Checkpoint, head: str, needle: _Needle, variables: Mapping[str, Any], case: str) -> str:
    if needle.is_constant:
        return check.description
    try:
        return f"{head} {_show(needle.render(variables, head))}{case}"
    except _Unrenderable:
        return check.description


class _BodyContains(Checkpoint):
    __slots__ = ("_case", "_needle", "_negate", "_verb")
    reads_body = True

    def __init__(self, spec: Check, negate: bool) -> None:
        source = spec.not_contains if negate else spec.contains
        assert source is not None
        self._needle = _Needle(source, spec.ignore_case)
        self._negate = negate
        verb = "does not contain" if negate else "contains"
        self._verb = f"body {verb}"
        self._case = _case(spec)
        super().__init__(f"{self._verb} {_show(source)}{self._case}", spec.on_fail, spec.message)

    def label(self, variables: Mapping[str, Any]) -> str:
        return _label(self, self._verb, self._needle, variables, self._case)

    def text_test(self) -> Callable[[str], bool] | None:
        needle = self._needle
        if not needle.is_constant or needle.ignore_case:
            return None
        source, negate = needle.source, self._negate
        if negate:
            return lambda text: source not in text
        return lambda text: source in text

    def _test(self, response: Response, variables: Mapping[str, Any]) -> str | None:
        found, needle = self._needle.in_body(response, variables)
        if found == self._negate:
            return f"body {'contains' if found else 'does not contain'} {_show(needle)}"
        return None


class _BodyMatches(Checkpoint):
    __slots__ = ("_regex",)
    reads_body = True

    def __init__(self, spec: Check) -> None:
        assert spec.matches is not None
        self._regex = re.compile(spec.matches, re.IGNORECASE if spec.ignore_case else 0)
        super().__init__(f"body matches '{spec.matches}'{_case(spec)}", spec.on_fail, spec.message)

    def _test(self, response: Response, variables: Mapping[str, Any]) -> str | None:
        if self._regex.search(response.text):
            return None
        return f"body does not match '{self._regex.pattern}'"


def _case(spec: Check) -> str:
    return _case_of(spec.ignore_case)


def _case_of(ignore_case: bool) -> str:
    return " (ignoring case)" if ignore_case else ""


class _Value(Checkpoint):
    """A predicate on a jsonpath, xpath or header value; equals / contains / matches test the first match."""

    __slots__ = ("_find", "_ignore_case", "_subject", "reads_body")

    def __init__(self, spec: Check, condition: str) -> None:
        self._subject, self._find = _subject(spec)
        self._ignore_case = spec.ignore_case
        self.reads_body = spec.header is None
        super().__init__(f"{self._subject} {condition}", spec.on_fail, spec.message)

    def _test(self, response: Response, variables: Mapping[str, Any]) -> str | None:
        try:
            values = self._find(response)
        except NoValue as exc:
            return f"{self._subject}: {exc}"
        return self._judge(values, variables)

    def _judge(self, values: list[Any], variables: Mapping[str, Any]) -> str | None:
        raise NotImplementedError


class _Exists(_Value):
    __slots__ = ("_wanted",)

    def __init__(self, spec: Check) -> None:
        self._wanted = bool(spec.exists)
        super().__init__(spec, "exists" if self._wanted else "does not exist")

    def _judge(self, values: list[Any], variables: Mapping[str, Any]) -> str | None:
        if bool(values) == self._wanted:
            return None
        if self._wanted:
            return f"{self._subject}: not found"
        return f"{self._subject}: expected none, found {_show(values[0])}"


class _Equals(_Value):
    __slots__ = ("_expected", "_source")

    def __init__(self, spec: Check) -> None:
        self._source = spec.equals
        self._expected = compile_value(spec.equals)
        super().__init__(spec, f"equals {_show(spec.equals)}{_case(spec)}")

    def label(self, variables: Mapping[str, Any]) -> str:
        if isinstance(self._expected, Constant):
            return self.description
        try:
            expected = _render(self._expected, variables, self._source, self._subject)
        except _Unrenderable:
            return self.description
        return f"{self._subject} equals {_show(expected)}{_case_of(self._ignore_case)}"

    def _judge(self, values: list[Any], variables: Mapping[str, Any]) -> str | None:
        expected = self._expected
        if isinstance(expected, Constant):
            expected = expected.value
        else:
            expected = _render(expected, variables, self._source, self._subject)
        if not values:
            return f"{self._subject}: not found, expected {_show(expected)}"
        if _equal(values[0], expected, self._ignore_case):
            return None
        return f"{self._subject}: expected {_show(expected)}, got {_show(values[0])}"


class _Contains(_Value):
    __slots__ = ("_needle", "_negate")

    def __init__(self, spec: Check, negate: bool) -> None:
        source = spec.not_contains if negate else spec.contains
        assert source is not None
        self._needle = _Needle(source, spec.ignore_case)
        self._negate = negate
        verb = "does not contain" if negate else "contains"
        super().__init__(spec, f"{verb} {_show(source)}{_case(spec)}")

    def label(self, variables: Mapping[str, Any]) -> str:
        verb = "does not contain" if self._negate else "contains"
        return _label(self, f"{self._subject} {verb}", self._needle, variables, _case_of(self._ignore_case))

    def _judge(self, values: list[Any], variables: Mapping[str, Any]) -> str | None:
        needle = self._needle.render(variables, self._subject)
        if not values:  # nothing contains the text: not_contains passes
            return None if self._negate else f"{self._subject}: not found"
        actual = _text(values[0])
        found = self._needle.in_text(actual, needle)
        if found == self._negate:
            verb = "contains" if found else "does not contain"
            return f"{self._subject}: {_show(actual)} {verb} {_show(needle)}"
        return None


class _Matches(_Value):
    __slots__ = ("_regex",)

    def __init__(self, spec: Check) -> None:
        assert spec.matches is not None
        self._regex = re.compile(spec.matches, re.IGNORECASE if spec.ignore_case else 0)
        super().__init__(spec, f"matches '{spec.matches}'{_case(spec)}")

    def _judge(self, values: list[Any], variables: Mapping[str, Any]) -> str | None:
        if not values:
            return f"{self._subject}: not found"
        actual = _text(values[0])
        if self._regex.search(actual):
            return None
        return f"{self._subject}: {_show(actual)} does not match '{self._regex.pattern}'"


def _subject(spec: Check) -> tuple[str, Callable[[Response], list[Any]]]:
    if spec.jsonpath is not None:
        return f"jsonpath {spec.jsonpath}", json_finder(spec.jsonpath)
    if spec.xpath is not None:
        return f"xpath {spec.xpath}", xpath_finder(spec.xpath, spec.document)
    name = spec.header
    assert name is not None
    return f"header {name}", lambda response: response.header_values(name)


class _Python(Checkpoint):
    """f(response, variables) of the scenario's module: True or None passes; False or a message fails."""

    __slots__ = ("_file", "_function", "_name")

    def __init__(self, spec: Check, script: Script) -> None:
        super().__init__(f"python {spec.python}", spec.on_fail, spec.message)
        assert spec.python is not None
        self._name = spec.python
        self._function = script.function(spec.python)
        self._file = str(script.path)

    def _test(self, response: Response, variables: Mapping[str, Any]) -> str | None:
        try:
            verdict = self._function(response, variables)
        except Exception as exc:
            return describe(exc, self._file)
        if verdict is None or verdict is True:
            return None
        return f"python check {self._name} failed" if verdict is False else str(verdict)


def compile_checkpoint(spec: Check, script: Script | None = None) -> Checkpoint:
    subject = spec.subject
    if subject == "python":
        if script is None:
            raise ValueError("a python checkpoint needs the scenario's python: module")
        return _Python(spec, script)
    if subject == "status":
        return _Status(spec)
    if subject == "time":
        return _MaxTime(spec)
    if subject == "size":
        return _Size(spec)
    if subject == "body":
        if spec.predicate == "matches":
            return _BodyMatches(spec)
        return _BodyContains(spec, negate=spec.predicate == "not_contains")
    predicate = spec.predicate
    if predicate == "exists":
        return _Exists(spec)
    if predicate == "equals":
        return _Equals(spec)
    if predicate == "matches":
        return _Matches(spec)
    return _Contains(spec, negate=predicate == "not_contains")


def default_status() -> Checkpoint:
    """The checkpoint a request gets when it has no status checkpoint: 4xx and 5xx fail."""
    return _DefaultStatus()


def compile_checks(checks: list[Check], script: Script | None = None) -> list[Checkpoint]:
    """Compile a request's checkpoints. Without a status checkpoint, a default one fails 4xx and 5xx.

    The default one comes first, so a 500 is reported as ``HTTP 500 …`` rather than as a missing text.
    """
    compiled = [compile_checkpoint(spec, script) for spec in checks]
    if not any(spec.subject == "status" for spec in checks):
        compiled.insert(0, _DefaultStatus())
    return compiled
