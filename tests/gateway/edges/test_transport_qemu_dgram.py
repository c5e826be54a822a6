"""`--qemu-dgram`: QEMU `-netdev dgram` over real Unix datagram sockets, one frame per datagram.

The peer does what QEMU does: binds its own path A and sends to hostclock's
PATH; replies must come back to A. The `qemu` test runs the real QEMU 7.2.
"""

import logging
import os
import shutil
import socket
import subprocess

import pytest
import trio

from scapy.error import Scapy_Exception
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from gateway.app.config import Config
from gateway.app.runtime import Gateway
from gateway.edges.transports.base import TransportError
from gateway.edges.transports.qemu_dgram import QemuDgramTransport

from transport_harness import (GATEWAY_MAC, TIMEOUT, arp_request, assert_guest_served, guest_ip, guest_mac, log_messages,
                                    running_gateway, wait_for_log)


class DgramPeer:
    """A QEMU-like peer: a datagram socket bound at `local`, sending to `remote`."""

    def __init__(self, local: str, remote: str) -> None:
        self.remote = remote
        self.sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        self.local = local

    @classmethod
    async def bound(cls, local: str, remote: str) -> "DgramPeer":
        peer = cls(local, remote)
        await peer.sock.bind(local)
        return peer

    async def send(self, frame: bytes) -> None:
        await self.sock.sendto(frame, self.remote)

    async def receive(self) -> bytes:
        data, _ = await self.sock.recvfrom(1 << 17)
        return data

    def close(self) -> None:
        self.sock.close()
        if os.path.exists(self.local):
            os.unlink(self.local)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "hostclock.sock")


@pytest.fixture(autouse=True)
def _info_logs(caplog):
    caplog.set_level(logging.INFO, logger="hostclock")


async def test_arp_ping_and_ntp_come_back_to_the_senders_address(path, tmp_path):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(QemuDgramTransport(path)):
            peer = await DgramPeer.bound(str(tmp_path / "qemu.sock"), path)
            await assert_guest_served(peer, guest_mac(1), guest_ip(1))
            peer.close()


async def test_two_vms_on_one_socket_each_get_their_own_answers(path, tmp_path):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(QemuDgramTransport(path)) as gateway:
            a = await DgramPeer.bound(str(tmp_path / "a.sock"), path)
            b = await DgramPeer.bound(str(tmp_path / "b.sock"), path)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(assert_guest_served, a, guest_mac(1), guest_ip(1))
                nursery.start_soon(assert_guest_served, b, guest_mac(2), guest_ip(2))
            assert sorted(link.address for link in gateway.transport.links) == sorted([a.local, b.local])
            a.close()
            b.close()


async def test_an_abstract_address_peer_is_served(path):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(QemuDgramTransport(path)):
            peer = await DgramPeer.bound(b"\0hostclock-test-" + os.urandom(4).hex().encode(), path)
            await assert_guest_served(peer, guest_mac(1), guest_ip(1))
            peer.sock.close()


async def test_a_datagram_too_large_is_dropped_with_a_log_line_and_the_sender_still_served(path, tmp_path, caplog):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(QemuDgramTransport(path)) as gateway:
            peer = await DgramPeer.bound(str(tmp_path / "qemu.sock"), path)
            await peer.send(bytes(4096 + 65536 + 1))  # over QEMU's NET_BUFSIZE
            await wait_for_log(caplog, "datagram larger than 69632 bytes dropped")
            assert gateway.transport.drops == {"qemu-dgram: datagram larger than 69632 bytes dropped": 1}
            assert gateway.stack.frames_received == 0
            await assert_guest_served(peer, guest_mac(1), guest_ip(1))
            peer.close()


async def test_a_datagram_from_an_unbound_socket_is_dropped_with_a_log_line(path, tmp_path, caplog):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(QemuDgramTransport(path)) as gateway:
            unbound = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            await unbound.sendto(arp_request(guest_mac(9), guest_ip(9)), path)
            await wait_for_log(caplog, "datagram from an unbound socket")
            assert gateway.stack.frames_received == 0
            peer = await DgramPeer.bound(str(tmp_path / "qemu.sock"), path)
            await assert_guest_served(peer, guest_mac(1), guest_ip(1))
            peer.close()
            unbound.close()


async def test_a_vm_that_goes_away_and_comes_back_is_served_again(path, tmp_path, caplog):
    local = str(tmp_path / "qemu.sock")
    with trio.fail_after(TIMEOUT):
        async with running_gateway(QemuDgramTransport(path)) as gateway:
            first = await DgramPeer.bound(local, path)
            await first.send(arp_request(guest_mac(1), guest_ip(1)))
            await first.receive()
            first.close()  # QEMU exits: its socket file is gone
            # a late reply (here: straight through the link) finds nobody; the link closes
            (link,) = gateway.transport.links
            link.send_frame(b"\0" * 60)
            assert not link.is_open and "its socket is gone" in log_messages(caplog)
            again = await DgramPeer.bound(local, path)
            await assert_guest_served(again, guest_mac(1), guest_ip(1))
            again.close()


async def test_a_path_held_by_a_running_server_is_refused(path):
    with trio.fail_after(TIMEOUT):
        async with running_gateway(QemuDgramTransport(path)):
            with pytest.raises(TransportError, match="in use"):
                await Gateway(Config(), QemuDgramTransport(path)).run()


async def test_a_stale_socket_file_is_replaced_and_removed_at_exit(path):
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(path)
    stale.close()
    with trio.fail_after(TIMEOUT):
        async with running_gateway(QemuDgramTransport(path)):
            assert os.path.exists(path)
    assert not os.path.exists(path)


@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86_64 is not installed")
async def test_real_qemu_accepts_the_socket_setup_and_frames_flow_both_ways(path, tmp_path, caplog):
    """QEMU 7.2 with -netdev dgram to our socket and no kernel: SeaBIOS hands the NIC to iPXE, whose
    network boot sends DHCP through the socket (QEMU -> hostclock). A frame we send to the guest's
    address must reach QEMU's netdev, as its filter-dump capture shows (hostclock -> QEMU)."""
    local = str(tmp_path / "qemu-local.sock")
    capture = str(tmp_path / "qemu-netdev.pcap")
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-nodefaults", "-nographic", "-m", "64",
            "-netdev", f"dgram,id=n0,local.type=unix,local.path={local},remote.type=unix,remote.path={path}",
            "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:99",
            "-object", f"filter-dump,id=d0,netdev=n0,file={capture}", "-boot", "n"]
    marker = bytes(Ether(src=GATEWAY_MAC, dst="52:54:00:12:34:99", type=0x88B5)  # IEEE local experimental
                   / b"hostclock-to-qemu".ljust(46, b"\0"))
    with trio.fail_after(60):
        async with running_gateway(QemuDgramTransport(path)) as gateway:
            process = await trio.lowlevel.open_process(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                       stderr=subprocess.DEVNULL)
            try:
                await wait_for_log(caplog, f"guest attached: qemu-dgram {path} <- {local}")
                while gateway.stack.frames_received < 1:
                    await trio.sleep(0.05)
                (link,) = gateway.transport.links
                link.send_frame(marker)
                while marker not in [bytes(p) for p in _read_capture(capture)]:
                    assert process.returncode is None, "QEMU exited"
                    await trio.sleep(0.05)
            finally:
                process.kill()
                await process.wait()
    first = Ether(bytes(_read_capture(capture)[0]))
    assert first.src == "52:54:00:12:34:99"  # iPXE's first frame, as it reached us


def _read_capture(path):
    try:
        return rdpcap(path)
    except (FileNotFoundError, Scapy_Exception, EOFError):  # not written yet, or a record half-written
        return []
