"""A recorded WebSocket conversation as scenario steps: ``ws_connect``, a ``ws_send`` per sent message, a
``ws_receive`` per received message the scenario needs, ``ws_close``.

Each message is a ``Step`` of its own (a received one carries its text as the "response"), so ``correlate``
treats a value a message gave and a later message (or HTTP request) sent like any other: an extractor on the
``ws_receive`` and ``{{ name }}`` where it is used. A received message is kept when it gave such a value or
is the first answer to a sent one; the feed's other messages are the server's (counted unread by the replay).
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from runner.importers.har import json_document
from runner.importers.steps import Step, literal

MATCH_FIELDS = ("type", "event", "action", "op", "kind", "method", "cmd")  # what a protocol names a message by
UPGRADE_HEADERS = frozenset(["upgrade", "connection", "origin", "host", "cookie", "sec-websocket-protocol"])
TEMPLATE = re.compile(r"(\{\{.*?\}\})", re.S)
DEFAULT_TIMEOUT = 10.0  # seconds: the step's own default; a longer recorded wait gets twice that wait


def _is_ws(step: Step) -> bool:
    entry = step.entry
    return entry.frames is not None and (entry.status == 101 or entry.resource_type.lower() == "websocket")


def expand(steps: list[Step]) -> list[Step]:
    """Each WebSocket upgrade replaced by its conversation; all steps in the order they happened."""
    out: list[Step] = []
    count = 0
    for step in steps:
        if not _is_ws(step):
            out.append(step)
            continue
        count += 1
        name = "ws" if count == 1 else f"ws_{count}"
        out += _conversation(step, name)
    return sorted(out, key=lambda s: s.entry.started)  # stable: each conversation keeps its order


def _conversation(connect: Step, name: str) -> list[Step]:
    entry = connect.entry
    connect.ws, connect.connection = "connect", name
    protocols = entry.header("sec-websocket-protocol")
    connect.headers = [(k, v) for k, v in connect.headers if k.lower() not in UPGRADE_HEADERS]
    # a ws_connect has no extractors: what the upgrade's answer holds is no source for correlation
    connect.entry = replace(entry, response_headers=[], response_text=None)
    if protocols:
        connect.ws_options["subprotocols"] = [p.strip() for p in protocols.split(",") if p.strip()]
    steps, at = [connect], entry.started
    for frame in entry.frames or []:
        previous, at = at, max(frame.time, at)  # a frame without a time (or out of order) follows the last
        kind = "send" if frame.sent else "receive"
        text = frame.text
        document = json_document(text) if text is not None else None
        message = replace(
            entry,
            method=kind.upper(),
            url=f"{entry.origin}/",  # no ids in a URL: importers.links leaves messages alone
            query=[],
            headers=[],
            body=None,
            body_type="",
            response_headers=[],
            response_type="application/json" if isinstance(document, dict | list) else "text/plain",
            response_text=None if frame.sent else text,
            started=at,
            duration=0.0,
            frames=None,
        )
        step = Step(message, "", [], [], ws=kind, connection=name)
        if frame.sent and isinstance(document, dict | list):
            step.json = literal(document)
        elif frame.sent and text is not None:
            step.body = literal(text)
        elif frame.sent:
            step.body, step.content_type = frame.binary, "binary"
        if not frame.sent and at - previous > DEFAULT_TIMEOUT / 2:
            step.ws_options["timeout"] = math.ceil(2 * (at - previous))
        steps.append(step)
    ended = replace(entry, method="CLOSE", url=f"{entry.origin}/", headers=[], response_headers=[], frames=None)
    close = Step(replace(ended, response_text=None, started=at, duration=0.0), "", [], [], ws="close")
    close.connection = name
    return [*steps, close]


def prune(steps: list[Step]) -> list[Step]:
    """The received messages the scenario needs: those that gave a value, and the first answer to a send.
    A dropped message's think time goes to the step before it."""
    out: list[Step] = []
    answered: dict[str, bool] = {}
    for step in steps:
        if step.ws == "send":
            answered[step.connection] = False
        elif step.ws == "receive":
            first = answered.get(step.connection) is False
            answered[step.connection] = True
            if not step.extract and not first:
                if out:
                    out[-1].think = round(out[-1].think + step.think, 1)
                continue
        out.append(step)
    return out


def requests_kept(steps: list[Step]) -> int:
    """The recorded requests the steps replay: a WebSocket conversation is one (its upgrade)."""
    return sum(1 for step in steps if step.ws in ("", "connect"))


def matcher(step: Step) -> Any:
    """What the ``ws_receive`` waits for: the message's ``type`` (or alike) field, else the next message."""
    document = json_document(step.entry.response_text or "") if step.entry.response_text else None
    if isinstance(document, dict):
        for key in MATCH_FIELDS:
            value = document.get(key)
            if isinstance(value, str) and 0 < len(value) <= 64 and "{" not in value:
                return {"jsonpath": f"$.{key}", "equals": value}
    return "next"


def _quoted(text: str) -> str:
    """A query key or value percent-encoded, its ``{{ … }}`` (a correlation, an escaped literal) left whole."""
    pieces = TEMPLATE.split(text)
    return "".join(piece if k % 2 else quote(piece, safe="") for k, piece in enumerate(pieces))


def _url(step: Step) -> str:
    if not step.query:
        return step.url
    return f"{step.url}?{'&'.join(f'{_quoted(k)}={_quoted(v)}' for k, v in step.query)}"


def ws_step_dict(step: Step) -> dict[str, Any]:
    """The scenario's step for a WebSocket ``Step``."""
    out: dict[str, Any]
    if step.ws == "connect":
        out = {"ws_connect": _url(step)}
        if step.connection != "ws":
            out["as"] = step.connection
        if step.headers:
            out["headers"] = dict(step.headers)
        if "subprotocols" in step.ws_options:
            out["subprotocols"] = step.ws_options["subprotocols"]
    elif step.ws == "send":
        if step.json is not None:
            out = {"ws_send": {"json": step.json}}
        elif step.content_type == "binary":
            out = {"ws_send": {"binary": step.body}}
        else:
            out = {"ws_send": {"text": step.body or ""}}
    elif step.ws == "receive":
        out = {"ws_receive": matcher(step)}
        out["timeout"] = f"{step.ws_options.get('timeout', int(DEFAULT_TIMEOUT))}s"
        if step.extract:
            out["extract"] = step.extract
    else:
        out = {"ws_close": step.connection}
    if step.connection != "ws" and step.ws in ("send", "receive"):
        out["connection"] = step.connection
    if step.think:
        out["think"] = f"{step.think:g}s"
    return out
