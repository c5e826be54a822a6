"""Every transport's framing decoder (`FrameDecoder`): QEMU stream (u32 big-endian length, up
to 4096 + 65536 bytes), vmnet and stdio (u16 little-endian), with the transports' limits.

Input: byte 0 picks the framing (bit 0..1) and how the stream is cut into reads (the
rest of it: 1..63 bytes, 0 = all at once); the rest is the stream. Properties: no
exception escapes but `FramingError`; cut or whole, the same frames and the same error;
the frames are what a reference decoder finds, each no longer than the limit; re-encoding
them gives back the stream's decoded prefix; `pending` is the bytes after the last frame.
"""

from __future__ import annotations

import struct

from bench.fuzz.frame_checks import require
from gateway.edges.transports.framing import (QEMU_MAX_FRAME, QEMU_PREFIX, VMNET_PREFIX, FrameDecoder, FramingError,
                                              encode_frame)

NAME = "stream_framing"
FRAMINGS = [(QEMU_PREFIX, QEMU_MAX_FRAME), (VMNET_PREFIX, 0xFFFF), (VMNET_PREFIX, 1500 + 50),
            (QEMU_PREFIX, 1514)]


def seeds() -> list[bytes]:
    frame = bytes(range(60))
    return [bytes([0]) + QEMU_PREFIX.pack(60) + frame * 1 + QEMU_PREFIX.pack(3) + b"abc",
            bytes([1 | 4 << 2]) + VMNET_PREFIX.pack(60) + frame + VMNET_PREFIX.pack(60) + frame[:10],
            bytes([3]) + QEMU_PREFIX.pack(0x7FFFFFFF)]


def _reference(stream: bytes, prefix: struct.Struct, limit: int) -> tuple[list[bytes], bool, int]:
    frames, offset = [], 0
    while len(stream) - offset >= prefix.size:
        (n,) = prefix.unpack_from(stream, offset)
        if n > limit:
            return frames, True, offset
        if offset + prefix.size + n > len(stream):
            break
        frames.append(stream[offset + prefix.size:offset + prefix.size + n])
        offset += prefix.size + n
    return frames, False, offset


def _decode(chunks: list[bytes], prefix: struct.Struct, limit: int) -> tuple[list[bytes], bool, int]:
    decoder = FrameDecoder(prefix, limit)
    frames: list[bytes] = []
    for chunk in chunks:
        try:
            frames.extend(decoder.feed(chunk))
        except FramingError as e:
            return frames + e.frames, True, -1
    return frames, False, decoder.pending


def check(data: bytes) -> None:
    if not data:
        return
    prefix, limit = FRAMINGS[data[0] & 3]
    cut = data[0] >> 2
    stream = data[1:]
    expected, error, consumed = _reference(stream, prefix, limit)
    whole = _decode([stream], prefix, limit)
    pieces = [stream[i:i + cut] for i in range(0, len(stream), cut)] if cut else [stream]
    cut_up = _decode(pieces, prefix, limit)
    require(whole[0] == expected and whole[1] == error, "decoded frames differ from the reference")
    require(cut_up[:2] == whole[:2], "the frames depend on how the stream was cut")
    require(all(len(f) <= limit for f in whole[0]), "a frame over the limit")
    require(b"".join(encode_frame(prefix, f) for f in whole[0]) == stream[:consumed], "re-encoding differs")
    if not error:
        require(whole[2] == cut_up[2] == len(stream) - consumed, "pending is not the bytes after the last frame")
