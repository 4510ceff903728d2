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
_SMALL = 126  # payloads shorter than this have their length in the second byte: their frames are made from tables
# For a payload of n bytes (n < _SMALL), big-endian: the frame's head shifted above the key and the payload; the key
# repeated over the payload (times the 32-bit key: no carries), and the shift that cuts the repeat down to n bytes.
_HEAD_ABOVE = {
    opcode: [((0x80 | opcode) << 8 | 0x80 | n) << ((n + 4) << 3) for n in range(_SMALL)] for opcode in (TEXT, BINARY)
}
_REPEAT = [sum(1 << (32 * j) for j in range((n + 3) >> 2)) for n in range(_SMALL)]
_CUT = [(((n + 3) >> 2 << 2) - n) << 3 for n in range(_SMALL)]


def encode(payload: bytes, opcode: int) -> bytes:
    """One masked client frame holding the whole message (a fresh random key per frame, RFC 6455 5.3)."""
    n = len(payload)
    key = _mask_key(32)
    if n < _SMALL:  # head, key and masked payload as one integer: one conversion, no concatenation
        masked = int.from_bytes(payload) ^ (key * _REPEAT[n] >> _CUT[n])
        return (_HEAD_ABOVE[opcode][n] | key << (n << 3) | masked).to_bytes(n + 6)
    first = 0x80 | opcode
    head = _HEAD16.pack(first, 0xFE, n) if n < 65536 else _HEAD64.pack(first, 0xFF, n)
    keyed = key.to_bytes(4, "little")
    mask = int.from_bytes(keyed * ((n + 3) >> 2), "little") & ((1 << (n << 3)) - 1)
    return head + keyed + (int.from_bytes(payload, "little") ^ mask).to_bytes(n, "little")


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
