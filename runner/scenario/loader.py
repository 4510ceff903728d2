"""Read YAML or JSON scenario files into plain data, remembering where every key and value came from.

``load_document`` returns a ``Document``: the data as dicts and lists, plus ``marks`` mapping each data path
(a tuple of keys and indices) to the place of its key and of its value, so any later error about a path can
be reported as ``file:line:col``. Includes are merged here, with their own files' marks.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner.errors import Problem, ScenarioError
from runner.suggest import did_you_mean

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

DataPath = tuple[str | int, ...]
_NOT_JSON = object()
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")  # half of a character outside the BMP, in JSON


@dataclass(frozen=True, slots=True)
class Mark:
    file: str
    line: int  # 1-based
    col: int  # 1-based


@dataclass
class Document:
    """A loaded file: its data and where each part of it was written."""

    path: Path
    data: Any
    marks: dict[DataPath, tuple[Mark, Mark]] = field(default_factory=dict)  # path -> (key mark, value mark)
    includes: list[Path] = field(default_factory=list)  # every file merged in, recursively

    def mark(self, path: DataPath, key: bool = False) -> Mark:
        """The place of ``path`` (its key when ``key``), or of its nearest written ancestor."""
        for end in range(len(path), -1, -1):
            found = self.marks.get(path[:end])
            if found:
                return found[0] if key and end == len(path) else found[1]
        return Mark(str(self.path), 1, 1)

    def problem(self, path: DataPath, message: str, hint: str = "", key: bool = False, **kw: Any) -> Problem:
        mark = self.mark(path, key=key)
        return Problem(mark.file, mark.line, mark.col, message, hint, **kw)


LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # what YAML counts as a line break


def _place(text: str, line: int, col: int) -> tuple[int, int]:
    """``line``, ``col`` (1-based), or the end of ``text`` when YAML reports a place past it."""
    breaks = [m.end() for m in LINE_BREAK.finditer(text)]
    if line <= len(breaks) + 1:
        return line, col
    return len(breaks) + 1, len(text) - (breaks[-1] if breaks else 0) + 1


MAX_DEPTH = 100  # levels of mappings and lists: far more than a scenario needs, far less than Python's stack
MAX_ALIAS_VALUES = 100_000  # values built again through aliases (*name): a "billion laughs" stops here


_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_PLAIN_NUMBER = re.compile(r"[-+]?(?:0|[1-9][0-9]*)(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|[-+]?\.[0-9]+(?:[eE][-+]?[0-9]+)?")


def _number_problem(text: str) -> tuple[str, str] | None:
    """YAML 1.1 reads ``1_0`` as 10, ``1:30`` as 90, ``010`` as 8 and ``.inf`` as infinity: a number is plain
    decimal digits here, as in JSON and YAML 1.2, or it is refused with what to write instead."""
    if _PLAIN_NUMBER.fullmatch(text):
        return None
    if text.lower().lstrip("+-") in (".inf", ".nan"):
        return f"expected a finite number; got {text}", "write a number, or quote it if you meant the text"
    return (
        f"{text} is not a plain decimal number (YAML 1.1 would read it in another base or as minutes:seconds)",
        f'write it in decimal digits without "_" or ":", or quote it ("{text}") if you meant the text',
    )


class _AliasBomb(Exception):
    """Aliases expand past ``MAX_ALIAS_VALUES``; carries the problem, at the outermost alias being expanded."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _Builder:
    """Turns a composed YAML node tree into plain data and marks."""

    def __init__(self, file: str, loader: Any, text: str) -> None:
        self.file = file
        self.loader = loader
        self.text = text
        self.lines = len(LINE_BREAK.findall(text)) + 1
        self.marks: dict[DataPath, tuple[Mark, Mark]] = {}
        self.problems: list[Problem] = []
        self.merged: dict[int, int] = {}  # mapping node -> how many of its pairs came from merge keys
        self.open: set[int] = set()  # nodes being built: an alias back into one of them is a cycle
        self.built: set[int] = set()  # nodes built once: building one again is an alias expansion
        self.repeated = 0  # values built through aliases so far
        self.alias_at: yaml.Node | None = None  # where the outermost alias being expanded is written

    def build(self, node: yaml.Node, path: DataPath, key_node: yaml.Node | None = None) -> Any:
        value_mark = self._mark(node)
        self.marks[path] = (self._mark(key_node) if key_node is not None else value_mark, value_mark)
        if len(path) > MAX_DEPTH:
            self.problems.append(self._problem(node, f"nested more than {MAX_DEPTH} levels deep"))
            return None
        if id(node) in self.open:  # point at the key the alias is written under, when there is one
            message = "an alias (*name) here refers to a mapping or list that contains it"
            self.problems.append(self._problem(key_node or node, message))
            return None
        if id(node) in self.built:
            return self._again(node, path, key_node)
        self.built.add(id(node))
        return self._build(node, path)

    def _again(self, node: yaml.Node, path: DataPath, key_node: yaml.Node | None) -> Any:
        """A node built before, reached again through an alias: counted, so that aliases of aliases stay bounded."""
        self.repeated += 1
        outermost = self.alias_at is None
        if outermost:
            self.alias_at = key_node or node
        try:
            if self.repeated > MAX_ALIAS_VALUES:
                assert self.alias_at is not None
                message = f"aliases (*name) here expand to more than {MAX_ALIAS_VALUES:,} values"
                hint = "aliases of aliases multiply: write the data once, or use fewer levels of aliases"
                raise _AliasBomb(self._problem(self.alias_at, message, hint))
            return self._build(node, path)
        finally:
            if outermost:
                self.alias_at = None

    def _build(self, node: yaml.Node, path: DataPath) -> Any:
        if isinstance(node, yaml.MappingNode):
            self.open.add(id(node))
            try:
                return self._mapping(node, path)
            finally:
                self.open.discard(id(node))
        if isinstance(node, yaml.SequenceNode):
            self.open.add(id(node))
            try:
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            finally:
                self.open.discard(id(node))
        plain = isinstance(node, yaml.ScalarNode) and not node.style
        if plain and node.tag in _NUMBER_TAGS and (problem := _number_problem(node.value)):
            self.problems.append(self._problem(node, problem[0], problem[1]))
            return None
        return self.loader.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: DataPath) -> dict[Any, Any]:
        if id(node) not in self.merged:  # resolve merge keys (<<) once: merged pairs come first, then own ones
            own = sum(k.tag != "tag:yaml.org,2002:merge" for k, _ in node.value)
            self.loader.flatten_mapping(node)
            self.merged[id(node)] = len(node.value) - own
        out: dict[Any, Any] = {}
        own_keys: set[Any] = set()
        for index, (k_node, v_node) in enumerate(node.value):
            if not isinstance(k_node, yaml.ScalarNode):
                self.problems.append(self._key_problem(node, k_node))
                continue
            key = self.loader.construct_object(k_node, deep=True)
            if not isinstance(key, str | int | float | bool) or key is None:
                self.problems.append(self._problem(k_node, "a key must be a plain string"))
                continue
            if isinstance(key, bool | float):
                key = str(k_node.value)  # `on:` or `1.0:` mean the text the user wrote
            if index >= self.merged[id(node)]:  # a key written here may override a merged one, not its own
                if key in own_keys:
                    hint = "remove one of the two; the later one wins"
                    self.problems.append(self._problem(k_node, f"duplicate key '{key}'", hint))
                own_keys.add(key)
            out[key] = self.build(v_node, (*path, key), k_node)
        return out

    def _key_problem(self, node: yaml.Node, k_node: yaml.Node) -> Problem:
        """A mapping or list used as a key: nearly always ``{{ name }}`` written without quotes."""
        source = self.text[node.start_mark.index : node.end_mark.index]
        if source.startswith("{{"):
            return self._problem(
                node,
                f"{source} must be quoted",
                f'write "{source}" in quotes: without them YAML reads {{ as the start of a mapping',
            )
        return self._problem(k_node, "a key must be a plain string")

    def _problem(self, node: yaml.Node, message: str, hint: str = "") -> Problem:
        mark = self._mark(node)
        return Problem(mark.file, mark.line, mark.col, message, hint)

    def _mark(self, node: yaml.Node) -> Mark:
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        if line > self.lines:  # an empty value at the very end of the file
            line, col = _place(self.text, line, col)
        return Mark(self.file, line, col)


_UNQUOTED_TEMPLATE = re.compile(r"(?:^\s*-|:)\s+\{\{")
_UNQUOTED_BRACKETS = re.compile(r":\s+([^\s\"'\[{,}][^,}\s]*\[[^,}\s]*\][^,}\s]*)")  # name: /items/[id] in { }


def _yaml_problem(file: str, text: str, exc: yaml.YAMLError) -> Problem:
    problem, context = getattr(exc, "problem", None) or "", getattr(exc, "context", None) or ""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if "end of stream" in problem and getattr(exc, "context_mark", None):
        mark = getattr(exc, "context_mark", None)  # where the unclosed quote or bracket starts, not the end of the file
    line, col = _place(text, mark.line + 1, mark.column + 1) if mark else (1, 1)
    message = ", ".join(p for p in (context, problem) if p) or str(exc)
    lines = LINE_BREAK.split(text)
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    hint = ""
    if "\t" in source[:col] or "tab" in problem:
        hint = "YAML does not allow tabs for indentation: use spaces"
    elif _UNQUOTED_TEMPLATE.search(source):
        hint = 'a value that starts with {{ must be quoted: "{{ token }}"'
    elif "quoted scalar" in context and "end of stream" in problem:
        hint = "this quote is never closed"
    elif "escape character" in problem:
        hint = r"in double quotes \ starts an escape: use single quotes for a regex ('\d+'), or write \\"
    elif source[: col - 1].rstrip().endswith(("'", '"')):
        hint = "a value cannot go on after its closing quote; for a ' inside '...', write it twice: 'it''s'"
    elif ("flow sequence" in context or "flow mapping" in context) and (found := _UNQUOTED_BRACKETS.search(source)):
        hint = f'inside {{ }}, a value containing [ ] must be quoted: "{found.group(1)}"'
    elif "flow sequence" in context or "flow mapping" in context:
        hint = "a [ or { is not closed where expected: check the brackets and commas"
    elif "mapping values are not allowed" in problem:
        hint = "a value containing ': ' must be quoted"
    elif "undefined alias" in problem:
        hint = "a value that starts with * must be quoted"
    elif "expected" in problem and "block" in context:
        hint = "check the indentation of this line and the one before"
    return Problem(file, line, col, f"YAML syntax error: {message}", hint)


def _json_problem(file: str, text: str, exc: json.JSONDecodeError) -> Problem:
    line, col, hint = exc.lineno, exc.colno, ""
    before = text[: exc.pos].rstrip()
    if before.endswith(",") and text[exc.pos : exc.pos + 1] in ("]", "}"):
        comma = len(before) - 1  # point at the trailing comma, not at the bracket after it
        line, col = before.count("\n") + 1, comma - before.rfind("\n")
        hint = "JSON allows no comma before a closing ] or }"
    return Problem(file, line, col, f"JSON syntax error: {exc.msg}", hint)


def parse_text(text: str, file: str) -> tuple[Any, dict[DataPath, tuple[Mark, Mark]]]:
    """Parse YAML (or JSON) text into data and marks; raise ``ScenarioError`` for syntax errors.

    A ``.json`` file's data comes from the json module (YAML reads ``1e3`` as text); the YAML parser, which
    reads JSON too, still gives the positions.
    """
    from_json: Any = _NOT_JSON
    if file.endswith(".json"):
        try:
            from_json = json.loads(text, parse_constant=str)  # NaN and Infinity stay text, as in YAML
        except RecursionError:
            pass  # nested too deep: the builder reports where
        except json.JSONDecodeError as exc:
            raise ScenarioError([_json_problem(file, text, exc)]) from None
        text = _SURROGATE.sub(r"\\uFFFD", text)  # YAML rejects these JSON escapes; same length, same places
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        builder = _Builder(file, loader, text)
        data = builder.build(node, ())
    except _AliasBomb as bomb:
        raise ScenarioError([bomb.problem]) from None
    except yaml.YAMLError as exc:
        if from_json is not _NOT_JSON:
            return from_json, {}  # valid JSON that YAML cannot read: no positions, but no false error
        raise ScenarioError([_yaml_problem(file, text, exc)]) from None
    finally:
        loader.dispose()
    if builder.problems:
        raise ScenarioError(list(dict.fromkeys(builder.problems)))  # a node reached by two aliases: once
    return (data if from_json is _NOT_JSON else from_json), builder.marks


def read_file(path: Path) -> Document:
    """Read one file (no includes resolved)."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ScenarioError([Problem(file, 1, 1, "file not found", _similar_file(path))]) from None
    except IsADirectoryError:
        raise ScenarioError([Problem(file, 1, 1, "is a directory, not a scenario file")]) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError([Problem(file, 1, 1, f"not UTF-8 text: {exc.reason}")]) from None
    except OSError as exc:
        raise ScenarioError([Problem(file, 1, 1, f"cannot read: {exc.strerror}")]) from None
    data, marks = parse_text(text, file)
    return Document(path, data, marks)


MERGED_DICT_KEYS = ("headers", "variables", "users", "http", "pools")
MERGED_VALUE_KEYS = ("think", "host")


def existing_file(path: Path) -> Path | None:
    """``path`` resolved when it names a readable file, else None (also for names no file can have)."""
    try:
        return path.resolve() if path.is_file() else None
    except (OSError, ValueError):
        return None


def _similar_file(path: Path) -> str:
    """'did you mean scenarios/quickstart.yaml?' for a misspelt file name, or ""."""
    try:
        names = [p.name for p in path.parent.iterdir() if p.is_file()]
    except OSError:
        return ""
    found = difflib.get_close_matches(path.name, names, n=1, cutoff=0.75)
    return f"did you mean {path.parent / found[0]}?" if found else ""


def load_document(path: Path, *, fragment: bool = False, _seen: tuple[Path, ...] = ()) -> Document:
    """Read ``path`` and merge in its ``include`` files (the including file wins on conflicts)."""
    doc = read_file(path)
    what = "an included file" if fragment else "a scenario"
    if doc.data is None:
        hint = "" if fragment else "a scenario needs 'users'"
        raise ScenarioError([Problem(str(path), 1, 1, "the file is empty", hint)])
    if not isinstance(doc.data, dict):
        kind = "a list" if isinstance(doc.data, list) else f"a single value ({str(doc.data)[:40]!r})"
        raise ScenarioError([doc.problem((), f"{what} is a mapping of keys, not {kind}")])
    includes = doc.data.get("include", [])
    if isinstance(includes, str):  # one file may be named without a list
        includes = doc.data["include"] = [includes]
        if ("include",) in doc.marks:
            doc.marks[("include", 0)] = doc.marks[("include",)]
    if not isinstance(includes, list):
        if fragment:  # the schema only sees the including file's own include
            raise ScenarioError([doc.problem(("include",), "'include': expected a list of file names")])
        return doc  # the schema reports the wrong type
    chain = (*_seen, path.resolve())
    problems: list[Problem] = []
    for index, name in enumerate(includes):
        if not isinstance(name, str):
            continue
        part_path = path.parent / name  # as the user would write it, for messages
        target = existing_file(part_path)
        where = ("include", index)
        if target is None:
            hint = f"paths are relative to {path.parent}/"
            problems.append(doc.problem(where, f"included file not found: {name}", hint))
            continue
        if target in chain:
            names = [os.path.relpath(p, chain[0].parent) for p in (*chain[chain.index(target) :], target)]
            hint = "a file cannot include itself, even indirectly"
            problems.append(doc.problem(where, f"include cycle: {' -> '.join(names)}", hint))
            continue
        try:
            part = load_document(part_path, fragment=True, _seen=chain)
        except ScenarioError as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(_merge(doc, part))
    if problems:
        raise ScenarioError(problems)
    return doc


def _merge(doc: Document, part: Document) -> list[Problem]:
    problems = []
    allowed = ("include", *MERGED_DICT_KEYS, *MERGED_VALUE_KEYS)
    for key, value in part.data.items():
        if key == "include" or (isinstance(key, str) and key.startswith("x-")):
            continue  # x- keys hold YAML anchors; they stay in their own file
        if key not in allowed:
            hint = did_you_mean(str(key), allowed) or f"an included file may hold: {', '.join(allowed)}"
            problems.append(part.problem((key,), f"'{key}' cannot come from an included file", hint, key=True))
        elif key in MERGED_DICT_KEYS and not isinstance(value, dict):
            problems.append(part.problem((key,), f"'{key}': expected a mapping (key: value)"))
        elif key in MERGED_DICT_KEYS:
            mine = doc.data.setdefault(key, {})
            if not isinstance(mine, dict):
                continue  # the schema reports the including file's value
            for sub, sub_value in value.items():
                if sub not in mine:
                    mine[sub] = sub_value
                    _copy_marks(part, doc, (key, sub))
            if (key,) not in doc.marks:
                doc.marks[(key,)] = part.marks[(key,)]
        elif key not in doc.data:
            doc.data[key] = value
            _copy_marks(part, doc, (key,))
    doc.includes.extend([part.path, *part.includes])
    return problems


def _copy_marks(source: Document, target: Document, prefix: DataPath) -> None:
    n = len(prefix)
    for path, marks in source.marks.items():
        if path[:n] == prefix:
            target.marks[path] = marks
