"""SntpServer on a real loopback UDP socket, queried from the same trio loop."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
import trio

from plugins.ntp.config import NtpConfig
from plugins.ntp.drops import SntpDrop
from plugins.ntp.kernel_state import KernelTimeState, LeapPending
from plugins.ntp.packet import HEADER, first_byte
from plugins.ntp import server as server_module
from plugins.ntp.server import SntpServer
from plugins.ntp.timestamps import ntp_to_unix_ns, unix_ns_to_ntp

SYNCED = KernelTimeState(synchronised=True, leap=LeapPending.NONE, maxerror_us=1000, esterror_us=10)
UNSYNCED = KernelTimeState(synchronised=False, leap=LeapPending.NONE, maxerror_us=16_000_000, esterror_us=16_000_000)
NS = 1_000_000_000


def client_request(transmit: bytes = bytes.fromhex("0102030405060708"), mode: int = 3) -> bytes:
    return HEADER.pack(first_byte(0, 4, mode), 0, 6, -20, 0, 0, bytes(4), 0, 0, 0, 0)[:40] + transmit


class FakeClock:
    def __init__(self, ns: int) -> None:
        self.ns = ns

    def __call__(self) -> int:
        return self.ns


class FakeKernel:
    def __init__(self, state: KernelTimeState) -> None:
        self.state = state
        self.reads = 0

    def __call__(self) -> KernelTimeState:
        self.reads += 1
        return self.state


async def open_client(address):
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.connect(address)
    return sock


async def query(sock, data: bytes) -> bytes:
    await sock.send(data)
    return await sock.recv(2048)


async def test_answers_a_client_with_kernel_receive_timestamps_and_the_host_clock():
    server = SntpServer(NtpConfig(), read_kernel_state=lambda: SYNCED)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            assert address[0] == "127.0.0.1" and address[1] != 0
            assert server.bound_address == address
            with await open_client(address) as sock:
                before = time.time_ns()
                reply = await query(sock, client_request())
                after = time.time_ns()
            fields = HEADER.unpack(reply)
            assert len(reply) == 48 and fields[0] == 0x24
            assert reply[24:32] == bytes.fromhex("0102030405060708")
            receive_ns, transmit_ns = (ntp_to_unix_ns(ts, before) for ts in fields[9:11])
            assert before <= receive_ns <= transmit_ns <= after
            assert server.answered == 1 and not server.drops
            nursery.cancel_scope.cancel()


async def test_drops_are_counted_and_service_continues():
    server = SntpServer(NtpConfig(), read_kernel_state=lambda: SYNCED)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            with await open_client(address) as sock:
                await sock.send(b"\x1b" + bytes(46))              # 47 bytes
                await sock.send(client_request(mode=7))           # private mode
                await sock.send(client_request(mode=6))           # control
                await sock.send(b"\x1b" + bytes(3000))            # beyond the receive buffer
                reply = await query(sock, client_request())
            assert len(reply) == 48
            assert server.drops == {SntpDrop.TOO_SHORT: 1, SntpDrop.MODE_PRIVATE: 1,
                                    SntpDrop.MODE_CONTROL: 1, SntpDrop.TRUNCATED: 1}
            assert server.answered == 1
            nursery.cancel_scope.cancel()


async def test_a_queued_burst_is_drained_in_batches_and_every_request_answered(monkeypatch):
    monkeypatch.setattr(server_module, "DRAIN_BATCH", 16)  # so that 150 queued requests take many batches
    server = SntpServer(NtpConfig(), read_kernel_state=lambda: SYNCED)
    count = 150
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocking_client:
                blocking_client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                blocking_client.connect(address)
                for i in range(count):  # no checkpoint: all of them queue up at the server
                    blocking_client.send(client_request(transmit=i.to_bytes(8, "big")))
                sock = trio.socket.from_stdlib_socket(blocking_client)
                originates = set()
                for _ in range(count):
                    originates.add(int.from_bytes((await sock.recv(2048))[24:32], "big"))
            assert originates == set(range(count))
            assert server.answered == count
            nursery.cancel_scope.cancel()


async def test_an_injected_clock_gives_both_timestamps():
    clock = FakeClock(2_000_000_000 * NS + 123)
    server = SntpServer(NtpConfig(), clock=clock, read_kernel_state=lambda: SYNCED, precision=-20)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            with await open_client(address) as sock:
                fields = HEADER.unpack(await query(sock, client_request()))
            assert fields[9] == fields[10] == unix_ns_to_ntp(clock.ns)
            assert fields[3] == -20
            nursery.cancel_scope.cancel()


async def test_kernel_state_is_refreshed_lazily_at_most_once_a_second():
    clock = FakeClock(1_800_000_000 * NS)
    kernel = FakeKernel(UNSYNCED)
    server = SntpServer(NtpConfig(report_unsync=True), clock=clock, read_kernel_state=kernel, precision=-20)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            reads_at_start = kernel.reads
            with await open_client(address) as sock:
                first = await query(sock, client_request())
                kernel.state = SYNCED                        # the host's daemon synchronises it
                clock.ns += NS // 2
                second = await query(sock, client_request())  # half a second later: no re-read
                await trio.sleep(0.05)
                assert kernel.reads == reads_at_start       # idle: no periodic reads
                clock.ns += NS // 2
                third = await query(sock, client_request())   # a second after the last refresh
            assert (first[0] >> 6, first[1]) == (3, 0)
            assert (second[0] >> 6, second[1]) == (3, 0)
            assert (third[0] >> 6, third[1]) == (0, 10)
            assert kernel.reads == reads_at_start + 1
            assert HEADER.unpack(third)[7] == unix_ns_to_ntp(clock.ns)  # reference time: the refresh
            nursery.cancel_scope.cancel()


async def test_a_clock_step_backwards_also_refreshes():
    clock = FakeClock(1_800_000_000 * NS)
    kernel = FakeKernel(SYNCED)
    server = SntpServer(NtpConfig(), clock=clock, read_kernel_state=kernel, precision=-20)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            reads = kernel.reads
            clock.ns -= 3600 * NS
            with await open_client(address) as sock:
                reply = await query(sock, client_request())
            assert kernel.reads == reads + 1
            assert HEADER.unpack(reply)[7] == unix_ns_to_ntp(clock.ns)
            nursery.cancel_scope.cancel()


async def test_logs_one_line_at_start(caplog):
    caplog.set_level(logging.INFO, logger="hostclock.sntp")
    server = SntpServer(NtpConfig(), read_kernel_state=lambda: UNSYNCED)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(server.run)
            nursery.cancel_scope.cancel()
    records = [r for r in caplog.records if r.name == "hostclock.sntp"]
    assert len(records) == 1
    assert f"{host}:{port}" in records[0].getMessage()
    assert "unsynchronised per the kernel, served as synchronised" in records[0].getMessage()


async def test_a_port_in_use_is_a_clear_error():
    first = SntpServer(NtpConfig(), read_kernel_state=lambda: SYNCED)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(first.run)
            second = SntpServer(NtpConfig(listen=f"{host}:{port}"), read_kernel_state=lambda: SYNCED)
            with pytest.raises(OSError, match=f"cannot bind {host}:{port}"):
                await second.run()
            nursery.cancel_scope.cancel()


# -- shutdown: prompt, never blocking the trio loop, the socket closed only after its thread --------------

def port_is_free(address) -> bool:
    """Whether nothing holds the UDP address any more (its socket was closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(address)
        except OSError:
            return False
    return True


async def stop_while_ticking(server, *, serve_for=0.05):
    """Run `server`, cancel it, and return (seconds the shutdown took, longest gap between the
    ticks of another task meanwhile): a gap as long as the shutdown means the loop was blocked."""
    gaps = []
    ticking = True

    async def ticker():
        last = trio.current_time()
        while ticking:
            await trio.sleep(0.005)
            now = trio.current_time()
            gaps.append(now - last)
            last = now

    async with trio.open_nursery() as outer:
        outer.start_soon(ticker)
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            with await open_client(address) as sock:
                assert len(await query(sock, client_request())) == 48
            await trio.sleep(serve_for)
            gaps.clear()
            started = time.monotonic()
            nursery.cancel_scope.cancel()
        took = time.monotonic() - started
        ticking = False
    return address, took, max(gaps, default=0.0)


async def test_shutdown_is_prompt_and_the_thread_is_gone_before_the_socket_is_closed(monkeypatch):
    # STOP_WAIT made long: the wake-up datagram ends the thread at once (milliseconds); only if it
    # did not would shutdown wait STOP_WAIT (5 s) and then fall back to shutdown(2). Half of that
    # is the line, which no scheduling delay of a busy machine comes near.
    monkeypatch.setattr(server_module, "STOP_WAIT", 5.0)
    server = SntpServer(NtpConfig(), read_kernel_state=lambda: SYNCED)
    with trio.fail_after(15):
        address, took, _ = await stop_while_ticking(server)
    assert took < 2.5
    assert not server.thread_running
    assert port_is_free(address)


async def test_waiting_for_a_slow_thread_does_not_block_the_trio_loop(monkeypatch):
    """The thread takes 0.4 s to wind down: the loop keeps running other tasks meanwhile
    (it used to sit in threading.Event.wait, blocking every task of the gateway)."""
    original = SntpServer._drain

    def lingering(self, sock):
        done = original(self, sock)
        if done:
            time.sleep(0.8)
        return done

    monkeypatch.setattr(SntpServer, "_drain", lingering)
    server = SntpServer(NtpConfig(), read_kernel_state=lambda: SYNCED)
    with trio.fail_after(10):
        address, took, longest_gap = await stop_while_ticking(server)
    assert 0.75 <= took < 2 * server_module.STOP_WAIT  # it did wait for the thread, not past its bound
    # ... without blocking the loop: a blocked loop shows one gap as long as the linger (0.8 s);
    # the ticker's 5 ms ticks stretched to half of that only by a machine far busier than CI's
    assert longest_gap < 0.4
    assert not server.thread_running
    assert port_is_free(address)


async def test_a_thread_that_does_not_stop_keeps_its_socket_until_it_returns(monkeypatch, caplog):
    """Shutdown gives up after 2 x STOP_WAIT, logs, and leaves the socket open (closing it under a
    thread blocked in recvmsg lets the descriptor number be reused beneath it); the thread closes
    it when it finally returns."""
    monkeypatch.setattr(server_module, "STOP_WAIT", 0.5, raising=False)
    release = threading.Event()
    returned = threading.Event()
    original = SntpServer._drain

    def stuck(self, sock):
        if original(self, sock):
            try:
                release.wait(10)  # deaf to the wake-up datagram and to shutdown(2)
                return True
            finally:
                returned.set()
        return False

    monkeypatch.setattr(SntpServer, "_drain", stuck)
    caplog.set_level(logging.WARNING, logger="hostclock.sntp")
    server = SntpServer(NtpConfig(), read_kernel_state=lambda: SYNCED)
    try:
        with trio.fail_after(5):
            address, took, longest_gap = await stop_while_ticking(server)
        # two waits of 0.5 s, the loop running meanwhile: blocked, it would show a gap of 0.5 s;
        # half of that is the line (see above)
        assert 0.95 <= took < 3.0 and longest_gap < 0.25
        assert server.thread_running
        assert not port_is_free(address)  # left open: the thread may still be inside recvmsg
        assert any("did not stop" in r.getMessage() for r in caplog.records)
    finally:
        release.set()
    assert returned.wait(5)
    for _ in range(100):
        if not server.thread_running:
            break
        await trio.sleep(0.01)
    assert not server.thread_running
    assert port_is_free(address)  # closed by the thread on its way out
