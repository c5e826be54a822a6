"""`--bess`: gvisor-tap-vsock's bess peers over a real Unix SOCK_SEQPACKET socket, one frame per packet."""

import logging
import socket

import pytest
import trio

from gateway.edges.transports.bess import BessTransport

from transport_harness import TIMEOUT, assert_guest_served, guest_ip, guest_mac, running_gateway, wait_for_log


class BessPeer:
    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock

    @classmethod
    async def connect(cls, path: str) -> "BessPeer":
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        await sock.connect(path)
        return cls(sock)

    async def send(self, frame: bytes) -> None:
        await self.sock.send(frame)

    async def receive(self) -> bytes:
        return await self.sock.recv(1 << 18)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def bess_path(tmp_path):
    return str(tmp_path / "bess.sock")


@pytest.fixture(autouse=True)
def _info_logs(caplog):
    caplog.set_level(logging.INFO, logger="hostclock")


async def test_arp_ping_and_ntp_over_seqpacket(bess_path):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(BessTransport(bess_path)):
            peer = await BessPeer.connect(bess_path)
            await assert_guest_served(peer, guest_mac(1), guest_ip(1))
            peer.close()


async def test_two_guests_at_once(bess_path):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(BessTransport(bess_path)):
            a = await BessPeer.connect(bess_path)
            b = await BessPeer.connect(bess_path)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(assert_guest_served, a, guest_mac(1), guest_ip(1))
                nursery.start_soon(assert_guest_served, b, guest_mac(2), guest_ip(2))
            a.close()
            b.close()


async def test_a_packet_over_128_kib_closes_that_connection_and_others_are_served(bess_path, caplog):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(BessTransport(bess_path)):
            good = await BessPeer.connect(bess_path)
            bad = await BessPeer.connect(bess_path)
            bad.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            await bad.send(bytes(128 * 1024 + 1))
            assert await bad.receive() == b""  # EOF: we hung up
            await wait_for_log(caplog, "protocol error: packet larger than the limit of 131072 bytes")
            await assert_guest_served(good, guest_mac(1), guest_ip(1))
            good.close()
            bad.close()


async def test_a_packet_of_exactly_128_kib_is_accepted(bess_path):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(BessTransport(bess_path)) as gateway:
            peer = await BessPeer.connect(bess_path)
            peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            await peer.send(bytes(128 * 1024))  # not a frame the stack wants, but within the framing rules
            while gateway.stack.frames_received < 1:
                await trio.sleep(0.01)
            await assert_guest_served(peer, guest_mac(1), guest_ip(1))
            peer.close()


async def test_a_guest_leaving_is_logged_and_the_next_one_is_served(bess_path, caplog):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(BessTransport(bess_path)):
            first = await BessPeer.connect(bess_path)
            first.close()
            await wait_for_log(caplog, "guest detached: bess")
            second = await BessPeer.connect(bess_path)
            await assert_guest_served(second, guest_mac(2), guest_ip(2))
            second.close()
