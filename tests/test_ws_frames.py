"""The WebSocket common-case frame codec (runner/protocols/ws_frames): what it decodes itself equals what wsproto
decodes, and everything else is left to wsproto untouched."""

from __future__ import annotations

import struct

import pytest
from wsproto.frame_protocol import FrameDecoder, Opcode

from runner.protocols import ws_frames


def server_frame(payload: bytes, first: int = 0x81, masked: bool = False, long: bool = False) -> bytes:
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if long:
        head = struct.pack("!BBQ", first, mask_bit | 127, n)
    elif n < 126:
        head = bytes((first, mask_bit | n))
    else:
        head = struct.pack("!BBH", first, mask_bit | 126, n)
    return head + (b"\0\0\0\0" if masked else b"") + payload


def decode_all(buf: bytes) -> tuple[list[tuple[str | bytes, int]], int, bool]:
    got: list[tuple[str | bytes, int]] = []
    used, rest = ws_frames.decode(buf, lambda data, size: got.append((data, size)), lambda: False)
    return got, used, rest


@pytest.mark.parametrize("size", [0, 1, 125, 126, 4000, 65535, 65536, 2**20])
def test_encoded_frames_are_what_wsproto_reads(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    for opcode, kind in ((ws_frames.BINARY, Opcode.BINARY), (ws_frames.TEXT, Opcode.TEXT)):
        decoder = FrameDecoder(client=False)  # the server's side: it unmasks
        decoder.receive_bytes(ws_frames.encode(payload, opcode))
        frame = decoder.process_buffer()
        assert frame is not None and frame.opcode is kind and frame.message_finished
        assert frame.payload == payload and not decoder.buffer.buffer


def test_common_frames_decoded_in_order_with_their_sizes() -> None:
    text = "prix: 12,5 €"
    buf = server_frame(text.encode()) + server_frame(b"\x00\xff" * 100, 0x82) + server_frame(b"")
    got, used, rest = decode_all(buf)
    assert got == [(text, len(text.encode())), (b"\x00\xff" * 100, 200), ("", 0)]
    assert used == len(buf) and not rest


@pytest.mark.parametrize(
    "frame",
    [
        server_frame(b"ping", 0x89),  # a control frame
        server_frame(b"part", 0x01),  # the first fragment of a message
        server_frame(b"rest", 0x80),  # a continuation
        server_frame(b"deflated", 0xC1),  # RSV1: an extension's frame
        server_frame(b"masked", masked=True),  # servers must not mask
        server_frame(b"x" * 10, long=True),  # a 64-bit length
        server_frame(b"\xff\xfe"),  # invalid UTF-8: wsproto closes with 1007
        b"\x81",  # not even a header yet: incomplete, kept
    ],
)
def test_anything_else_is_left_to_wsproto_from_its_first_byte(frame: bytes) -> None:
    before = server_frame(b"ok")
    got, used, rest = decode_all(before + frame)
    assert got == [("ok", 2)] and used == len(before)
    assert rest is (frame != b"\x81")


def test_an_unfinished_frame_waits_for_the_rest() -> None:
    whole = server_frame(b"y" * 300)
    for cut in (1, 3, 100, len(whole) - 1):
        got, used, rest = decode_all(whole[:cut])
        assert (got, used, rest) == ([], 0, False)
    assert decode_all(whole)[0] == [("y" * 300, 300)]


def test_every_short_length_and_a_fresh_mask_per_frame() -> None:
    """Payloads under 126 bytes are framed from tables (head, key and payload as one integer): each length reads
    back whole, and the same message sent twice goes with two different masking keys (RFC 6455 5.3)."""
    for size in range(126):
        payload = bytes((i * 7 + size) % 256 for i in range(size))
        decoder = FrameDecoder(client=False)
        decoder.receive_bytes(ws_frames.encode(payload, ws_frames.TEXT))
        frame = decoder.process_buffer()
        assert frame is not None and frame.payload == payload and not decoder.buffer.buffer
    keys = {ws_frames.encode(b"same message", ws_frames.TEXT)[2:6] for _ in range(50)}
    assert len(keys) > 40  # 32 random bits a frame: 50 draws barely ever repeat


def test_the_start_of_a_frame_kept_when_wsproto_takes_over_is_given_to_it_whole() -> None:
    """A frame's first bytes wait in the connection (``_pending``); when wsproto takes over before the rest comes
    (the scenario sent a close: ``_fast`` is cleared), it gets them with the rest, not the rest alone."""
    from wsproto.connection import Connection, ConnectionType
    from wsproto.events import TextMessage

    from runner.protocols.websocket import WebSocket

    socket = WebSocket("ws")
    socket._ws = Connection(ConnectionType.CLIENT)
    socket.closed = None
    socket._fast = socket._idle()
    frame = server_frame(b"hello")
    assert socket._common(frame[:3]) is False and socket._pending == frame[:3]
    socket._fast = False  # as close() does before sending its close frame
    assert socket._common(frame[3:]) is True and socket._pending == b""
    events = list(socket._ws.events())
    assert len(events) == 1 and isinstance(events[0], TextMessage) and events[0].data == "hello"
