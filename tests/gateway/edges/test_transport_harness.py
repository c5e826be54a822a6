"""The transport tests' shared guest-side helpers (tests/transport_harness.py), checked."""

from __future__ import annotations

import os
import socket

import trio
from scapy.layers.inet import UDP
from scapy.layers.l2 import ARP, Ether

from transport_harness import GATEWAY_IP, TIMEOUT, arp_request, guest_ip, guest_mac, ntp_request, tiny_ntp_responder


async def test_tiny_ntp_responder_answers_mode_3_with_mode_4_and_echoes_the_transmit_timestamp():
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(tiny_ntp_responder)
            client = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with client:
                transmit = os.urandom(8)
                await client.sendto(bytes([0x23]) + bytes(39) + transmit, ("127.0.0.1", port))
                reply = await client.recv(1024)
            nursery.cancel_scope.cancel()
    assert reply[0] & 7 == 4 and reply[24:32] == transmit


def test_guest_frames_are_well_formed():
    frame = Ether(ntp_request(guest_mac(1), guest_ip(1), 40000, b"\x01" * 8))
    assert frame[UDP].dport == 123 and bytes(frame[UDP].payload)[40:48] == b"\x01" * 8
    assert Ether(arp_request(guest_mac(1), guest_ip(1)))[ARP].pdst == GATEWAY_IP

