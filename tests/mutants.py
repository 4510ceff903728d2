"""A seeded corpus of mutants of the example scenarios, for the fuzz test: what careless hands and hostile files
write. Data mutants change one value of the parsed scenario (delete, swap a type, null, unicode, huge numbers);
text mutants change the YAML itself (tabs, deleted or doubled lines, aliases, !!python tags, bombs)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
