"""A well-behaved guest over QEMU's stream framing that polls NTP and records what it gets.

Used by the storm and flood items: it runs in a thread of the bench process, sends one
NTP request every `interval` seconds from its own UDP port, and counts the replies whose
originate timestamp matches, with their delays.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

from bench.common import ntp_request, percentile, udp_frame


def read_frames(sock: socket.socket, buffer: bytearray) -> list[bytes]:
    """The complete u32-big-endian-prefixed frames in `buffer` after one recv (may be none)."""
    try:
        data = sock.recv(65536)
    except (BlockingIOError, socket.timeout):
        return []
    if not data:
        raise ConnectionError("the gateway closed the connection")
    buffer += data
    frames = []
    while len(buffer) >= 4:
        (n,) = struct.unpack_from("!I", buffer)
        if len(buffer) < 4 + n:
            break
        frames.append(bytes(buffer[4:4 + n]))
        del buffer[:4 + n]
    return frames


class PollingGuest:
    def __init__(self, path: str, *, interval: float = 0.05, sport: int = 41000, timeout: float = 1.0) -> None:
        self.path, self.interval, self.sport, self.timeout = path, interval, sport, timeout
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
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(self.path)
                sock.settimeout(0.05)
                buffer = bytearray()
                while not self._stop.is_set() and self.sent < 1_000_000:
                    transmit = os.urandom(8)
                    frame = udp_frame(ntp_request(int.from_bytes(transmit, "big")), self.sport)
                    t0 = time.monotonic()
                    sock.sendall(struct.pack("!I", len(frame)) + frame)
                    self.sent += 1
                    while time.monotonic() - t0 < self.timeout:
                        if any(len(f) >= 90 and f[23] == 17 and f[66:74] == transmit
                               for f in read_frames(sock, buffer)):
                            self.delays_ms.append((time.monotonic() - t0) * 1000)
                            break
                    self._stop.wait(max(0.0, self.interval - (time.monotonic() - t0)))
        except OSError as e:
            self.error = f"{type(e).__name__}: {e}"
