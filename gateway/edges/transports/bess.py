"""gvisor-tap-vsock's `bess` transport: a listening Unix SOCK_SEQPACKET socket, one frame per
packet, no prefix (the BESS/UML vector-transport convention gvisor-tap-vsock speaks with
`--listen-bess unixpacket://PATH`).

Each connection is one guest with its own link. Packet boundaries are the frame
boundaries, so there is nothing to resynchronise; still, a packet over 128 KiB
(gvisor-tap-vsock's frame limit, `GVPROXY_MAX_FRAME`) is a protocol error: it is
logged and that connection closed, the other guests go on. Sending never
blocks: a full socket buffer drops the frame and counts it, as a TAP does.
"""

from __future__ import annotations

import logging
import socket
from collections import Counter

import trio

from gateway.edges.transports.base import FrameHandler
from gateway.edges.transports.framing import GVPROXY_MAX_FRAME
from gateway.edges.transports.unix_socket import DEFAULT_MAX_GUESTS, serve_connections

__all__ = ["BessTransport", "SeqpacketLink"]

log = logging.getLogger("hostclock.transport.bess")

_RECEIVES_PER_WAKEUP = 64


class SeqpacketLink:
    """One guest on a connected SOCK_SEQPACKET socket."""

    def __init__(self, description: str, conn: socket.socket, max_frame: int = GVPROXY_MAX_FRAME,
                 drops: Counter[str] | None = None) -> None:
        self.description = description
        self._conn = conn
        self._max_frame = max_frame
        self._open = True
        #: frames to the guest dropped, by reason (the transport's counter, shared by its links)
        self.drops: Counter[str] = drops if drops is not None else Counter()

    @property
    def is_open(self) -> bool:
        return self._open

    def send_frame(self, frame: bytes) -> None:
        if not self._open:
            self.drops["bess: link closed"] += 1
            return
        try:
            self._conn.send(frame)
        except BlockingIOError:
            self.drops["bess: peer not reading, send buffer full"] += 1
        except OSError as e:  # EPIPE/ECONNRESET: the peer is gone; the reader sees EOF
            self.drops[f"bess: send failed ({e.strerror})"] += 1

    async def serve(self, on_frame: FrameHandler) -> str:
        """Dispatch packets until the peer leaves or breaks the rules; returns why the link ended."""
        try:
            while True:
                await trio.lowlevel.wait_readable(self._conn)
                for _ in range(_RECEIVES_PER_WAKEUP):
                    try:
                        # one byte more than allowed: an oversized packet shows as too long or MSG_TRUNC
                        data, _, flags, _ = self._conn.recvmsg(self._max_frame + 1)
                    except BlockingIOError:
                        break
                    except OSError as e:
                        return f"read failed: {e.strerror}"
                    if not data:
                        return "peer disconnected"
                    if len(data) > self._max_frame or flags & socket.MSG_TRUNC:
                        return f"protocol error: packet larger than the limit of {self._max_frame} bytes"
                    on_frame(data, self)
                await trio.lowlevel.checkpoint()
        finally:
            self._open = False


class BessTransport:
    def __init__(self, path: str) -> None:
        self.path = path
        #: connections served at once; more are refused (`[access] max_guests`)
        self.max_guests = DEFAULT_MAX_GUESTS
        self.description = f"bess {path}"
        #: frames dropped by the transport's links, by reason
        self.drops: Counter[str] = Counter()

    async def run(self, on_frame: FrameHandler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async def serve_guest(conn: socket.socket, number: int) -> None:
            description = f"{self.description} #{number}"
            log.info("guest attached: %s", description)
            reason = await SeqpacketLink(description, conn, drops=self.drops).serve(on_frame)
            log.log(logging.INFO if reason == "peer disconnected" else logging.WARNING,
                    "guest detached: %s (%s)", description, reason)

        await serve_connections(self.path, socket.SOCK_SEQPACKET, serve_guest, self.description,
                                max_guests=self.max_guests, task_status=task_status)
