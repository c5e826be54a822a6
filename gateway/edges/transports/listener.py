"""Serving each connection of a listening socket (Unix or TCP) in its own task, at most `max_guests`
at once, without wedging under a storm of connections or out of descriptors."""

from __future__ import annotations

import errno
import itertools
import logging
import os
import socket
from collections.abc import Awaitable, Callable

import trio

from gateway.core.admission import DEFAULT_MAX_GUESTS

__all__ = ["serve_listener", "LISTEN_BACKLOG"]

log = logging.getLogger("hostclock.transport")

#: connections the kernel holds for accept() on a listening transport (Unix or TCP): room for a
#: burst, since a storm is accepted and refused at once
LISTEN_BACKLOG = 128
#: how long to back off when accept() fails for lack of resources (ENOBUFS, ENOMEM; and EMFILE/ENFILE
#: when no reserve descriptor is left)
_ACCEPT_BACKOFF = 0.1
#: refusals (past max_guests) and accept failures are logged at most this often, in seconds
_REFUSAL_LOG_INTERVAL = 60.0


class _Admission:
    """How many guests are attached, and the refusals and accept failures still to be logged.

    Both are logged at most once a minute (`_REFUSAL_LOG_INTERVAL`), with the count since the
    last line, so a storm of connections cannot flood the log either.
    """

    def __init__(self, description: str, max_guests: int) -> None:
        self.description = description
        self.max_guests = max_guests
        self.attached = 0
        self.refused = 0
        self.accept_failures: dict[str, int] = {}
        self._next_log = -float("inf")

    def note(self, now: float) -> None:
        if now < self._next_log or not (self.refused or self.accept_failures):
            return
        self._next_log = now + _REFUSAL_LOG_INTERVAL
        if self.refused:
            log.warning("%s: refused %d connection(s): %d guests attached, the most max_guests allows "
                        "(logged at most once a minute)", self.description, self.refused, self.attached)
        for reason, n in self.accept_failures.items():
            log.warning("%s: could not accept %d connection(s): %s; attached guests are still served "
                        "(logged at most once a minute)", self.description, n, reason)
        self.refused = 0
        self.accept_failures = {}


async def serve_listener(listener: socket.socket, handle: Callable[[socket.socket, int], Awaitable[None]],
                         description: str, *, prepare: Callable[[socket.socket], None] | None = None,
                         max_guests: int = DEFAULT_MAX_GUESTS,
                         task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Run `handle(conn, number)` for each connection `listener` (non-blocking, listening) accepts,
    each in its own task, until cancelled; then close every connection and the listener.

    `prepare(conn)` is called on each accepted connection first (socket options).
    Each connection is closed when its handler returns. A handler that raises is a bug in
    hostclock, not the peer's fault: it is logged with its traceback and only that connection
    is closed, so the other guests go on being served.

    A storm of connections cannot wedge the listener or take the attached guests' share:
    past `max_guests` attached, a new connection is accepted and closed at once (the peer
    sees its end of file), so the backlog keeps draining; when accept() fails for want of a
    descriptor (EMFILE/ENFILE), a descriptor held in reserve is given up for a moment to
    accept and close the waiting connection, instead of leaving it in the backlog and
    waking up for it again and again. Refusals and failures are logged once a minute.
    """
    admission = _Admission(description, max_guests)
    reserve = _reserve_descriptor()
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
                    admission.accept_failures[e.strerror] = admission.accept_failures.get(e.strerror, 0) + 1
                    admission.note(trio.current_time())
                    if e.errno in (errno.EMFILE, errno.ENFILE) and reserve is not None:
                        os.close(reserve)
                        _refuse_one(listener)
                        reserve = _reserve_descriptor()
                    else:
                        await trio.sleep(_ACCEPT_BACKOFF)
                    continue
                if admission.attached >= max_guests:
                    conn.close()
                    admission.refused += 1
                    admission.note(trio.current_time())
                    await trio.lowlevel.checkpoint()  # a storm must not starve the attached guests
                    continue
                conn.setblocking(False)
                if prepare is not None:
                    prepare(conn)
                admission.attached += 1
                nursery.start_soon(_serve_one, conn, number, handle, description, admission)
    finally:
        if reserve is not None:
            os.close(reserve)
        trio.lowlevel.notify_closing(listener)
        listener.close()


def _reserve_descriptor() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _refuse_one(listener: socket.socket) -> None:
    """Accept one waiting connection with the descriptor just freed, and close it."""
    try:
        conn, _ = listener.accept()
    except OSError:
        return
    conn.close()


async def _serve_one(conn: socket.socket, number: int, handle: Callable[[socket.socket, int], Awaitable[None]],
                     description: str, admission: _Admission) -> None:
    try:
        await handle(conn, number)
    except Exception:
        log.exception("%s #%d: internal error; connection closed", description, number)
    finally:
        admission.attached -= 1
        trio.lowlevel.notify_closing(conn)
        conn.close()
