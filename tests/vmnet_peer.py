"""A hyperkit-like vmnet client for the tests: the handshake (49-byte Init both ways, 41-byte
command, 258-byte response) and then u16 little-endian length + frame, written out with struct."""

from __future__ import annotations

import hashlib
import socket
import struct

import trio

from gateway.core.addresses import format_mac


UUID_A = "11111111-2222-4333-8444-555555555555"
UUID_B = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
OUR_INIT = b"VMN3T" + struct.pack("<I", 22) + b"0123456789012345678901234567890123456789"


def expected_mac(uuid: str) -> bytes:
    """Our documented rule: 02 + the first 5 bytes of SHA-256 of the lower-case UUID."""
    return b"\x02" + hashlib.sha256(uuid.lower().encode()).digest()[:5]


class VmnetPeer:
    """A hyperkit-like client."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.buffer = b""
        self.mac = ""

    @classmethod
    async def connect(cls, path: str) -> "VmnetPeer":
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.connect(path)
        return cls(sock)

    async def recv_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            data = await self.sock.recv(65536)
            if not data:
                raise EOFError(f"EOF after {len(self.buffer)} of {n} bytes")
            self.buffer += data
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    async def read_to_eof(self) -> bytes:
        data = self.buffer
        self.buffer = b""
        while chunk := await self.sock.recv(65536):
            data += chunk
        return data

    async def send_init(self, version: int = 22) -> None:
        await self.sock.send(b"VMN3T" + struct.pack("<I", version) + b"test-client".ljust(40, b"\0"))

    async def handshake(self, uuid: str | bytes, preferred_ip: str | None = None) -> bytes:
        """Init, command, response; returns the 258-byte response (and remembers the MAC)."""
        await self.send_init()
        assert await self.recv_exactly(49) == OUR_INIT
        raw_uuid = uuid.encode() if isinstance(uuid, str) else uuid
        if preferred_ip is None:
            command = b"\x01" + raw_uuid + bytes(4)
        else:
            command = b"\x08" + raw_uuid + bytes(int(o) for o in preferred_ip.split("."))[::-1]
        assert len(command) == 41
        await self.sock.send(command)
        response = await self.recv_exactly(258)
        if response[0] == 0x01:
            self.mac = format_mac(response[5:11])
        return response

    async def send(self, frame: bytes) -> None:
        await self.sock.send(struct.pack("<H", len(frame)) + frame)

    async def receive(self) -> bytes:
        (length,) = struct.unpack("<H", await self.recv_exactly(2))
        return await self.recv_exactly(length)

    def close(self) -> None:
        self.sock.close()
