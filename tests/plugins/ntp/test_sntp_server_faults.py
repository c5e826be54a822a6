"""Faults the SNTP responder survives, or ends on with one line (§3 of the reliability campaign):
its serving thread failing (restarted; past the limit, the gateway exits 1, never half-alive),
and the host clock stepped by an hour under it (an injected clock: never the real one)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest
import trio
from gateway_process import REPO

from plugins.ntp.config import NtpConfig
from gateway.core.failures import ServingFailed
from plugins.ntp import server as server_module
from plugins.ntp.drops import SntpDrop
from plugins.ntp.packet import HEADER
from plugins.ntp.server import SntpServer
from plugins.ntp.timestamps import unix_ns_to_ntp
from plugins.ntp.kernel_state import KernelTimeState, LeapPending

SYNCED = KernelTimeState(synchronised=True, leap=LeapPending.NONE, maxerror_us=1000, esterror_us=10)
NS = 1_000_000_000
HOUR_NS = 3600 * NS
REQUEST = bytes([0x23, 0, 6, 0xEC]) + bytes(36) + bytes(range(1, 9))


class FaultyClock:
    """A clock (Unix ns) that raises on the calls numbered in `fail_on` (1-based), or on every call
    from `fail_from` on; `offset` steps it."""

    def __init__(self, ns: int, fail_on: set[int] = frozenset(), fail_from: int | None = None) -> None:
        self.ns, self.offset, self.calls = ns, 0, 0
        self.fail_on, self.fail_from = fail_on, fail_from

    def __call__(self) -> int:
        self.calls += 1
        if self.calls in self.fail_on or (self.fail_from is not None and self.calls >= self.fail_from):
            raise OSError(5, "injected clock fault")
        return self.ns + self.offset


async def _ask(sock, timeout: float = 0.5) -> bytes | None:
    await sock.send(REQUEST)
    with trio.move_on_after(timeout):
        return await sock.recv(2048)
    return None


async def _client(address):
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.connect(address)
    return sock


async def test_a_failing_serving_thread_is_restarted_and_answers_again(caplog):
    caplog.set_level(logging.WARNING, logger="hostclock.sntp")
    clock = FaultyClock(2_000_000_000 * NS)
    server = SntpServer(NtpConfig(), clock=clock, read_kernel_state=lambda: SYNCED, precision=-20)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            with await _client(address) as sock:
                assert await _ask(sock) is not None
                clock.fail_on = {clock.calls + 1, clock.calls + 3}  # the next receive, the one after it
                answers = [await _ask(sock) for _ in range(4)]
            assert server.restarts >= 1 and server.thread_running
            assert answers[-1] is not None and answers.count(None) <= 2
            assert sum("restarted it" in r.getMessage() for r in caplog.records) == server.restarts
            nursery.cancel_scope.cancel()


async def test_a_thread_that_keeps_failing_ends_the_server_with_one_line():
    clock = FaultyClock(2_000_000_000 * NS)
    server = SntpServer(NtpConfig(), clock=clock, read_kernel_state=lambda: SYNCED, precision=-20)
    with trio.fail_after(10):
        with pytest.raises(BaseException) as raised:
            async with trio.open_nursery() as nursery:
                address = await nursery.start(server.run)
                clock.fail_from = clock.calls + 1
                with await _client(address) as sock:
                    for _ in range(server_module.MAX_RESTARTS + 3):
                        await _ask(sock, timeout=0.1)
                await trio.sleep_forever()
    failure = raised.value
    while isinstance(failure, BaseExceptionGroup):
        failure = failure.exceptions[0]
    assert isinstance(failure, ServingFailed) and "\n" not in str(failure)
    assert server.restarts == server_module.MAX_RESTARTS and not server.thread_running


def test_the_gateway_exits_1_with_one_line_when_the_responder_fails_for_good(tmp_path):
    """`hostclock run`, with the host clock's reader made to fail after start (fault injection in
    the child process only), exits 1 with one error line instead of serving without a responder.
    The responder runs in the gateway's process here (`--responder thread`), where the fault is
    injected; test_responder_process.py has the responder's own process failing."""
    script = textwrap.dedent(f"""
        import socket, sys, threading, time
        sys.path.insert(0, {str(REPO)!r})
        import plugins.ntp.server as server
        real_clock, bound, armed = server.now_ns, [], threading.Event()
        def faulty_clock():
            if armed.is_set():
                raise OSError(5, "injected clock fault")
            return real_clock()
        server.now_ns = faulty_clock
        log_start = server.SntpServer._log_start
        def log_start_and_arm(self):  # the responder is bound: from now on its clock fails
            log_start(self)
            bound.append(self.bound_address)
            armed.set()
        server.SntpServer._log_start = log_start_and_arm
        def ask_until_it_gives_up():
            armed.wait()
            for _ in range(40):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.sendto({REQUEST!r}, bound[0])
                time.sleep(0.05)
        threading.Thread(target=ask_until_it_gives_up, daemon=True).start()
        from gateway.app.cli import main
        sys.exit(main(["run", "--qemu-stream", {str(tmp_path / "hc.sock")!r}, "--no-dhcp", "--responder", "thread"]))
    """)
    cp = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO)
    errors = [line for line in cp.stderr.splitlines() if line.startswith("hostclock: error:")]
    assert cp.returncode == 1, cp.stderr[-3000:]
    assert len(errors) == 1 and "serving thread failed" in errors[0], cp.stderr[-3000:]
    assert "Traceback" not in cp.stderr.split("giving up")[-1]


async def test_the_host_clock_stepped_an_hour_either_way_shows_in_the_next_reply():
    """An injected clock (never the host's) stepped +1 h, then -1 h: each next reply carries the new
    time in both timestamps; the server keeps no state that a step could upset."""
    clock = FaultyClock(2_000_000_000 * NS)
    server = SntpServer(NtpConfig(), clock=clock, read_kernel_state=lambda: SYNCED, precision=-20)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            with await _client(address) as sock:
                for offset in (0, HOUR_NS, -HOUR_NS, 0):
                    clock.offset = offset
                    fields = HEADER.unpack(await _ask(sock))
                    expected = unix_ns_to_ntp(clock.ns + offset)
                    assert fields[9] == fields[10] == expected, offset  # receive, transmit
            assert server.restarts == 0
            nursery.cancel_scope.cancel()


async def test_what_the_kernel_drops_at_the_responders_queue_is_counted():
    """The serving thread held up (an injected clock that blocks once) while 5,000 requests arrive:
    the kernel drops what the queue cannot hold, and the responder counts it (SO_RXQ_OVFL), so
    that requests sent = answered + dropped by the kernel."""
    import socket as stdlib_socket
    import threading

    armed, release = threading.Event(), threading.Event()

    class BlockingWhenArmed(FaultyClock):
        def __call__(self) -> int:
            if armed.is_set() and not release.is_set():
                release.wait(10)  # the serving thread waits here, its queue filling
            return super().__call__()

    clock = BlockingWhenArmed(2_000_000_000 * NS)
    server = SntpServer(NtpConfig(), clock=clock, read_kernel_state=lambda: SYNCED, precision=-20)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            armed.set()
            with stdlib_socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_DGRAM) as s:
                s.sendto(REQUEST, address)  # the thread takes it and blocks in the clock
                await trio.sleep(0.2)
                for _ in range(5_000):
                    s.sendto(REQUEST, address)
                release.set()
                await trio.sleep(0.5)
                s.sendto(REQUEST, address)  # carries the kernel's final count
                await trio.sleep(0.3)
            dropped = server.responder.drops[SntpDrop.KERNEL_QUEUE_FULL]
            assert dropped > 0
            assert server.answered + dropped == 5_002, (server.answered, dropped)
            nursery.cancel_scope.cancel()
