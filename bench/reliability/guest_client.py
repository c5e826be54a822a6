"""A well-behaved guest that polls NTP over one of the gateway's listening transports and records what it gets.

Used by the storm and flood items: it runs in a thread of the bench process, sends one
NTP request every `interval` seconds from its own UDP port, and counts the replies whose
originate timestamp matches, with their delays. `Wire` says how it reaches the gateway:
QEMU's stream framing over a Unix socket (the default) or loopback TCP (`--qemu-socket`),
one frame per packet on a Unix SOCK_SEQPACKET socket (`--bess`), or the vmnet handshake
and u16 little-endian framing (`--vmnet`, the guest's MAC then the one the gateway assigns).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

from dataclasses import dataclass
from typing import Callable

from bench.common import GUEST_MAC, ntp_request, percentile, udp_frame

#: vmnet's handshake, hyperkit's client side: Init ("VMN3T", LE u32 22, a 40-byte commit), then an
#: Ethernet command (1, a 36-byte UUID, 4 zero bytes); the server answers Init and a 258-byte VIF
_VMNET_INIT = b"VMN3T" + struct.pack("<I", 22) + b"0" * 40
_VMNET_RESPONSE = 258


@dataclass(frozen=True)
class Wire:
    """How a guest reaches the gateway: the socket, the framing, any handshake (returns the guest's MAC)."""

    kind: str
    family: int
    type: int
    address: object
    encode: Callable[[bytes], bytes]
    decode: Callable[[bytearray, bytes], list[bytes]]
    handshake: Callable[[socket.socket, int], bytes] | None = None

    def connect(self, number: int = 0) -> tuple[socket.socket, bytes]:
        sock = socket.socket(self.family, self.type)
        sock.settimeout(5)
        sock.connect(self.address)
        mac = self.handshake(sock, number) if self.handshake else GUEST_MAC
        sock.settimeout(0.05)
        return sock, mac


def _prefixed(prefix: struct.Struct) -> Callable[[bytearray, bytes], list[bytes]]:
    def decode(buffer: bytearray, data: bytes) -> list[bytes]:
        buffer += data
        frames = []
        while len(buffer) >= prefix.size:
            (n,) = prefix.unpack_from(buffer)
            if len(buffer) < prefix.size + n:
                break
            frames.append(bytes(buffer[prefix.size:prefix.size + n]))
            del buffer[:prefix.size + n]
        return frames
    return decode


_U32_BE, _U16_LE = struct.Struct("!I"), struct.Struct("<H")


def _vmnet_handshake(sock: socket.socket, number: int) -> bytes:
    sock.sendall(_VMNET_INIT)
    _read_exactly(sock, len(_VMNET_INIT))
    uuid = f"{number:08x}-2222-4333-8444-555555555555".encode()
    sock.sendall(bytes([1]) + uuid + bytes(4))
    response = _read_exactly(sock, _VMNET_RESPONSE)
    if response[0] != 1:
        raise ConnectionError(f"vmnet: the gateway refused the guest: {response[2:2 + response[1]]!r}")
    return response[5:11]  # after the type, LE u16 mtu and LE u16 max_packet_size: the MAC


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the gateway closed the connection during the handshake")
        data += chunk
    return data


def wire(kind: str, address: object) -> Wire:
    """The `Wire` of transport `kind` ("qemu-stream", "qemu-socket", "bess", "vmnet") at `address`."""
    if kind == "qemu-stream":
        return Wire(kind, socket.AF_UNIX, socket.SOCK_STREAM, address, lambda f: _U32_BE.pack(len(f)) + f,
                    _prefixed(_U32_BE))
    if kind == "qemu-socket":
        return Wire(kind, socket.AF_INET, socket.SOCK_STREAM, address, lambda f: _U32_BE.pack(len(f)) + f,
                    _prefixed(_U32_BE))
    if kind == "bess":
        return Wire(kind, socket.AF_UNIX, socket.SOCK_SEQPACKET, address, lambda f: f, lambda buffer, data: [data])
    if kind == "vmnet":
        return Wire(kind, socket.AF_UNIX, socket.SOCK_STREAM, address, lambda f: _U16_LE.pack(len(f)) + f,
                    _prefixed(_U16_LE), _vmnet_handshake)
    raise ValueError(f"no wire for {kind!r}")


class PollingGuest:
    def __init__(self, path: str | Wire, *, interval: float = 0.05, sport: int = 41000, timeout: float = 1.0,
                 number: int = 0) -> None:
        """`path`: a `--qemu-stream` socket path, or the `Wire` to reach the gateway by; `number`
        tells guests apart where the transport assigns each one's identity (vmnet's UUID)."""
        self.wire = path if isinstance(path, Wire) else wire("qemu-stream", path)
        self.interval, self.sport, self.timeout, self.number = interval, sport, timeout, number
        self.sent = 0
        self.delays_ms: list[float] = []
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "PollingGuest":
        self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.summary()

    def summary(self) -> dict:
        delays = self.delays_ms
        return {"sent": self.sent, "answered": len(delays),
                "answered_ratio": round(len(delays) / self.sent, 4) if self.sent else 0.0,
                "p50_delay_ms": round(percentile(delays, 50), 3) if delays else None,
                "p99_delay_ms": round(percentile(delays, 99), 3) if delays else None,
                "error": self.error}

    def _run(self) -> None:
        try:
            sock, mac = self.wire.connect(self.number)
            with sock:
                buffer = bytearray()
                while not self._stop.is_set() and self.sent < 1_000_000:
                    transmit = os.urandom(8)
                    frame = udp_frame(ntp_request(int.from_bytes(transmit, "big")), self.sport, src_mac=mac)
                    t0 = time.monotonic()
                    sock.sendall(self.wire.encode(frame))
                    self.sent += 1
                    while time.monotonic() - t0 < self.timeout:
                        if any(len(f) >= 90 and f[23] == 17 and f[66:74] == transmit
                               for f in self._read(sock, buffer)):
                            self.delays_ms.append((time.monotonic() - t0) * 1000)
                            break
                    self._stop.wait(max(0.0, self.interval - (time.monotonic() - t0)))
        except OSError as e:
            self.error = f"{type(e).__name__}: {e}"

    def _read(self, sock: socket.socket, buffer: bytearray) -> list[bytes]:
        try:
            data = sock.recv(65536)
        except (BlockingIOError, socket.timeout):
            return []
        if not data:
            raise ConnectionError("the gateway closed the connection")
        return self.wire.decode(buffer, data)
