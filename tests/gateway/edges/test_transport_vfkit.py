"""`--vfkit`: vfkit's unixgram peer, one frame per datagram, with an optional first `VFKT` datagram."""

import logging
import socket

import pytest
import trio

from gateway.edges.transports.vfkit import VfkitTransport

from transport_harness import TIMEOUT, assert_guest_served, guest_ip, guest_mac, log_messages, running_gateway


class VfkitPeer:
    def __init__(self, sock: trio.socket.SocketType, remote: str) -> None:
        self.sock = sock
        self.remote = remote

    @classmethod
    async def bound(cls, local: str, remote: str) -> "VfkitPeer":
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        await sock.bind(local)
        return cls(sock, remote)

    async def send(self, frame: bytes) -> None:
        await self.sock.sendto(frame, self.remote)

    async def receive(self) -> bytes:
        return await self.sock.recv(1 << 17)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "vfkit.sock")


@pytest.fixture(autouse=True)
def _info_logs(caplog):
    caplog.set_level(logging.INFO, logger="hostclock")


async def test_the_vfkt_greeting_announces_the_peer_and_is_not_a_frame(path, tmp_path, caplog):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VfkitTransport(path)) as gateway:
            peer = await VfkitPeer.bound(str(tmp_path / "vfkit-guest.sock"), path)
            await peer.send(b"VFKT")
            while "guest attached: vfkit" not in log_messages(caplog):
                await trio.sleep(0.01)
            assert gateway.stack.frames_received == 0  # consumed by the transport
            await assert_guest_served(peer, guest_mac(1), guest_ip(1))
            assert gateway.stack.frames_received == 3
            peer.sock.close()


async def test_without_the_greeting_frames_are_served_too(path, tmp_path):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VfkitTransport(path)):
            peer = await VfkitPeer.bound(str(tmp_path / "vfkit-guest.sock"), path)
            await assert_guest_served(peer, guest_mac(1), guest_ip(1))
            peer.sock.close()


async def test_a_greeting_from_an_unbound_socket_is_dropped_with_a_log_line(path, caplog):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VfkitTransport(path)) as gateway:
            unbound = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            await unbound.sendto(b"VFKT", path)
            while "unbound socket" not in log_messages(caplog):
                await trio.sleep(0.01)
            assert gateway.transport.links == []
            unbound.close()
