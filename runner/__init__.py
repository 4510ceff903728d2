"""lrun: declarative load testing.

The Python API, from ``runner.api`` (imported on first use, so ``import runner`` stays light): ``load``,
``settings``, ``run`` → ``Outcome``, ``Events``, ``require_gevent``; errors ``LrunError``, ``ScenarioError``,
``RunError``. See the README's "Python API" section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "load": "runner.api",
    "settings": "runner.api",
    "run": "runner.api",
    "Outcome": "runner.api",
    "require_gevent": "runner.api",
    "Events": "runner.events",
    "LrunError": "runner.errors",
    "ScenarioError": "runner.errors",
    "RunError": "runner.errors",
}
__all__ = [
    "Events",
    "LrunError",
    "Outcome",
    "RunError",
    "ScenarioError",
    "__version__",
    "load",
    "require_gevent",
    "run",
    "settings",
]

if TYPE_CHECKING:
    from runner.api import Outcome, load, require_gevent, run, settings
    from runner.errors import LrunError, RunError, ScenarioError
    from runner.events import Events


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
