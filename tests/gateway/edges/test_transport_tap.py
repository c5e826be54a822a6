"""A real TAP with the stack's kernel filter attached: the kernel keeps what the stack acts on,
drops the rest before it is queued, and the transport counts those drops at stop.

Frames are sent into the device from its far side (an AF_PACKET socket on the interface, in
this namespace, IPv6 off so that the kernel sends nothing of its own there).
"""

import socket
import subprocess

import pytest
import trio
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from gateway.app.assembly import build_stack
from gateway.core.kernel_filter import frame_filter
from gateway.edges.transports.tap import KERNEL_DROPS, TapTransport
from guest_frames import GATEWAY_IP, GATEWAY_MAC, GUEST_IP, GUEST_MAC, arp_request, ntp_request, ping, udp_to_gateway
from realpeers import requires_root, unique_name

pytestmark = pytest.mark.root

KEPT = [arp_request(), ping(), udp_to_gateway(ntp_request()), udp_to_gateway(b"q", dport=53)]
FILTERED = [bytes(Ether(dst="52:54:00:aa:bb:cc", src=GUEST_MAC) / IP(src=GUEST_IP, dst="198.51.100.7") / UDP()),
            bytes(Ether(dst=GATEWAY_MAC, src=GUEST_MAC) / IPv6() / UDP(dport=123)),
            bytes(Ether(dst=GATEWAY_MAC, src=GUEST_MAC) / IP(src=GUEST_IP, dst=GATEWAY_IP) / TCP(dport=22)),
            bytes(Ether(dst=GATEWAY_MAC, src=GUEST_MAC) / IP(src=GUEST_IP, dst="198.51.100.7") / UDP(dport=123)),
            b"\x01\x00\x5e\x00\x00\xfb" + bytes(54),
            KEPT[2][:24] + bytes([KEPT[2][24] ^ 0x40]) + KEPT[2][25:]]  # the NTP request, its IP checksum broken


async def frames_through(transport: TapTransport, frames: list[bytes]) -> list[bytes]:
    """Send `frames` into the device from its far side; what reached the transport's `on_frame`."""
    received: list[bytes] = []

    def on_frame(frame, link, read_ns=None):
        received.append(frame)

    async with trio.open_nursery() as nursery:
        await nursery.start(transport.run, on_frame)
        name = transport.name
        subprocess.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{name}.disable_ipv6=1"], check=True)
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as far_side:
            far_side.bind((name, 0))
            for frame in frames:
                far_side.send(frame)
        with trio.move_on_after(2):
            while len(received) < sum(1 for f in frames if f in KEPT):
                await trio.sleep(0.01)
        await trio.sleep(0.2)  # and nothing else arrives
        nursery.cancel_scope.cancel()
    return received


@requires_root
async def test_the_kernel_keeps_what_the_stack_acts_on_and_counts_what_it_filters():
    transport = TapTransport(unique_name("hcf"))
    transport.filter_in_kernel(frame_filter(build_stack()))
    received = await frames_through(transport, FILTERED + KEPT + FILTERED)
    assert transport.filtering
    assert [frame.rstrip(b"\0") for frame in received] == [frame.rstrip(b"\0") for frame in KEPT]
    assert transport.drops[KERNEL_DROPS] == 2 * len(FILTERED)


@requires_root
async def test_without_the_filter_every_frame_reaches_the_gateway():
    transport = TapTransport(unique_name("hcf"))
    received = await frames_through(transport, FILTERED + KEPT)
    assert not transport.filtering
    assert len(received) == len(FILTERED) + len(KEPT)
    assert KERNEL_DROPS not in transport.drops
