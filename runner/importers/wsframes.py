"""WebSocket frames of a HAR: Chrome keeps them on the upgrade entry (status 101, ``_resourceType: websocket``) as
``_webSocketMessages``: ``[{"type": "send"|"receive", "time": epoch_s, "opcode": 1|2, "data": "..."}]``.
Binary frames (opcode 2) are base64. A frame that is not one is left out with a warning, never a traceback."""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any

MAX_FRAME = 1 << 20  # characters: a larger frame is left out (the scenario would carry it as a literal)
MAX_FRAMES = 10_000  # per connection: a longer conversation is cut (a feed's ticks, not what a user does)


@dataclass(slots=True)
class Frame:
    """One recorded message."""

    sent: bool  # True: the client sent it; False: the server did
    time: float  # epoch seconds (0 when not recorded)
    text: str | None  # a text message
    binary: str | None = None  # a binary message, base64 (as the scenario's ``binary:`` takes it)


def _time(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value) / 1000 if value > 1e11 else float(value)  # milliseconds, as some tools write it
    return 0.0


def read_frames(raw: Any, index: int, warnings: list[str]) -> list[Frame] | None:
    """The frames of entry ``index``; None when it recorded none (not a list)."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        warnings.append(f"entry {index}: _webSocketMessages is {type(raw).__name__}, not a list of frames: ignored")
        return None
    frames: list[Frame] = []
    skipped = 0
    for item in raw[:MAX_FRAMES]:
        frame = _frame(item)
        if frame is None:
            skipped += 1
        else:
            frames.append(frame)
    if skipped:
        warnings.append(
            f"entry {index}: {skipped} WebSocket frames left out (not a send/receive of text, or of base64 "
            f"binary, of at most {MAX_FRAME // 1024} KiB)"
        )
    if len(raw) > MAX_FRAMES:
        warnings.append(f"entry {index}: {len(raw) - MAX_FRAMES} WebSocket frames after the first {MAX_FRAMES} cut")
    return frames


def _frame(item: Any) -> Frame | None:
    if not isinstance(item, dict) or item.get("type") not in ("send", "receive"):
        return None
    data, opcode = item.get("data"), item.get("opcode", 1)
    if not isinstance(data, str) or len(data) > MAX_FRAME:
        return None
    sent, time = item["type"] == "send", _time(item.get("time"))
    if opcode == 1:
        return Frame(sent, time, data)
    if opcode == 2:
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return None
        return Frame(sent, time, None, data)
    return None  # control frames (ping, pong, close) are the client's own
