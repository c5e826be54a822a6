"""A guest as QEMU speaks to a stream transport: connect, then u32 big-endian length + frame, both ways."""

from __future__ import annotations

import struct

import trio


class QemuFramedPeer:
    """One connection; `connect_unix` is `-netdev stream` (unix), `connect_tcp` `-netdev socket,connect=`."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    @classmethod
    async def connect_unix(cls, path: str) -> "QemuFramedPeer":
        return cls(await trio.open_unix_socket(path))

    @classmethod
    async def connect_tcp(cls, port: int) -> "QemuFramedPeer":
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def send(self, frame: bytes) -> None:
        await self.stream.send_all(struct.pack("!I", len(frame)) + frame)

    async def receive(self) -> bytes:
        while True:
            if len(self.buffer) >= 4:
                (length,) = struct.unpack_from("!I", self.buffer)
                if len(self.buffer) >= 4 + length:
                    frame, self.buffer = self.buffer[4:4 + length], self.buffer[4 + length:]
                    return frame
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError
            self.buffer += data
