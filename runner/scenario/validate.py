"""Validate loaded data against the models and say what is wrong where, in a tester's words."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from runner.errors import Problem, ScenarioError
from runner.scenario.loader import DataPath, Document
from runner.scenario.model import STEP_KINDS, TASK_KINDS, Scenario
from runner.scenario.types import check_template
from runner.suggest import did_you_mean

# Keys people bring from other tools, and what lrun calls them.
SYNONYMS = {
    "params": "query",
    "data": "form (or body for raw text)",
    "url": "the method as the key, e.g. get: /path",
    "method": "the method as the key, e.g. post: /orders",
    "path": "the method as the key, e.g. get: /path",
    "assert": "check",
    "asserts": "check",
    "checks": "check",
    "expect": "check",
    "validate": "check",
    "capture": "extract",
    "extractors": "extract",
    "extractor": "extract",
    "save": "extract",
    "wait": "think",
    "sleep": "think",
    "pause": "think",
    "think_time": "think",
    "steps": "sequence (steps in order) or tasks (weighted)",
    "flow": "sequence",
    "scenario": "users",
    "regex_match": "matches",
    "status_code": "status",
    "json_body": "json",
    "cookies": "headers (cookies set by the server are kept per user automatically)",
    "vars": "variables",
    "env": "variables",
    "before": "on_start",
    "after": "on_stop",
}


# What a type error expected, in words (pydantic error type -> phrase).
EXPECTED = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "string_type": "text",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "dict_type": "a mapping (key: value)",
    "list_type": "a list",
    "tuple_type": "a list",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
    "string_pattern_mismatch": "a status class like 2xx",
}


# Number bounds (pydantic error type -> phrase before the limit).
BOUNDS = {
    "greater_than": "more than",
    "greater_than_equal": "at least",
    "less_than": "less than",
    "less_than_equal": "at most",
}


def describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, date | datetime):
        return f"{value.isoformat()} (YAML reads it as a date: quote it)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _data_path(data: Any, loc: tuple[Any, ...]) -> DataPath:
    """Follow pydantic's error location through the data, skipping union tags and validator names.

    A tag can also be a key (``think``, ``sequence``, ``between``), so each element that could be a key is
    tried both ways; the reading that follows more of the location wins, on a tie the one that follows its
    later, more specific elements.
    """
    found: dict[tuple[int, int], DataPath] = {}

    def walk(node: Any, start: int) -> DataPath:
        if start == len(loc):
            return ()
        if (id(node), start) not in found:
            best = walk(node, start + 1)
            element = loc[start]
            if (isinstance(node, dict) and element in node) or (
                isinstance(node, list) and type(element) is int and 0 <= element < len(node)
            ):
                taken = (element, *walk(node[element], start + 1))
                if len(taken) > len(best):
                    best = taken
            found[id(node), start] = best
        return found[id(node), start]

    return walk(data, 0)


def _lookup(data: Any, path: DataPath) -> Any:
    for element in path:
        data = data[element]
    return data


def _field_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _owner(models: dict[int, list[type[BaseModel]]], mapping: dict[Any, Any]) -> type[BaseModel] | None:
    """The model that read ``mapping`` (the one whose keys fit it best, when a union tried several)."""
    candidates = models.get(id(mapping), [])
    if not candidates:
        return None
    return max(candidates, key=lambda m: len(set(mapping) & set(_field_keys(m))))


def _where(path: DataPath) -> str:
    """The key a message is about: the last mapping key on the path."""
    return next((str(x) for x in reversed(path) if isinstance(x, str)), "")


_NAMED_KEY = re.compile(r"(\w+): |'(\w+)' ")


def _bad_template(value: Any, path: DataPath) -> DataPath:
    """The path of the first string (or key) inside a JSON-like ``value`` that is not a valid template."""
    if isinstance(value, str):
        try:
            check_template(value)
        except ValueError:
            return path
    if isinstance(value, dict):
        for key, item in value.items():
            found = _bad_template(key, (*path, key)) or _bad_template(item, (*path, key))
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _bad_template(item, (*path, index))
            if found:
                return found
    return ()


def _locate(error: dict[str, Any], doc: Document) -> DataPath:
    """The data path an error is about (deeper than pydantic's location where the message tells more)."""
    path = _data_path(doc.data, error["loc"])
    if error["type"] != "value_error":
        return path
    value, text = error.get("input"), error["msg"].removeprefix("Value error, ")
    named = _NAMED_KEY.match(text)
    key = named and (named[1] or named[2])
    if isinstance(value, dict) and key and key in value:
        return (*path, key)  # a model's check that starts with a key is about that key: "tasks: ..."
    if text.startswith("template syntax error") and isinstance(value, dict | list):
        return _bad_template(value, path) or path
    return path


def _message(error: dict[str, Any], path: DataPath, doc: Document, models: dict[int, list[type[BaseModel]]]) -> Problem:
    kind, loc, value = error["type"], error["loc"], error.get("input")
    field = _where(path)
    if kind == "value_error" and path and isinstance(path[-1], int):
        field = ""  # a check of a whole step or checkpoint in a list: the list's key would mislead
    label = f"'{field}': " if field else ""

    if kind == "extra_forbidden":
        key = path[-1] if path else loc[-1]
        parent = _lookup(doc.data, path[:-1]) if path else doc.data
        owner = _owner(models, parent) if isinstance(parent, dict) else None
        allowed = _field_keys(owner) if owner else []
        hint = did_you_mean(str(key), allowed) or _synonym(str(key)) or _deeper(str(key), owner)
        if not hint and allowed:
            hint = "allowed here: " + ", ".join(allowed)
        return doc.problem(path, f"unknown key '{key}'", hint, key=True)

    if kind in ("step_kind", "task_kind", "think_kind"):
        return _kind_problem(kind, error["msg"], path, value, doc)

    if kind == "missing":
        if isinstance(loc[-1], int):
            return doc.problem(path, f"{label}too few items: item {loc[-1] + 1} is missing")
        return doc.problem(path, f"missing required key '{loc[-1]}'")

    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        choices = [c.strip(" '") for c in expected.replace(" or ", ",").split(",")]
        hint = did_you_mean(str(value), choices) if isinstance(value, str) else ""
        return doc.problem(path, f"{label}expected one of {expected}; got {describe(value)}", hint)

    if kind in EXPECTED:
        if loc[-1] == "[key]":
            return doc.problem(path, f"{label}a name must be text; got {describe(value)}", key=True)
        return doc.problem(path, f"{label}expected {EXPECTED[kind]}; got {describe(value)}", _user_slip(path, value))

    if kind in BOUNDS:
        limit = next(iter(error.get("ctx", {}).values()), "")
        limit = int(limit) if isinstance(limit, float) and limit.is_integer() else limit
        return doc.problem(path, f"{label}must be {BOUNDS[kind]} {limit}; got {describe(value)}")

    if kind == "string_too_short" and not value:
        return doc.problem(path, f"{label}must not be empty")

    if kind in ("too_short", "too_long"):
        ctx = error.get("ctx", {})
        if kind == "too_long":
            return doc.problem(path, f"{label}expected at most {ctx.get('max_length')} items; got {len(value or ())}")
        if not value:
            return doc.problem(path, f"{label}must not be empty")
        return doc.problem(path, f"{label}expected at least {ctx.get('min_length')} items; got {len(value)}")

    if kind == "value_error":
        text = error["msg"].removeprefix("Value error, ")
        if path and text.startswith(f"{path[-1]}: "):
            text = text.removeprefix(f"{path[-1]}: ")  # a model's check about one key, now pointed at
        if "template" in text or text.startswith((f"{field} ", f"'{field}' ")):
            label = ""  # the message already says what it is about
        return doc.problem(path, f"{label}{text}")

    message = error["msg"]
    message = message[0].lower() + message[1:]
    if kind.endswith("_type") or kind.endswith("_parsing"):
        message = f"{message}; got {describe(value)}"
    return doc.problem(path, f"{label}{message}")


INDENT = "check the indentation"


def _deeper(key: str, owner: type[BaseModel] | None) -> str:
    """An unknown key that belongs one level deeper: ``tasks:`` at the level of user types, ``check:`` at the
    level of a user's keys instead of its request's."""
    from runner.scenario.model import Request, User

    if owner is Scenario and key in User.model_fields:
        return f"'{key}' belongs to a user type: indent it under one (users: NAME: {key}:); {INDENT}"
    if owner is User and key in Request.model_fields:
        return f"'{key}' belongs to a request: indent it to the level of the request's method (get: …); {INDENT}"
    return ""


def _user_slip(path: DataPath, value: Any) -> str:
    """A user type with nothing under it, or a user's key read as a user type's name: an indentation slip."""
    from runner.scenario.model import User

    if len(path) != 2 or path[0] != "users":
        return ""
    if path[1] in User.model_fields:
        return f"'{path[1]}' is read as the name of a user type: indent it under the user type above; {INDENT}"
    if value is None:
        return f"nothing is indented under '{path[1]}': its keys (sequence:, tasks: …) go two spaces deeper"
    return ""


def _synonym(key: str) -> str:
    return f"instead of '{key}', lrun uses {SYNONYMS[key]}" if key in SYNONYMS else ""


def _kind_problem(kind: str, message: str, path: DataPath, value: Any, doc: Document) -> Problem:
    """A step, task or think time whose kind cannot be told from its keys."""
    if kind == "think_kind":
        choices: tuple[str, ...] = ("between", "gaussian")
    else:
        wanted = STEP_KINDS if kind == "step_kind" else {k: STEP_KINDS[k] for k in TASK_KINDS}
        choices = tuple(key for keys_ in wanted.values() for key in keys_)
    keys = [str(k) for k in value] if isinstance(value, dict) else []
    steps_only = [k for k in keys if any(k in v for v in STEP_KINDS.values()) and k not in choices]
    hint = next((h for h in (did_you_mean(k, choices) for k in keys) if h), "")
    if steps_only:
        hint = f"'{steps_only[0]}' is a step, not a task: put it in a task's sequence: - sequence: [...]"
    hint = hint or next((h for h in map(_synonym, keys) if h), "")
    if isinstance(value, str) and value.split(" ", 1)[0] in choices and " " in value:
        word, rest = value.split(" ", 1)
        hint = f"write '{word}: {rest.strip()}' (a colon after {word})"
    if not isinstance(value, dict) and kind != "think_kind":
        return doc.problem(path, f"{message}; got {describe(value)}", hint)
    return doc.problem(path, message, hint)


def _merge_unions(problems: list[Problem]) -> list[Problem]:
    """Several errors at one place come from the members of a union: say them as one."""
    grouped: dict[tuple[str, int, int], list[Problem]] = {}
    for problem in problems:
        grouped.setdefault((problem.path, problem.line, problem.col), []).append(problem)
    out = []
    for group in grouped.values():
        if len(group) == 1:
            out.append(group[0])
            continue
        specific = [p for p in group if "unknown key" in p.message or "not a step" in p.message]
        if specific:
            out.extend(specific)
            continue
        out.append(_one_of(group))
    return out


def _one_of(group: list[Problem]) -> Problem:
    """'x': expected A; got v  +  'x': expected B; got v  ->  'x': expected A, or B; got v."""
    expectations, label, got = [], "", ""
    for problem in group:
        head, sep, tail = problem.message.partition("expected ")
        if not sep:
            return problem
        label = label or head
        what, _, got_text = tail.rpartition("; got ")
        got = got or got_text
        if what not in expectations:
            expectations.append(what)
    first = group[0]
    message = f"{label}expected {', or '.join(expectations)}; got {got}"
    return Problem(first.path, first.line, first.col, message, next((p.hint for p in group if p.hint), ""))


def _drop_echoes(found: list[tuple[dict[str, Any], DataPath, Problem]]) -> list[Problem]:
    """Drop errors that only repeat another one in other words.

    - A type error on a list or mapping when an error inside it shows that some member of the union read it
      (``status: [200, 2XX]`` is a list of codes with one bad item, not "a list where a number belongs").
    - A missing key that an unknown key nearby is a misspelling of (``stdev`` for ``stddev``).
    """
    misspelt = {(path[:-1], p.hint) for error, path, p in found if error["type"] == "extra_forbidden" and path}
    out = []
    for error, path, problem in found:
        container = isinstance(error.get("input"), dict | list) and error["type"] in EXPECTED
        if container and any(len(other) > len(path) and other[: len(path)] == path for _, other, _ in found):
            continue
        if error["type"] == "missing" and (path, f"did you mean '{error['loc'][-1]}'?") in misspelt:
            continue
        out.append(problem)
    return out


def validate(doc: Document) -> Scenario:
    """The ``Scenario`` model of a loaded document, or ``ScenarioError`` listing every problem."""
    context: dict[str, Any] = {}
    try:
        return Scenario.model_validate(doc.data, context=context)
    except ValidationError as exc:
        models = context.get("models", {})
        found = []
        for error in map(dict, exc.errors()):
            path = _locate(error, doc)
            found.append((error, path, _message(error, path, doc, models)))
        problems = list(dict.fromkeys(_merge_unions(_drop_echoes(found))))  # aliased YAML repeats a place
        problems.sort(key=lambda p: (p.path, p.line, p.col))
        raise ScenarioError(problems) from None


__all__ = ["validate"]
