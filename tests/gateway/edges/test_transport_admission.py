"""serve_connections under a storm: past max_guests new connections are refused (and logged once a
minute); out of descriptors, the listener drains its backlog instead of wedging."""

from __future__ import annotations

import logging
import os
import resource
from contextlib import contextmanager
import socket

import pytest
import trio

from gateway.edges.transports.unix_socket import serve_connections


async def _start(nursery, path: str, max_guests: int, attached: list[int], leave: trio.Event) -> None:
    async def hold(conn: socket.socket, number: int) -> None:
        attached.append(number)
        await leave.wait()

    await nursery.start(lambda task_status: serve_connections(path, socket.SOCK_STREAM, hold, "test-listener",
                                                              max_guests=max_guests, task_status=task_status))


def _client(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    s.connect(path)
    return s


async def _connect(path: str) -> socket.socket:
    """Connect as a peer in a storm would, waiting while the backlog is full (EAGAIN)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    for _ in range(1000):
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            await trio.sleep(0.005)
    raise AssertionError("the listener's backlog stayed full")


async def _closed_by_server(s: socket.socket, timeout: float = 2.0) -> bool:
    """True once the server has closed our connection (EOF or reset), False if it stays open."""
    with trio.move_on_after(timeout):
        while True:
            await trio.lowlevel.wait_readable(s)
            try:
                return s.recv(1) == b""
            except ConnectionResetError:
                return True
            except BlockingIOError:
                continue
    return False


async def test_past_max_guests_new_connections_are_refused_and_logged_once(tmp_path, caplog):
    path = str(tmp_path / "hc.sock")
    attached: list[int] = []
    leave = trio.Event()
    caplog.set_level(logging.WARNING, logger="hostclock.transport")
    async with trio.open_nursery() as nursery:
        await _start(nursery, path, 2, attached, leave)
        guests = [_client(path), _client(path)]
        await trio.sleep(0.1)
        assert len(attached) == 2
        storm = [await _connect(path) for _ in range(50)]
        for s in storm:
            assert await _closed_by_server(s)
        assert len(attached) == 2
        for s in guests:  # the attached ones are still held
            assert not await _closed_by_server(s, timeout=0.05)
        refusals = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == 1 and "max_guests" in refusals[0].getMessage()
        leave.set()  # the two leave; a new guest is admitted again
        await trio.sleep(0.1)
        leave = trio.Event()
        nursery.cancel_scope.cancel()
        for s in guests + storm:
            s.close()


async def test_a_guest_that_left_makes_room_for_the_next(tmp_path):
    path = str(tmp_path / "hc.sock")
    attached: list[int] = []
    numbers_served: list[int] = []

    async def serve_briefly(conn: socket.socket, number: int) -> None:
        numbers_served.append(number)
        await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_connections(path, socket.SOCK_STREAM, serve_briefly, "t",
                                                                  max_guests=1, task_status=task_status))
        for _ in range(3):
            s = _client(path)
            await _closed_by_server(s)
            s.close()
        assert len(numbers_served) == 3
        nursery.cancel_scope.cancel()


async def test_out_of_descriptors_the_listener_drains_its_backlog_and_recovers(tmp_path, caplog):
    """accept() failing with EMFILE must neither spin nor leave the waiting peer hanging in the backlog."""
    path = str(tmp_path / "hc.sock")
    attached: list[int] = []
    leave = trio.Event()
    caplog.set_level(logging.WARNING, logger="hostclock.transport")
    async with trio.open_nursery() as nursery:
        await _start(nursery, path, 64, attached, leave)
        waiting = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(8)]
        later = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with every_descriptor_taken() as fillers:
                cpu_before = _cpu()
                for s in waiting:
                    s.setblocking(False)
                    s.connect(path)
                for s in waiting:  # refused with the reserve descriptor, not left in the backlog
                    assert await _closed_by_server(s)
                await trio.sleep(0.5)
                assert _cpu() - cpu_before < 0.3  # no busy loop on the failing accept
            assert attached == []
            failures = [r for r in caplog.records if "could not accept" in r.getMessage()]
            assert len(failures) == 1, [r.getMessage() for r in failures]
            later.setblocking(False)
            later.connect(path)  # descriptors back: served again
            await trio.sleep(0.1)
            assert len(attached) == 1
        finally:
            for s in waiting + [later]:
                s.close()
            nursery.cancel_scope.cancel()


@contextmanager
def every_descriptor_taken():
    """The soft open-file limit just above the highest open descriptor, the free numbers below it
    filled: the process is out of descriptors, as after a storm; restored after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    open_fds = {int(fd) for fd in os.listdir("/proc/self/fd")}
    top = max(open_fds) + 1
    fillers = []
    while True:
        fd = os.open(os.devnull, os.O_RDONLY)
        if fd >= top:
            os.close(fd)
            break
        fillers.append(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))
    try:
        yield fillers
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for fd in fillers:
            os.close(fd)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
