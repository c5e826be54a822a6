"""Listening on a Unix socket path safely: refuse a path a live server holds, replace a stale one."""

from __future__ import annotations

import errno
import os
import socket
import stat

from .base import TransportError

__all__ = ["bind_unix", "remove_socket_file"]


def bind_unix(path: str, kind: int) -> socket.socket:
    """A non-blocking Unix socket of `kind` bound to `path` (and listening, for SOCK_STREAM/SEQPACKET)."""
    _clear_stale_socket(path, kind)
    sock = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
    try:
        sock.bind(path)
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
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise TransportError(f"cannot use socket path {path}: {e.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise TransportError(f"{path} exists and is not a socket: remove it or choose another path")
    probe = socket.socket(socket.AF_UNIX, kind)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # a socket file nobody listens on: left over from an earlier run
        return
    except OSError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise TransportError(f"socket path {path} is in use by a running server: stop it or choose another path")


def remove_socket_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
