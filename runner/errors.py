"""The exceptions a user can cause, in one place.

``LrunError`` is the root of everything lrun reports to a user without a traceback:

- ``ScenarioError``  one or more ``Problem`` found while loading or validating a scenario file
- ``RunError``       a run could not start or go on (demo target failed to start, bad option value …)

Control-flow signals raised inside a virtual user (``StopIteration_``, ``StopUser``, ``StopTest``) are not
errors and live in ``runner.engine.flow``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a scenario, at a place in a file."""

    path: str
    line: int
    col: int
    message: str
    hint: str = ""
    severity: str = "error"  # or "warning"

    def format(self) -> str:
        text = f"{self.path}:{self.line}:{self.col}: {self.severity + ': ' if self.severity != 'error' else ''}"
        text += self.message
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class LrunError(Exception):
    """A mistake a user can make; printed as a message, never as a traceback."""


@dataclass
class ScenarioError(LrunError):
    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(p.format() for p in self.problems)


class RunError(LrunError):
    """A run could not start or continue."""
