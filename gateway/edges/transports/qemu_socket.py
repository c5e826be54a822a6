"""QEMU `-netdev socket` over TCP: hostclock listens on a loopback TCP port, QEMU connects.

QEMU's legacy `-netdev socket,id=n0,connect=127.0.0.1:PORT` (and `-netdev stream,
id=n0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=PORT`) speak TCP,
not Unix sockets, with the same framing as `-netdev stream` over Unix: each
frame preceded by its length as a 4-byte big-endian integer (QEMU net/socket.c
and net/stream.c). Each connection is one guest.

Only a loopback address is served: the guest's link must not be reachable from
another machine, and by design nothing of hostclock's leaves this one. A
non-loopback address is a configuration error naming the fix.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections import Counter

import trio

from gateway.core.admission import DEFAULT_MAX_GUESTS
from gateway.core.config import ConfigError, parse_host_port
from gateway.edges.transports.base import FrameHandler, TransportError
from gateway.edges.transports.listener import LISTEN_BACKLOG, serve_listener
from gateway.edges.transports.qemu_stream import serve_qemu_framed_guest

__all__ = ["QemuSocketTransport", "parse_loopback_address"]

log = logging.getLogger("hostclock.transport.qemu-socket")



def parse_loopback_address(text: str) -> tuple[str, int]:
    """'127.0.0.1:PORT' -> ('127.0.0.1', PORT); ConfigError (one line naming the fix) otherwise."""
    host, port = parse_host_port(text, what="--qemu-socket")
    if not ipaddress.IPv4Address(host).is_loopback:
        raise ConfigError(f"--qemu-socket {text}: {host} is not a loopback address; QEMU runs on this host and "
                          f"the guest's link must not be reachable from others: use 127.0.0.1:{port}")
    return host, port


class QemuSocketTransport:
    def __init__(self, address: str) -> None:
        self.host, self.port = parse_loopback_address(address)
        self.description = f"qemu-socket {self.host}:{self.port}"
        #: connections served at once; more are refused (`[access] max_guests`)
        self.max_guests = DEFAULT_MAX_GUESTS
        #: frames dropped by the transport's links, by reason
        self.drops: Counter[str] = Counter()

    def _listen(self) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        # a restart must not wait for the last run's connections to leave TIME_WAIT
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
        except OSError as e:
            listener.close()
            if e.errno == errno.EADDRINUSE:
                raise TransportError(f"{self.host}:{self.port} is in use: stop the other server or choose "
                                     "another port") from None
            raise TransportError(f"cannot listen on {self.host}:{self.port}: {e.strerror}") from None
        listener.listen(LISTEN_BACKLOG)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]  # port 0 asks the kernel for a free one
        self.description = f"qemu-socket {self.host}:{self.port}"
        return listener

    async def run(self, on_frame: FrameHandler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async def serve_guest(conn: socket.socket, number: int) -> None:
            peer = "%s:%d" % conn.getpeername()[:2]
            await serve_qemu_framed_guest(conn, f"{self.description} #{number} (from {peer})", self.drops,
                                          on_frame, log)

        await serve_listener(self._listen(), serve_guest, self.description, prepare=_no_delay,
                             max_guests=self.max_guests, task_status=task_status)


def _no_delay(conn: socket.socket) -> None:
    """Frames go out as written: an NTP reply held back by Nagle's algorithm would read as offset."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
