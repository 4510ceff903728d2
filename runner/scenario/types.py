"""Value types shared by the scenario models: durations, templates, expressions compiled at validation."""

from __future__ import annotations

import re
from typing import Annotated, Any

from jinja2 import TemplateSyntaxError
from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

import runner.scenario.templating as templating
from runner.scenario.numbers import MAX_DURATION, strict_number

_DURATION = re.compile(r"([0-9]{1,30}(?:\.[0-9]{1,30})?)\s*(ms|h|m|s)", re.IGNORECASE | re.ASCII)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_HELP = "a number of seconds or a string such as 500ms, 2s, 1m30s, 1h"


def parse_duration(value: Any) -> float:
    """Seconds from ``2``, ``2.5``, ``"500ms"``, ``"1m30s"``, ``"1h"``: finite, at most ``MAX_DURATION``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration ({DURATION_HELP})")
    if isinstance(value, int | float):
        seconds = strict_number(value)
        if seconds < 0:
            raise ValueError("a duration cannot be negative")
        if seconds > MAX_DURATION:
            raise ValueError(f"{seconds:,.0f}s is longer than lrun takes ({MAX_DURATION / 86400:g} days)")
        return float(seconds)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        try:
            number = strict_number(text)
        except ValueError:
            pass
        else:
            return parse_duration(number)
        pos, total = 0, 0.0
        for match in _DURATION.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNITS[match.group(2).lower()]
            pos = match.end()
        if pos == len(text) and text:
            return parse_duration(total)
    raise ValueError(f"{value!r} is not a duration: use {DURATION_HELP}")


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*(ms|h|m|s)?\s*)+$"},
            ],
            "description": f"A duration: {DURATION_HELP}.",
            "examples": ["500ms", "2s", "1m30s", 1.5],
        }
    ),
]


SIZE_HELP = "a number of bytes or a string such as 512kB, 10MiB, 1GB"
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
_SIZE_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(value: Any) -> int:
    """Bytes from ``1024``, ``"512kB"``, ``"10MiB"``, ``"1GB"``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        unit = (match.group(2) or "").lower()
        if unit in _SIZE_UNITS:
            return int(float(match.group(1)) * _SIZE_UNITS[unit])
    raise ValueError(f"{value!r} is not a size: use {SIZE_HELP}")


Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*([kKmMgGtT]?i?[bB])?\s*$"},
            ],
            "description": f"A size: {SIZE_HELP}.",
            "examples": ["10MiB", "512kB", 1048576],
        }
    ),
]


class Tmpl(str):
    """A string that is a Jinja2 template. Marks the strings the static checks and the compiler template."""

    __slots__ = ()


def check_template(value: str) -> Tmpl:
    if templating.is_template(value):
        try:
            templating.parse(value)
        except TemplateSyntaxError as exc:
            raise ValueError(f"template syntax error: {exc.message} in {value!r}") from None
    return Tmpl(value)


def _template_tree(value: Any) -> Any:
    """Mark every string inside a JSON-like value as a template (keys too)."""
    if isinstance(value, str):
        return check_template(value)
    if isinstance(value, dict):
        return {_template_tree(k) if isinstance(k, str) else k: _template_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_template_tree(v) for v in value]
    return value


Template = Annotated[str, AfterValidator(check_template)]
TemplateTree = Annotated[Any, AfterValidator(_template_tree)]
Scalar = str | int | float | bool
TemplateScalar = Annotated[Scalar, AfterValidator(lambda v: check_template(v) if isinstance(v, str) else v)]


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    return value


def _check_jsonpath(value: str) -> str:
    from runner.scenario.jsonpath import compile_jsonpath

    compile_jsonpath(value)  # raises ValueError with a readable message
    return value


def _check_xpath(value: str) -> str:
    from lxml import etree

    try:
        etree.XPath(value)
    except etree.XPathSyntaxError as exc:
        raise ValueError(f"invalid XPath {value!r}: {exc}") from None
    return value


Regex = Annotated[str, AfterValidator(_check_regex)]
JsonPath = Annotated[str, AfterValidator(_check_jsonpath)]
XPath = Annotated[str, AfterValidator(_check_xpath)]


def _check_python_name(value: str) -> str:
    if not value.isidentifier():
        raise ValueError(f"{value!r} is not a Python function name")
    return value


PythonName = Annotated[str, AfterValidator(_check_python_name)]


def _expression(value: Any) -> str:
    """``if:`` conditions: ``"balance > 100"`` or ``"{{ balance > 100 }}"``, kept as a one-expression template."""
    if isinstance(value, bool):
        return "{{ true }}" if value else "{{ false }}"
    if not isinstance(value, str) or not value.strip():
        raise ValueError('expected a condition such as "status == \'ok\'" or "balance > 100"')
    text = value.strip()
    if text.startswith("{{") and text.endswith("}}") and text.count("{{") == 1:
        text = text[2:-2].strip()
    if "{{" in text or "{%" in text:
        raise ValueError(f"a condition is one expression, without {{{{ }}}} inside: {value!r}")
    source = "{{ " + text + " }}"
    try:
        templating.parse(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"condition {text!r} is not an expression: {exc.message}") from None
    return source


Expression = Annotated[
    str,
    BeforeValidator(_expression),
    AfterValidator(check_template),
    WithJsonSchema(
        {
            "type": ["string", "boolean"],
            "description": "A Jinja2 expression, true when it is truthy.",
            "examples": ["balance > 100", "status == 'ok'", "items | length > 0"],
        }
    ),
]
