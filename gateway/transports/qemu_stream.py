"""QEMU `-netdev stream` (and legacy `-netdev socket`): frames on a Unix stream socket,
each preceded by its length as a 4-byte big-endian integer.

hostclock listens; QEMU connects (`-netdev stream,id=n0,server=off,addr.type=unix,
addr.path=PATH`). Each connection is one guest. A guest that disconnects is a
normal event: its link is closed and the next VM may connect.
"""

from __future__ import annotations

import itertools
import logging
import socket

import trio

from .base import FrameHandler
from .framing import QEMU_MAX_FRAME, QEMU_PREFIX
from .stream_link import StreamLink
from .unix_socket import bind_unix, remove_socket_file

__all__ = ["QemuStreamTransport"]

log = logging.getLogger("hostclock.transport.qemu-stream")


class QemuStreamTransport:
    def __init__(self, path: str) -> None:
        self.path = path
        self.description = f"qemu-stream {path}"

    async def run(self, on_frame: FrameHandler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listener = bind_unix(self.path, socket.SOCK_STREAM)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                for number in itertools.count(1):
                    await trio.lowlevel.wait_readable(listener)
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    nursery.start_soon(self._serve_guest, conn, number, on_frame)
        finally:
            trio.lowlevel.notify_closing(listener)
            listener.close()
            remove_socket_file(self.path)

    async def _serve_guest(self, conn: socket.socket, number: int, on_frame: FrameHandler) -> None:
        description = f"{self.description} #{number}"
        link = StreamLink(description, conn.fileno(), conn.fileno(), QEMU_PREFIX, QEMU_MAX_FRAME)
        log.info("guest attached: %s", description)
        try:
            reason = await link.serve(on_frame)
            log.info("guest detached: %s (%s)", description, reason)
        finally:
            trio.lowlevel.notify_closing(conn)
            conn.close()
