"""Hints for misspelt names, shared by the scenario checks, the settings, thresholds and monitoring."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """A hint naming the candidate closest to ``word`` (GET -> get, hots -> host), or ""."""
    candidates = list(candidates)
    found = [c for c in candidates if c.lower() == str(word).lower()]
    found = found or difflib.get_close_matches(str(word), candidates, n=1, cutoff=0.6)
    return f"did you mean '{found[0]}'?" if found else ""
