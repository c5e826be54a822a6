"""Listening on a Unix socket path safely: refuse a path a live server holds, replace a stale one;
then serving each connection in its own task (`gateway.edges.transports.listener`).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable

import trio

from gateway.core.admission import DEFAULT_MAX_GUESTS
from gateway.edges.transports.base import TransportError
from gateway.edges.transports.listener import LISTEN_BACKLOG, serve_listener

__all__ = ["bind_unix", "remove_socket_file", "serve_connections", "DEFAULT_MAX_GUESTS"]


log = logging.getLogger("hostclock.transport")


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
        sock.listen(LISTEN_BACKLOG)
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


async def serve_connections(path: str, kind: int, handle: Callable[[socket.socket, int], Awaitable[None]],
                            description: str, *, max_guests: int = DEFAULT_MAX_GUESTS,
                            task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Listen on `path` (SOCK_STREAM or SOCK_SEQPACKET) and run `handle(conn, number)` for each
    connection in its own task (`serve_listener`, at most `max_guests` at once), until
    cancelled; then close everything and remove the socket file.
    """
    listener = bind_unix(path, kind)
    try:
        await serve_listener(listener, handle, description, max_guests=max_guests, task_status=task_status)
    finally:
        remove_socket_file(path)
