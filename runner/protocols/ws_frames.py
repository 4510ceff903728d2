"""The WebSocket frames of the common case, coded with ``struct`` instead of wsproto's generators.

A client frame (FIN, text or binary, masked) is encoded in one go. A server frame is decoded here only when it is
a whole, unfragmented, unmasked text or binary frame of less than 64 KiB with no RSV bit (no extension); anything
else (control frames, fragments, bigger or malformed frames, invalid UTF-8) is left to wsproto, which knows the
rules and the errors. RFC 6455 section 5.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

TEXT, BINARY = 0x1, 0x2
_HEAD16 = struct.Struct("!BBH")
_HEAD64 = struct.Struct("!BBQ")
_mask_key = random.getrandbits  # a load generator's masks need not be unpredictable to an attacker


def encode(payload: bytes, opcode: int) -> bytes:
    """One masked client frame holding the whole message."""
    n = len(payload)
    first = 0x80 | opcode
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = _HEAD16.pack(first, 0xFE, n)
    else:
        head = _HEAD64.pack(first, 0xFF, n)
    key = _mask_key(32).to_bytes(4, "little")
    if not n:
        return head + key
    mask = int.from_bytes(key * ((n + 3) >> 2), "little") & ((1 << (n << 3)) - 1)
    return head + key + (int.from_bytes(payload, "little") ^ mask).to_bytes(n, "little")


def decode(buf: bytes, deliver: Callable[[str | bytes, int], object], stop: Callable[[], bool]) -> tuple[int, bool]:
    """Deliver the common-case frames at the start of ``buf`` (``deliver(data, size)``), until one is not common,
    is incomplete, or ``stop()``: (bytes consumed, whether the next frame needs wsproto)."""
    pos, n = 0, len(buf)
    while n - pos >= 2:
        b0, b1 = buf[pos], buf[pos + 1]
        if (b0 != 0x81 and b0 != 0x82) or b1 > 126:  # not FIN text/binary, masked, or a 64-bit length
            return pos, True
        if b1 == 126:
            if n - pos < 4:
                return pos, False
            size, start = (buf[pos + 2] << 8) | buf[pos + 3], pos + 4
        else:
            size, start = b1, pos + 2
        end = start + size
        if end > n:
            return pos, False
        payload = buf[start:end]
        if b0 == 0x81:
            try:
                deliver(payload.decode("utf-8"), size)
            except UnicodeDecodeError:
                return pos, True  # wsproto closes with 1007
        else:
            deliver(payload, size)
        pos = end
        if stop():
            break
    return pos, False
