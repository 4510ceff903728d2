"""The Python escape hatch: a scenario's ``python: hooks.py`` module.

Its public functions can be called as steps (``call: name``), used as extractors and checkpoints
(``python: name``) and as template filters and functions (``{{ value | name }}``, ``{{ name() }}``). Functions
named after a lifecycle event are hooks: ``on_init(env)``, ``on_test_start(env)``, ``on_test_stop(env)`` and
``on_request(user, result)``. An error inside any of them is reported with the module's file and line.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from runner.errors import Problem

log = logging.getLogger("lrun")

HOOKS = ("on_init", "on_test_start", "on_test_stop", "on_request")


class ScriptError(Exception):
    """An exception inside a scenario's Python function, located in the module."""


def where(exc: BaseException, module_file: str | None) -> str:
    """``hooks.py:12 in add_to_cart`` for the innermost frame of the module that raised (or the innermost)."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if module_file and Path(f.filename) == Path(module_file)] or frames
    if not mine:
        return "?"
    frame = mine[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"


def describe(exc: BaseException, module_file: str | None) -> str:
    return f"{where(exc, module_file)}: {type(exc).__name__}: {exc}"


@dataclass
class Script:
    """A loaded scenario module: its functions and hooks."""

    path: Path
    module: ModuleType
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)  # public, defined in the module

    @property
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {name: fn for name, fn in self.functions.items() if name not in HOOKS}

    def hook(self, name: str) -> Callable[..., Any] | None:
        return self.functions.get(name)

    def function(self, name: str) -> Callable[..., Any]:
        return self.functions[name]

    def call_hook(self, name: str, *args: Any) -> str | None:
        """Run a lifecycle hook if the module has it; an error is logged and returned, never raised."""
        hook = self.functions.get(name)
        if hook is None:
            return None
        try:
            hook(*args)
        except Exception as exc:
            message = f"{name} failed: {describe(exc, str(self.path))}"
            log.error("%s", message)
            return message
        return None


def load_script(path: Path) -> Script:
    """Import the module at ``path``; ``ScriptLoadError`` with the file's line for a syntax or import error."""
    name = f"lrun_scenario_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ScriptLoadError(Problem(str(path), 1, 1, "not a Python module (the file should end in .py)"))
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.append(folder)  # so the module can import its neighbours
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise ScriptLoadError(
            Problem(str(path), exc.lineno or 1, exc.offset or 1, f"Python syntax error: {exc.msg}")
        ) from None
    except BaseException as exc:  # anything the module does at import time
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == path.resolve()]
        line = frames[-1].lineno if frames else 1
        raise ScriptLoadError(
            Problem(str(path), line or 1, 1, f"the module failed to import: {type(exc).__name__}: {exc}")
        ) from None
    functions: dict[str, Callable[..., Any]] = {
        n: f
        for n, f in vars(module).items()
        if inspect.isfunction(f) and f.__module__ == module.__name__ and not n.startswith("_")
    }
    return Script(path.resolve(), module, functions)


class ScriptLoadError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


# ----------------------------------------------------------------------------------------------- at run time


def safe(fn: Callable[..., Any], module_file: str) -> Callable[..., Any]:
    """``fn`` with its exceptions turned into ``ScriptError`` saying where in the module they happened."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise ScriptError(describe(exc, module_file)) from exc

    call.__name__ = fn.__name__
    return call


def template_functions(script: Script | None) -> Mapping[str, Callable[..., Any]]:
    """The module's functions as template filters and globals (errors located in the module)."""
    if script is None:
        return {}
    return {name: safe(fn, str(script.path)) for name, fn in script.filters.items()}


@dataclass
class HookEnvironment:
    """What lifecycle hooks get: ``on_init(env)``, ``on_test_start(env)``, ``on_test_stop(env)``.

    ``variables`` is given to every user (after the setup steps' own), so a hook can prepare test data.
    """

    scenario: str
    host: str
    settings: Any
    variables: dict[str, Any]
    stats: Any = None
    runner: Any = None


def request_hook(script: Script | None, warn: Callable[[str], None]) -> Callable[..., None] | None:
    """The module's ``on_request(user, result)``, with its errors reported once, or None."""
    hook = script.hook("on_request") if script is not None else None
    if hook is None or script is None:
        return None
    module_file = str(script.path)
    failed: list[str] = []

    def call(user: Any, result: Any) -> None:
        try:
            hook(user, result)
        except Exception as exc:
            if not failed:
                failed.append(describe(exc, module_file))
                warn(f"on_request failed (reported once): {failed[0]}")

    return call
