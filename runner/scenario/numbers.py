"""Numbers people give lrun: strict (ASCII digits, no ``_``, finite) and bounded, the same from every door.

The command line, ``LRUN_*`` variables and config files (``runner.config``), the scenario (the pydantic types
below) and the web form and ``POST /swarm`` (``runner.web.control``) all read users, rates, times and counts
here, so ``"１２"``, ``"1_0"``, ``nan``, ``inf`` and ``1e400`` are refused the same way everywhere, with one line
saying what to write. The maxima are documented in the README ("Limits").
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

MAX_USERS_PER_PROCESS = 100_000  # ~4 KiB idle, tens of KiB busy: 100k users is already GBs of memory
MAX_USERS = 10_000_000  # a cluster: 100 workers at the per-process maximum
MIN_RATE = 0.001  # users (or arrivals) per second: one every 16 min 40 s; below that nothing ever starts
MAX_RATE = 1_000_000.0  # per second: more than any process can start; above it is a typo
MAX_DURATION = 30 * 86_400.0  # seconds: a month-long soak is the longest run (and any other time) lrun takes
MAX_ITERATIONS = 10**12
MAX_ARRIVALS = 3_000_000  # in one open-model schedule: 24 MB, made in ~0.9 s; 1,000/s for 50 min, 100/s for 8 h
MAX_COUNT = 10**9  # any other whole number (weights, counts, workers …)
_WHOLE = re.compile(r"[+-]?[0-9]+", re.ASCII)
_NUMBER = re.compile(r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,4})?", re.ASCII)


def _text(value: str) -> str:
    return value.strip(" \t")


def strict_whole(value: Any) -> Any:
    """``value`` as a whole number (an ``int``) when it is one written plainly; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number; got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"expected a whole number; got {value!r}")
        return int(value)
    if isinstance(value, str):
        if not _WHOLE.fullmatch(_text(value)):
            raise ValueError(f"expected a whole number; got {_clip(value)} (write ASCII digits, such as 10)")
        if len(_text(value)) > 30:
            raise ValueError(f"too large a number: {_clip(value)}")
        return int(_text(value))
    return value


def strict_number(value: Any) -> Any:
    """``value`` as a finite float when it is a number written plainly; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number; got {value!r}")
    if isinstance(value, str):
        if not _NUMBER.fullmatch(_text(value)):
            raise ValueError(f"expected a number; got {_clip(value)} (write ASCII digits, such as 2.5)")
        value = float(_text(value))
    if isinstance(value, int):
        if abs(value) >= 10**30:
            raise ValueError(f"too large a number: {_short(value)}")
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number; got {value!r}")
    return value


def whole(value: Any, *, low: int = 0, high: int = MAX_COUNT) -> int:
    """A whole number from ``low`` to ``high``; ValueError saying which bound it broke."""
    number = strict_whole(value)
    if not isinstance(number, int):
        raise ValueError(f"expected a whole number; got {value!r}")
    if number < low:
        raise ValueError(f"must be at least {low}; got {number}")
    if number > high:
        raise ValueError(f"must be at most {high:,}; got {_short(number)}")
    return number


def number(value: Any, *, low: float, high: float, low_open: bool = False) -> float:
    """A finite number in [``low``, ``high``] (``(low, high]`` with ``low_open``); ValueError otherwise."""
    result = strict_number(value)
    if not isinstance(result, float):
        raise ValueError(f"expected a number; got {value!r}")
    if result < low or (low_open and result == low):
        raise ValueError(f"must be {'more than' if low_open else 'at least'} {low:g}; got {result:g}")
    if result > high:
        raise ValueError(f"must be at most {int(high) if high.is_integer() else high:,}; got {result:g}")
    return result


def rate(value: Any) -> float:
    """Users (or arrivals) per second: from MIN_RATE to MAX_RATE."""
    return number(value, low=MIN_RATE, high=MAX_RATE)


def _clip(value: str) -> str:
    return repr(value) if len(value) <= 40 else f"{value[:20]!r}… ({len(value)} characters)"


def _short(value: int) -> str:
    text = str(value)
    return text if len(text) <= 20 else f"{text[:8]}… ({len(text)} digits)"


# pydantic: the scenario's fields. The bounds are pydantic's own (they appear in the JSON schema).
Whole = Annotated[int, BeforeValidator(strict_whole)]
Number = Annotated[float, BeforeValidator(strict_number), Field(allow_inf_nan=False)]
UserCount = Annotated[Whole, Field(ge=0, le=MAX_USERS)]
Rate = Annotated[Number, Field(ge=MIN_RATE, le=MAX_RATE)]
StageRate = Annotated[Number, Field(ge=0, le=MAX_RATE)]  # 0: no arrivals in this stage
