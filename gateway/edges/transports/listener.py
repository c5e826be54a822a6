"""Serving each connection of a listening socket (Unix or TCP) in its own task."""

from __future__ import annotations

import itertools
import logging
import socket
from collections.abc import Awaitable, Callable

import trio

__all__ = ["serve_listener"]

log = logging.getLogger("hostclock.transport")

#: how long to back off when accept() fails for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM)
_ACCEPT_BACKOFF = 0.1


async def serve_listener(listener: socket.socket, handle: Callable[[socket.socket, int], Awaitable[None]],
                         description: str, *, prepare: Callable[[socket.socket], None] | None = None,
                         task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Run `handle(conn, number)` for each connection `listener` (non-blocking, listening) accepts,
    each in its own task, until cancelled; then close every connection and the listener.

    `prepare(conn)` is called on each accepted connection first (socket options).
    Each connection is closed when its handler returns. A handler that raises is a bug in
    hostclock, not the peer's fault: it is logged with its traceback and only that connection
    is closed, so the other guests go on being served.
    """
    try:
        async with trio.open_nursery() as nursery:
            task_status.started()
            for number in itertools.count(1):
                await trio.lowlevel.wait_readable(listener)
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue
                except OSError as e:  # out of descriptors or memory: keep serving the attached guests
                    log.warning("%s: cannot accept a connection: %s", description, e.strerror)
                    await trio.sleep(_ACCEPT_BACKOFF)
                    continue
                conn.setblocking(False)
                if prepare is not None:
                    prepare(conn)
                nursery.start_soon(_serve_one, conn, number, handle, description)
    finally:
        trio.lowlevel.notify_closing(listener)
        listener.close()


async def _serve_one(conn: socket.socket, number: int, handle: Callable[[socket.socket, int], Awaitable[None]],
                     description: str) -> None:
    try:
        await handle(conn, number)
    except Exception:
        log.exception("%s #%d: internal error; connection closed", description, number)
    finally:
        trio.lowlevel.notify_closing(conn)
        conn.close()
