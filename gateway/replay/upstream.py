"""`--upstream HOST:PORT` for a replay: each forwarded request really goes to an SNTP server on loopback.

The one replay mode with I/O. As the runtime's `UpstreamDriver` does, each
flow (one guest source IP and port) gets its own connected UDP socket, closed
when the time service closes the flow. Each request is sent and its answer
awaited, at most `timeout` seconds, before the replay moves on: the server's
own clock gives T2 and T3, and the reply frame is stamped with the request's
time plus the measured round trip. Unanswered requests are counted by reason.
"""

from __future__ import annotations

import socket
import time
from collections import Counter

from gateway.core.flows import Flow

__all__ = ["UdpUpstream", "DEFAULT_TIMEOUT"]

#: how long one request waits for the server's answer
DEFAULT_TIMEOUT = 1.0
_MAX_DATAGRAM = 65535


class UdpUpstream:
    """Answers forwarded requests by asking the server at (host, port); an `gateway.replay.engine.Upstream`."""

    def __init__(self, host: str, port: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.address = (host, port)
        self.timeout = timeout
        self.description = f"{host}:{port}"
        self.drops: Counter[str] = Counter()
        self._sockets: dict[int, socket.socket] = {}

    def answer(self, flow: Flow, request: bytes, now_ns: int) -> tuple[bytes | None, int]:
        sock = self._sockets.get(flow.id)
        if sock is None:
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            except OSError as e:  # EMFILE: more flows than file descriptors
                self.drops[f"upstream: cannot open a flow socket ({e.strerror})"] += 1
                return None, 0
            sock.connect(self.address)  # a numeric loopback address: no lookup, returns at once
            self._sockets[flow.id] = sock
        _discard_stale(sock)
        sock.settimeout(self.timeout)
        started = time.monotonic_ns()
        try:
            sock.send(request)
            reply = sock.recv(_MAX_DATAGRAM)
        except TimeoutError:
            self.drops[f"upstream: no answer within {self.timeout:g} s"] += 1
            return None, 0
        except ConnectionRefusedError:
            self.drops["upstream: port unreachable (no server listening)"] += 1
            return None, 0
        except OSError as e:
            self.drops[f"upstream: send or receive failed ({e.strerror})"] += 1
            return None, 0
        return reply, time.monotonic_ns() - started

    def flows_closed(self, flows: list[Flow]) -> None:
        for flow in flows:
            sock = self._sockets.pop(flow.id, None)
            if sock is not None:
                sock.close()

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()


def _discard_stale(sock: socket.socket) -> None:
    """Drop late answers to earlier requests on this flow (one that timed out), so they are not taken for this one."""
    sock.setblocking(False)
    while True:
        try:
            sock.recv(_MAX_DATAGRAM)
        except OSError:  # BlockingIOError: nothing (more) queued; ConnectionRefusedError: an old ICMP error
            return
