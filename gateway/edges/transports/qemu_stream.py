"""QEMU `-netdev stream` (and legacy `-netdev socket`): frames on a Unix stream socket,
each preceded by its length as a 4-byte big-endian integer.

hostclock listens; QEMU connects (`-netdev stream,id=n0,server=off,addr.type=unix,
addr.path=PATH`). Each connection is one guest. A guest that disconnects is a
normal event: its link is closed and the next VM may connect.
"""

from __future__ import annotations

import logging
import socket
from collections import Counter

import trio

from gateway.edges.transports.base import FrameHandler
from gateway.edges.transports.framing import QEMU_MAX_FRAME, QEMU_PREFIX
from gateway.edges.transports.stream_link import StreamLink
from gateway.edges.transports.unix_socket import DEFAULT_MAX_GUESTS, serve_connections

__all__ = ["QemuStreamTransport", "serve_qemu_framed_guest"]

log = logging.getLogger("hostclock.transport.qemu-stream")


async def serve_qemu_framed_guest(conn: socket.socket, description: str, drops: Counter[str],
                                  on_frame: FrameHandler, guest_log: logging.Logger = log) -> None:
    """One guest's connection, QEMU's framing (u32 big-endian length + frame), until it ends."""
    link = StreamLink(description, conn.fileno(), conn.fileno(), QEMU_PREFIX, QEMU_MAX_FRAME, drops=drops)
    guest_log.info("guest attached: %s", description)
    reason = await link.serve(on_frame)
    guest_log.log(logging.INFO if reason == "peer disconnected" else logging.WARNING,
                  "guest detached: %s (%s)", description, reason)


class QemuStreamTransport:
    def __init__(self, path: str) -> None:
        self.path = path
        #: connections served at once; more are refused (`[access] max_guests`)
        self.max_guests = DEFAULT_MAX_GUESTS
        self.description = f"qemu-stream {path}"
        #: frames dropped by the transport's links, by reason
        self.drops: Counter[str] = Counter()

    async def run(self, on_frame: FrameHandler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async def serve_guest(conn: socket.socket, number: int) -> None:
            await serve_qemu_framed_guest(conn, f"{self.description} #{number}", self.drops, on_frame)

        await serve_connections(self.path, socket.SOCK_STREAM, serve_guest, self.description,
                                max_guests=self.max_guests, task_status=task_status)
