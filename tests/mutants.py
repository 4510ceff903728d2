"""A seeded corpus of mutants of the example scenarios, for the fuzz test: what careless hands and hostile files
write. Data mutants change one value of the parsed scenario (delete, swap a type, null, unicode, huge numbers);
text mutants change the YAML itself (tabs, deleted or doubled lines, aliases, !!python tags, bombs).
``har_mutants`` does the same to HAR recordings, for ``lrun import``."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

STRANGE_VALUES: list[Any] = [
    None,
    "",
    0,
    -1,
    10**30,
    -(10**30),
    1e308,
    float("inf"),
    float("nan"),
    True,
    [],
    {},
    [None],
    {"": None},
    "ünïcødé ✓ 🚀",
    "\u202e\u0000\ufeff",
    "{{ undefined_variable }}",
    "{{ 'a' * 1000000000 }}",
    "{{ ",
    "{% for %}",
    "x" * 5000,
    "1e999",
    "-5s",
    "9999999999999999999d",
    "$..[?(@.x",
    "//*[",
    "(unclosed",
    "../../../../etc/passwd",
    "http://",
    [1, [2, [3]]],
]

TEXT_MUTATIONS = ("tab", "delete_line", "double_line", "python_tag", "alias", "undefined_alias", "bomb", "truncate")


def _paths(data: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path (tuple of keys and indices) to a value inside ``data``."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield (*prefix, index)
            yield from _paths(value, (*prefix, index))


def _parent(data: Any, path: tuple) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


def _data_mutant(data: Any, rng: random.Random) -> Any:
    data = yaml.safe_load(yaml.safe_dump(data))  # a deep copy
    paths = list(_paths(data))
    inner = [p for p in paths if {"check", "extract", "set", "load", "think"} & {str(k) for k in p[:-1]}]
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        path = rng.choice(inner if inner and rng.random() < 0.5 else paths)  # checkpoints, extractors …: often
        try:
            parent = _parent(data, path)
            if not isinstance(parent, dict | list):
                continue
            parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation of this mutant removed it
        kind = rng.random()
        if kind < 0.25:
            del parent[path[-1]]
        elif kind < 0.35 and isinstance(parent, dict):
            parent[rng.choice(["tasks", "sequence", "contains", "extract", "check", "weight", "x-y", "users"])] = (
                parent.pop(path[-1])
            )  # renamed: a key where another was expected
        elif kind < 0.5:
            parent[path[-1]] = None  # a ~ where a value is needed: the commonest slip, so the commonest mutant
        else:
            parent[path[-1]] = rng.choice(STRANGE_VALUES)
    return data


def _text_mutant(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    kind = rng.choice(TEXT_MUTATIONS)
    at = rng.randrange(len(lines))
    if kind == "tab":
        lines[at] = "\t" + lines[at].lstrip(" ")
    elif kind == "delete_line":
        del lines[at]
    elif kind == "double_line":
        lines.insert(at, lines[at])
    elif kind == "python_tag":
        lines.append(
            rng.choice(["x-evil: !!python/object/apply:os.system ['echo pwned']", "name: !!python/name:os.system"])
        )
    elif kind == "alias":
        lines[at:at] = ["x-a: &a {get: /, name: alias}", "x-b: [*a, *a, *a]"]
    elif kind == "undefined_alias":
        lines[at] = lines[at].split(":")[0] + ": *nowhere" if ":" in lines[at] else "*nowhere"
    elif kind == "bomb":
        lines += ['x-l0: &l0 "lol"'] + [f"x-l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    else:
        return text[: rng.randrange(len(text))]
    return "\n".join(lines) + "\n"


def mutants(sources: list[Path], count: int, seed: int = 10) -> Iterator[tuple[str, str]]:
    """``count`` mutants as (name, text): two in three change the data, one in three the text."""
    rng = random.Random(seed)
    texts = {p: p.read_text(encoding="utf-8") for p in sources}
    for number in range(count):
        source = rng.choice(sources)
        if rng.random() < 2 / 3:
            data = _data_mutant(yaml.safe_load(texts[source]), rng)
            text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
        else:
            text = _text_mutant(texts[source], rng)
        yield f"{source.stem}-{number:03d}.yaml", text


# -- recordings ----------------------------------------------------------------------------------------------------

HOSTILE_TEXT = [
    "{{ env('HOME') }}",
    "{{ 7 * 7 }}",
    "{% for x in range(10**9) %}x{% endfor %}",
    "{# comment",
    "{{",
    "}}",
    "{%",
    "a: b",
    "- item",
    "&anchor",
    "*alias",
    "!!python/object/apply:os.system ['echo pwned']",
    "# comment",
    "line\nbreak: yes",
    "cr\r\nlf",
    "\u2028\u2029\x85",
    "'\"`",
    "\x00\x07\x1b[31m",
    "\ud800",
    "\udfff tail",
    "\ufeff",
    "ünïcødé ✓ 🚀",
    "²00",
    "٣",
    "%YAML 1.1\n---\n...",
    "x" * 3000,
    "",
    " ",
    "http://[::1",
    "GET\nX: y",
]
HOSTILE_VALUES: list[Any] = [
    *HOSTILE_TEXT,
    None,
    True,
    0,
    -1,
    10**30,
    10**400,
    -(10**400),
    1e308,
    float("inf"),
    float("nan"),
    [],
    {},
    [None],
    {"name": "{{ env('HOME') }}", "value": "{% x %}"},
    "2026-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999Z",
    "0001-01-01T00:00:00Z",
]
NAME_LISTS = ("headers", "queryString", "cookies", "params")


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


def _json_text_mutant(text: str, rng: random.Random) -> str | None:
    """A JSON body or response with a hostile key or value somewhere inside, or nested deeper; None if not JSON."""
    try:
        document = json.loads(text)
    except ValueError:
        return None
    paths = [p for p in _paths(document)]
    kind = rng.random()
    if kind < 0.15 or not paths:
        return json.dumps(_nested(rng.choice((70, 500, 5000))) if kind < 0.1 else {rng.choice(HOSTILE_TEXT): document})
    path = rng.choice(paths)
    parent = _parent(document, path)
    if isinstance(parent, dict) and rng.random() < 0.5:
        parent[rng.choice(HOSTILE_TEXT)] = parent.pop(path[-1])  # a hostile name
    else:
        parent[path[-1]] = rng.choice(HOSTILE_VALUES)
    return json.dumps(document)


def _har_data_mutant(data: Any, rng: random.Random) -> None:
    paths = list(_paths(data))
    names = [p for p in paths if p[-1] in ("name", "value") and len(p) > 2 and p[-3] in NAME_LISTS]
    texts = [p for p in paths if p[-1] == "text" and isinstance(_parent(data, p)[p[-1]], str)]
    for _ in range(rng.choice((1, 1, 2, 3))):
        kind = rng.random()
        pool = names if kind < 0.3 and names else texts if kind < 0.45 and texts else paths
        path = rng.choice(pool)
        try:
            parent = _parent(data, path)
            current = parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation of this mutant removed it
        if pool is texts:
            mutated = _json_text_mutant(current, rng) if isinstance(current, str) else None
            parent[path[-1]] = mutated if mutated is not None else current + rng.choice(HOSTILE_TEXT)
        elif path[-1] == "url" and isinstance(current, str) and rng.random() < 0.6:
            key, value = (quote(rng.choice(HOSTILE_TEXT), safe="", errors="surrogatepass") for _ in "kv")
            parent[path[-1]] = current + ("&" if "?" in current else "?") + f"{key}={value}"  # a hostile query key
        elif isinstance(parent, dict) and rng.random() < 0.1:
            parent[rng.choice(HOSTILE_TEXT)] = parent.pop(path[-1])  # a key where another was expected
        elif rng.random() < 0.2:
            del parent[path[-1]]
        else:
            parent[path[-1]] = rng.choice(HOSTILE_VALUES)


def _encode(text: str, rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.85:
        return text.encode("utf-8", "surrogatepass")  # a lone surrogate as the bytes a careless writer gives
    if kind < 0.9:
        return text.encode("utf-16", "surrogatepass")
    if kind < 0.95:
        return text.encode("utf-8", "surrogatepass")[: rng.randrange(len(text))]  # truncated
    return b"\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass")


def har_mutants(sources: list[Path], count: int, seed: int = 28) -> Iterator[tuple[str, bytes]]:
    """``count`` mutants of HAR recordings as (name, bytes): hostile names and values (template and YAML syntax,
    line breaks, surrogates), wrong types, huge and non-finite numbers, nesting, in the file and inside bodies."""
    rng = random.Random(seed)
    documents = {p: p.read_text(encoding="utf-8") for p in sources}
    for number in range(count):
        source = rng.choice(sources)
        data = json.loads(documents[source])
        _har_data_mutant(data, rng)
        text = json.dumps(data, ensure_ascii=rng.random() < 0.5)
        yield f"{source.stem}-{number:03d}.har", _encode(text, rng)
