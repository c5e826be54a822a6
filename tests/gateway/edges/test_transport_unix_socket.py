"""gateway.edges.transports.unix_socket.bind_unix: a stale socket file is replaced, anything else is left alone.

Only ECONNREFUSED (a socket file nobody is bound to) proves a file stale. A
permission error, a live socket of another type or a live listener must never
cost anybody their socket file.
"""

from __future__ import annotations

import os
import pickle
import socket
import tempfile
import threading

import pytest

from gateway.edges.transports.base import TransportError
from gateway.edges.transports.unix_socket import bind_unix

KINDS = [socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET]
NOBODY = 65534


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "hostclock.sock")


def stale_socket_file(path: str, kind: int) -> None:
    """A socket file left by a process that is gone: bound, then closed without unlinking."""
    leftover = socket.socket(socket.AF_UNIX, kind)
    leftover.bind(path)
    leftover.close()


@pytest.mark.parametrize("kind", KINDS, ids=["stream", "dgram", "seqpacket"])
def test_a_stale_socket_file_is_replaced(path, kind):
    stale_socket_file(path, kind)
    sock = bind_unix(path, kind)
    try:
        assert sock.getsockname() == path and os.path.exists(path)
    finally:
        sock.close()


@pytest.mark.parametrize("kind", KINDS, ids=["stream", "dgram", "seqpacket"])
def test_a_live_server_of_the_same_type_keeps_its_path(path, kind):
    live = socket.socket(socket.AF_UNIX, kind)
    live.bind(path)
    if kind != socket.SOCK_DGRAM:
        live.listen(1)
    try:
        with pytest.raises(TransportError, match="in use by a running server"):
            bind_unix(path, kind)
        assert os.path.exists(path)
    finally:
        live.close()


@pytest.mark.parametrize("live_kind, our_kind", [(socket.SOCK_STREAM, socket.SOCK_DGRAM),
                                                 (socket.SOCK_DGRAM, socket.SOCK_STREAM),
                                                 (socket.SOCK_SEQPACKET, socket.SOCK_STREAM)],
                         ids=["stream-probed-as-dgram", "dgram-probed-as-stream", "seqpacket-probed-as-stream"])
def test_a_live_server_of_another_type_keeps_its_path(path, live_kind, our_kind):
    """connect() fails with EPROTOTYPE: the file is alive, not stale. It used to be deleted."""
    live = socket.socket(socket.AF_UNIX, live_kind)
    live.bind(path)
    if live_kind != socket.SOCK_DGRAM:
        live.listen(1)
    try:
        with pytest.raises(TransportError, match="a socket of another type"):
            bind_unix(path, our_kind)
        assert os.path.exists(path)
        with socket.socket(socket.AF_UNIX, live_kind) as client:  # the server is still reachable
            client.connect(path)
    finally:
        live.close()


def test_a_listener_with_a_full_backlog_is_in_use_and_the_probe_does_not_wait(path):
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(path)
    live.listen(0)
    waiting = []
    try:
        for _ in range(4):  # fill the backlog: further connects get EAGAIN (non-blocking)
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.setblocking(False)
            waiting.append(client)
            try:
                client.connect(path)
            except BlockingIOError:
                break
        outcome = []

        def probe():  # in a thread, so that a probe that waits (the old blocking connect) fails, not hangs
            try:
                bind_unix(path, socket.SOCK_STREAM).close()
                outcome.append("bound")
            except TransportError as e:
                outcome.append(str(e))

        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        thread.join(5)
        assert not thread.is_alive(), "the probe waited on a full backlog"
        assert len(outcome) == 1 and "in use by a running server" in outcome[0]
        assert os.path.exists(path)
    finally:
        for client in waiting:
            client.close()
        live.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a socket file another user cannot connect to")
def test_a_socket_file_we_may_not_connect_to_is_left_in_place():
    """EACCES: a root-owned socket file (mode 0600) in a directory everybody may write, as user nobody.
    The old code took any connect error for staleness and deleted the file."""
    directory = tempfile.mkdtemp(prefix="hc-eacces-", dir="/tmp")
    try:
        os.chmod(directory, 0o777)  # nobody could delete the file (no sticky bit): only our code stops it
        path = os.path.join(directory, "guest.sock")
        stale_socket_file(path, socket.SOCK_STREAM)
        os.chmod(path, 0o600)
        outcome = _as_nobody(lambda: bind_unix(path, socket.SOCK_STREAM).close())
        assert outcome[0] == "TransportError", outcome
        assert "not permitted" in outcome[1] and path in outcome[1]
        assert os.path.exists(path) and os.stat(path).st_uid == 0
    finally:
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


def _as_nobody(action):
    """Run `action` in a forked child as uid/gid nobody; ('ok', '') or (exception type name, message)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, act, report, and leave without running pytest's teardown
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                action()
                result = ("ok", "")
            except BaseException as e:  # noqa: BLE001 - reported to the parent as data
                result = (type(e).__name__, str(e))
            os.write(write_end, pickle.dumps(result))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        data = reader.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)
