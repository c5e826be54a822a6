"""Listening on a Unix socket path safely: refuse a path a live server holds, replace a stale one;
and serving each connection of a listening socket in its own task.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable

import trio

from gateway.core.admission import DEFAULT_MAX_GUESTS
from gateway.edges.transports.base import TransportError

__all__ = ["bind_unix", "remove_socket_file", "serve_connections", "DEFAULT_MAX_GUESTS"]

log = logging.getLogger("hostclock.transport")

#: how long to back off when accept() fails for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM)
_ACCEPT_BACKOFF = 0.1
#: refusals (past max_guests) and accept failures are logged at most this often, in seconds
_REFUSAL_LOG_INTERVAL = 60.0


def bind_unix(path: str, kind: int) -> socket.socket:
    """A non-blocking Unix socket of `kind` bound to `path` (and listening, for SOCK_STREAM/SEQPACKET).

    The socket file is created owner-only (0600) whatever the umask: on Linux whoever may
    write a socket file may connect to it (unix(7)), and a guest's link is not for every
    local user. The umask is narrowed only around bind(); a wider mode is granted afterwards
    (`gateway.app.access.grant_socket_access`), so the file is never wider than asked.
    """
    _clear_stale_socket(path, kind)
    sock = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
    try:
        previous_umask = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(previous_umask)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise TransportError(f"socket path {path} is in use: stop the other server or choose another path") from None
        raise TransportError(f"cannot bind {path}: {e.strerror} (check that the directory exists and is writable)") from None
    if kind != socket.SOCK_DGRAM:
        sock.listen(16)
    sock.setblocking(False)
    return sock


def _clear_stale_socket(path: str, kind: int) -> None:
    """Remove `path` if it is a socket file nobody listens on; refuse it (TransportError) otherwise.

    Only ECONNREFUSED proves a file stale (unix(7): "The remote address specified by
    connect(2) was not a listening socket"; the file was checked to be a socket above).
    Every other failure leaves the file alone: EACCES (not ours to judge, maybe in use),
    EPROTOTYPE (a live socket of another type), EAGAIN (a live listener with a full
    backlog), and anything unforeseen.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise TransportError(f"cannot use socket path {path}: {e.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise TransportError(f"{path} exists and is not a socket: remove it or choose another path")
    probe = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
    probe.setblocking(False)  # a listener with a full backlog answers EAGAIN instead of making us wait
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # a socket file nobody listens on: left over from an earlier run
        return
    except BlockingIOError:
        pass  # EAGAIN: a listener whose backlog is full, alive
    except OSError as e:
        raise TransportError(_probe_failure(path, e)) from None
    finally:
        probe.close()
    raise TransportError(f"socket path {path} is in use by a running server: stop it or choose another path")


def _probe_failure(path: str, error: OSError) -> str:
    """Why `path` is refused when connecting to it failed with `error` (not ECONNREFUSED)."""
    if error.errno in (errno.EACCES, errno.EPERM):
        return (f"socket path {path} exists and cannot be checked: connecting to it is not permitted "
                f"({error.strerror}); left in place: remove it as its owner if it is stale, or choose another path")
    if error.errno == errno.EPROTOTYPE:
        return (f"socket path {path} is a socket of another type, likely another server's; left in place: "
                "stop that server or choose another path")
    return (f"socket path {path} exists and cannot be checked: {error.strerror}; left in place: "
            "remove it if it is stale, or choose another path")


def remove_socket_file(path: str) -> None:
    """Remove our socket file; if that is not permitted (after `--user`, in a directory only root
    may write), leave it: the next start finds it stale and replaces it."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except PermissionError:
        log.warning("%s: cannot remove the socket file (not permitted); the next start replaces it", path)


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


async def serve_connections(path: str, kind: int, handle: Callable[[socket.socket, int], Awaitable[None]],
                            description: str, *, max_guests: int = DEFAULT_MAX_GUESTS,
                            task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Listen on `path` (SOCK_STREAM or SOCK_SEQPACKET) and run `handle(conn, number)` for each
    connection in its own task, until cancelled; then close everything and remove the socket file.

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
    listener = bind_unix(path, kind)
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
                admission.attached += 1
                nursery.start_soon(_serve_one, conn, number, handle, description, admission)
    finally:
        if reserve is not None:
            os.close(reserve)
        trio.lowlevel.notify_closing(listener)
        listener.close()
        remove_socket_file(path)


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
