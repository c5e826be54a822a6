"""Length-prefixed frame streams, sans-IO: QEMU's `-netdev stream` (u32 big-endian) and
the vmnet/stdio protocols (u16 little-endian).

`FrameDecoder.feed(data)` takes whatever bytes the stream delivered and returns
the complete frames in it, keeping any partial frame for the next call. A
length above `max_frame` is a protocol error (`FramingError`): the connection
cannot be resynchronised and must be closed.
"""

from __future__ import annotations

import struct

__all__ = ["FramingError", "FrameDecoder", "encode_frame", "QEMU_PREFIX", "VMNET_PREFIX",
           "QEMU_MAX_FRAME", "GVPROXY_MAX_FRAME"]

QEMU_PREFIX = struct.Struct("!I")  # QEMU net/stream.c: a 4-byte big-endian length
VMNET_PREFIX = struct.Struct("<H")  # hyperkit/vpnkit: a 2-byte little-endian length
#: QEMU accepts frames up to NET_BUFSIZE = 4096 + 65536 bytes
QEMU_MAX_FRAME = 4096 + 65536
#: gvisor-tap-vsock rejects frames over 128 KiB (used for its bess peers)
GVPROXY_MAX_FRAME = 128 * 1024


class FramingError(Exception):
    """The peer broke the framing; the connection must be closed.

    `frames` are the complete frames that came before the bad length in the same
    `feed`: they are the guest's, and are still to be handled before closing.
    """

    def __init__(self, message: str, frames: list[bytes] | None = None) -> None:
        super().__init__(message)
        self.frames = frames if frames is not None else []


class FrameDecoder:
    def __init__(self, prefix: struct.Struct, max_frame: int) -> None:
        self._prefix = prefix
        self._max_frame = max_frame
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        frames = []
        prefix = self._prefix
        prefix_len = prefix.size
        offset = 0
        available = len(buffer)
        while available - offset >= prefix_len:
            (length,) = prefix.unpack_from(buffer, offset)
            if length > self._max_frame:
                del buffer[:offset]
                raise FramingError(f"frame length {length} exceeds the limit of {self._max_frame} bytes", frames)
            end = offset + prefix_len + length
            if end > available:
                break
            frames.append(bytes(buffer[offset + prefix_len:end]))
            offset = end
        if offset:
            del buffer[:offset]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back (non-zero at EOF means the peer left mid-frame)."""
        return len(self._buffer)


def encode_frame(prefix: struct.Struct, frame: bytes) -> bytes:
    return prefix.pack(len(frame)) + frame
