"""`--vfkit`: vfkit's unixgram peer, one frame per datagram, with an optional first `VFKT` datagram.

The peer is derived from vfkit's own client, not from this project's notes: crc-org/vfkit at
b2bc27e50b6103a8f6664ad599fbd3fc0970797f, pkg/vf/virtionet.go,
https://github.com/crc-org/vfkit/blob/b2bc27e50b6103a8f6664ad599fbd3fc0970797f/pkg/vf/virtionet.go#L23-L115:

* `localUnixSocketPath` (L23-L44): vfkit's own socket is `vfkit-<pid hex>-<random hex>.sock` in the
  directory of the server's path;
* `connectUnixPath` (L49-L115): `net.DialUnix("unixgram", &localAddr, &remoteAddr)`, i.e. bound to
  that path and *connected* to the server's, so it receives only what comes from the server's
  bound address; SO_SNDBUF 1 MiB, SO_RCVBUF 4 MiB; then, when `VfkitMagic` is set, the 4-byte
  datagram "VFKT" (L90-L98); the connected socket is handed to Virtualization.framework as the
  device's file handle, one Ethernet frame per datagram, no header (pkg/config/virtio.go L102-L104:
  "a connected datagram socket");
* `VfkitMagic` is on by default for unixSocketPath (pkg/config/virtio.go L432-L436,
  https://github.com/crc-org/vfkit/blob/b2bc27e50b6103a8f6664ad599fbd3fc0970797f/pkg/config/virtio.go#L432-L436),
  `vfkitMagic=off` turns it off.

The server side we mirror is gvisor-tap-vsock's (containers/gvisor-tap-vsock at
3405fe5cc849f702a1bb70f0dc93d26d75d38878, pkg/transport/unixgram_unix.go L50-L90,
https://github.com/containers/gvisor-tap-vsock/blob/3405fe5cc849f702a1bb70f0dc93d26d75d38878/pkg/transport/unixgram_unix.go#L50-L90):
it peeks the first datagram's sender, consumes a "VFKT", and answers that address (L46-L48: every
write is `WriteTo(b, remoteAddr)` from the listening socket).
"""

import logging
import os
import random
import socket

import pytest
import trio

from gateway.edges.transports.vfkit import VfkitTransport

from transport_harness import TIMEOUT, assert_guest_served, guest_ip, guest_mac, log_messages, running_gateway


class VfkitPeer:
    """vfkit's `connectUnixPath`: a unixgram socket bound beside the server's and connected to it."""

    def __init__(self, sock: trio.socket.SocketType, local: str) -> None:
        self.sock = sock
        self.local = local

    @classmethod
    async def connect(cls, remote: str, *, vfkit_magic: bool = True) -> "VfkitPeer":
        local = os.path.join(os.path.dirname(remote), f"vfkit-{os.getpid():x}-{random.randrange(0xFFFF):x}.sock")
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        await sock.bind(local)
        await sock.connect(remote)  # DialUnix: from now on only the server's address is heard
        peer = cls(sock, local)
        if vfkit_magic:
            await sock.send(b"VFKT")
        return peer

    async def send(self, frame: bytes) -> None:
        await self.sock.send(frame)  # one frame, one datagram, on the connected socket

    async def receive(self) -> bytes:
        return await self.sock.recv(1 << 17)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "vfkit.sock")


@pytest.fixture(autouse=True)
def _info_logs(caplog):
    caplog.set_level(logging.INFO, logger="hostclock")


async def test_the_vfkt_greeting_announces_the_peer_and_is_not_a_frame(path, caplog):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VfkitTransport(path)) as gateway:
            peer = await VfkitPeer.connect(path)  # vfkit's default: the VFKT datagram first
            while "guest attached: vfkit" not in log_messages(caplog):
                await trio.sleep(0.01)
            assert gateway.stack.frames_received == 0  # consumed by the transport
            await assert_guest_served(peer, guest_mac(1), guest_ip(1))
            assert gateway.stack.frames_received == 3
            peer.close()


async def test_without_the_greeting_frames_are_served_too(path):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VfkitTransport(path)):
            peer = await VfkitPeer.connect(path, vfkit_magic=False)  # vfkitMagic=off
            await assert_guest_served(peer, guest_mac(1), guest_ip(1))
            peer.close()


async def test_two_vfkit_vms_beside_one_socket_each_get_their_own_answers(path):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VfkitTransport(path)):
            a = await VfkitPeer.connect(path)
            b = await VfkitPeer.connect(path)
            assert a.local != b.local
            async with trio.open_nursery() as nursery:
                nursery.start_soon(assert_guest_served, a, guest_mac(1), guest_ip(1))
                nursery.start_soon(assert_guest_served, b, guest_mac(2), guest_ip(2))
            a.close()
            b.close()


async def test_a_greeting_from_an_unbound_socket_is_dropped_with_a_log_line(path, caplog):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(VfkitTransport(path)) as gateway:
            unbound = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            await unbound.sendto(b"VFKT", path)
            while "unbound socket" not in log_messages(caplog):
                await trio.sleep(0.01)
            assert gateway.transport.links == []
            unbound.close()
