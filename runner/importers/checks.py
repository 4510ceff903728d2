"""Checkpoints that catch soft failures, as a tester adds them after recording: a redirect goes where it went
(the recorded ``Location`` as a pattern, not only the status), a page shows its recorded title and heading
(typed data and correlated ids templated, or the check left out), and a failed login stops the iteration
instead of running the rest logged out. With ``--pool``, a typed value is templated wherever it appears.
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from runner.importers.correlate import Correlations, looks_like_token
from runner.importers.links import is_id
from runner.importers.steps import Step, literal
from runner.importers.write import POOL, Pool, expected_status, title_of

HEADING = re.compile(r"<h1[^>]*>\s*([^<]{1,120}?)\s*</h1>", re.IGNORECASE)
PASSWORD = re.compile(r"pass(word|wd)?$|^pwd$", re.IGNORECASE)
VARYING = r"[^/?&#]+"


def location_pattern(location: str, typed: frozenset[str] = frozenset()) -> str:
    """The recorded ``Location`` as an anchored regex: any host (``-H`` retargets); ids, tokens and ``typed``
    values (another data row types others) vary."""
    parts = urlsplit(location)
    rest = location[len(f"{parts.scheme}://{parts.netloc}") :] if parts.netloc else location
    pieces = re.split(r"([/?&=#])", rest)
    body = "".join(
        VARYING
        if piece and (is_id(piece) or looks_like_token(piece, 6) or unquote_plus(piece) in typed)
        else re.escape(piece)
        for piece in pieces
    )
    return "^" + (r"(?:https?://[^/]+)?" if parts.netloc else "") + body + "$"


def is_login(step: Step) -> bool:
    """A request that sends a password field."""
    return any(PASSWORD.search(key) for key, _ in step.form or []) or (
        isinstance(step.json, dict) and any(PASSWORD.search(str(key)) for key in step.json)
    )


def _templated(text: str, step: Step, values: dict[str, str], defined: set[str]) -> str | None:
    """``text`` with typed values and correlated ids as templates, or None when it holds one not known yet."""
    for value, name in sorted(values.items(), key=lambda vn: -len(vn[0])):
        pattern = rf"(?<![\w]){re.escape(value)}(?![\w])"
        if not re.search(pattern, text):
            continue
        if (name.startswith(f"{POOL}.") or name in defined) and len(value) >= 3:
            text = re.sub(pattern, f"{{{{ {name} }}}}".replace("\\", "\\\\"), text)
        else:
            return None
    return text


def add_checks(steps: list[Step], found: Correlations, pool: Pool | None) -> None:
    """Each step's checkpoints (``Step.checks``)."""
    values: dict[str, str] = {}
    if pool is not None:
        values.update({v: f"{POOL}.{c}" for c, v in zip(pool.columns, pool.row, strict=True) if len(v) >= 3})
        _template_everywhere(steps, values)
    values.update({c.value: c.name for c in found.found if c.value not in values and len(c.value) <= 40})
    defined: set[str] = set()
    typed = frozenset(pool.row if pool is not None else ())
    for step in steps:
        checks: list[dict[str, Any]] = [{"status": expected_status(step.entry.status)}]
        location = step.entry.response_header("location")
        if location and 300 <= step.entry.status < 400:
            checks.append({"header": "Location", "matches": location_pattern(location, typed)})
        title = title_of(step)
        texts = [html.unescape(title) if title and "&" not in title else title]
        heading = HEADING.search(step.entry.response_text or "") if title else None
        if heading and heading.group(1) not in (title or "") and "&" not in heading.group(1):
            texts.append(heading.group(1))
        for text in texts:
            if text and (done := _templated(literal(text), step, values, defined)) is not None:  # recorded: data
                checks.append({"contains": done})
        if is_login(step):
            for check in checks:
                check["on_fail"] = "stop_iteration"
        step.checks = checks
        defined.update(step.extract)


def _template_everywhere(steps: list[Step], values: dict[str, str]) -> None:
    """A typed value sent elsewhere than its field (a later search, a path, a JSON body) becomes its template
    too; exact values only, never a part of a longer one, and never a number (``1`` is not the typed ``1``)."""
    wanted = {v: f"{{{{ {n} }}}}" for v, n in values.items() if not v.isdigit()}
    if not wanted:
        return
    for step in steps:
        if "{{" not in step.url:
            step.url = "/".join(wanted.get(s, s) for s in step.url.split("/"))
        step.query = [(k, wanted.get(v, v)) for k, v in step.query]
        if step.form is not None:
            step.form = [(k, wanted.get(v, v)) for k, v in step.form]
        if isinstance(step.json, dict):
            step.json = {k: wanted.get(v, v) if isinstance(v, str) else v for k, v in step.json.items()}
