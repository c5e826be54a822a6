"""Shared guest-side helpers for the transport tests (checked in tests/gateway/edges/test_transport_harness.py).

A transport test builds a peer that speaks its transport's framing over a real
socket (written out by hand in that test), starts a real
`gateway.app.runtime.Gateway` on the transport with `running_gateway`, and calls
`assert_guest_served(peer, ...)`: the guest's ARP request, ping and NTP request
must each be answered through the transport.

Frames are built and decoded with scapy, an implementation independent of the
gateway's own codecs. NTP is answered by the real embedded SNTP responder when
`plugins.ntp.server` is importable, and otherwise by `tiny_ntp_responder`
here (via `config.ntp.upstream`). Everything stays on loopback and on Unix
sockets under pytest's tmp_path; nothing sets a clock.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import pytest
import trio
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether

from gateway.app.config import Config
from gateway.app.runtime import Gateway

try:
    from plugins.ntp.server import SntpServer  # noqa: F401
    EMBEDDED_RESPONDER = True
except ImportError:
    EMBEDDED_RESPONDER = False

GATEWAY_IP = "192.168.65.1"
GATEWAY_MAC = "f6:16:36:bc:f9:c6"
#: every test and every await in it finishes well within this
TIMEOUT = 10.0
_NTP_UNIX_OFFSET = 2208988800


class GuestPeer(Protocol):
    """The guest's end of a transport: sends and receives whole Ethernet frames."""

    async def send(self, frame: bytes) -> None: ...

    async def receive(self) -> bytes: ...


# -- frames a guest sends -------------------------------------------------------------------------

def arp_request(mac: str, ip: str, target: str = GATEWAY_IP) -> bytes:
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=mac, psrc=ip, pdst=target))


def echo_request(mac: str, ip: str, ident: int = 0x4242, seq: int = 1, payload: bytes = b"hostclock-ping") -> bytes:
    return bytes(Ether(src=mac, dst=GATEWAY_MAC) / IP(src=ip, dst=GATEWAY_IP, ttl=64)
                 / ICMP(type=8, id=ident, seq=seq) / payload)


def ntp_request(mac: str, ip: str, sport: int, transmit: bytes) -> bytes:
    """An SNTP client request (RFC 4330: LI 0, version 4, mode 3) with the given transmit timestamp."""
    request = bytes([0x23, 0, 6, 0xEC]) + bytes(36) + transmit
    return bytes(Ether(src=mac, dst=GATEWAY_MAC) / IP(src=ip, dst=GATEWAY_IP, ttl=64)
                 / UDP(sport=sport, dport=123) / request)


def guest_mac(n: int) -> str:
    return f"52:54:00:12:34:{n:02x}"


def guest_ip(n: int) -> str:
    return f"192.168.65.{n + 2}"


# -- checking what comes back ---------------------------------------------------------------------

#: how far outside [sent, received] a reply's transmit timestamp may be
TRANSMIT_SLACK_NS = 50_000_000


async def assert_guest_served(peer: GuestPeer, mac: str, ip: str, *, sport: int = 40123,
                              min_frame: int = 0) -> None:
    """ARP, ping and NTP from the guest `mac`/`ip` are each answered through `peer`.

    `min_frame`: every reply must be at least this long (vmnet: hyperkit's 60-byte padding).
    """
    await peer.send(arp_request(mac, ip))
    reply = await _receive(peer, min_frame)
    assert ARP in reply, reply.summary()
    assert reply[ARP].op == 2 and reply[ARP].psrc == GATEWAY_IP and reply[ARP].hwsrc == GATEWAY_MAC
    assert reply[ARP].pdst == ip and reply[ARP].hwdst == mac and reply[Ether].dst == mac

    await peer.send(echo_request(mac, ip, seq=7))
    reply = await _receive(peer, min_frame)
    assert ICMP in reply, reply.summary()
    assert reply[ICMP].type == 0 and reply[ICMP].id == 0x4242 and reply[ICMP].seq == 7
    assert reply[IP].src == GATEWAY_IP and reply[IP].dst == ip and reply[Ether].dst == mac
    assert bytes(reply[ICMP].payload).startswith(b"hostclock-ping")

    transmit = os.urandom(8)  # random, as chrony's client sends: the reply must echo it byte for byte
    before = time.time_ns()
    await peer.send(ntp_request(mac, ip, sport, transmit))
    reply = await _receive(peer, min_frame)
    after = time.time_ns()
    assert UDP in reply, reply.summary()
    assert reply[IP].src == GATEWAY_IP and reply[IP].dst == ip and reply[Ether].dst == mac
    assert reply[UDP].sport == 123 and reply[UDP].dport == sport
    ntp = bytes(reply[UDP].payload)
    assert len(ntp) >= 48 and ntp[0] & 7 == 4, ntp.hex()
    assert ntp[24:32] == transmit, "originate must be the request's transmit timestamp"
    seconds, fraction = struct.unpack("!II", ntp[40:48])
    unix_transmit = (seconds - _NTP_UNIX_OFFSET) * 1_000_000_000 + (fraction * 1_000_000_000 >> 32)
    # the host clock, read when the reply was made: inside the exchange, give or take 50 ms (a
    # clock that is off shows as seconds; 50 ms absorbs a busy machine's scheduling)
    assert before - TRANSMIT_SLACK_NS <= unix_transmit <= after + TRANSMIT_SLACK_NS, \
        (before, unix_transmit, after)


async def _receive(peer: GuestPeer, min_frame: int) -> Ether:
    frame = await peer.receive()
    assert len(frame) >= min_frame, f"a {len(frame)}-byte frame; expected at least {min_frame}"
    return Ether(frame)


# -- running a gateway ----------------------------------------------------------------------------

async def tiny_ntp_responder(*, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """A loopback SNTP server for tests: answers mode 3 with mode 4 from the host clock."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        await sock.bind(("127.0.0.1", 0))
        task_status.started(sock.getsockname()[1])
        while True:
            data, address = await sock.recvfrom(1024)
            if len(data) < 48 or data[0] & 7 != 3:
                continue
            now = time.time() + _NTP_UNIX_OFFSET
            stamp = struct.pack("!II", int(now), int((now % 1) * 2**32))
            reply = (bytes([(data[0] & 0x38) | 4, 2, data[2], 0xEC]) + bytes(8) + b"\x7f\x7f\x01\x01"
                     + stamp + data[40:48] + stamp + stamp)
            await sock.sendto(reply, address)


@asynccontextmanager
async def running_gateway(transport, config: Config | None = None) -> AsyncIterator[Gateway]:
    """A real Gateway serving `transport`, with NTP answered on loopback; cancelled on exit."""
    config = config or Config()
    async with trio.open_nursery() as nursery:
        if not EMBEDDED_RESPONDER and config.ntp.upstream is None:
            port = await nursery.start(tiny_ntp_responder)
            config = config.replace(ntp={"upstream": f"127.0.0.1:{port}"})
        gateway = Gateway(config, transport)
        await nursery.start(gateway.run)
        yield gateway
        nursery.cancel_scope.cancel()


def log_messages(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


async def wait_for_log(caplog: pytest.LogCaptureFixture, text: str) -> None:
    """Wait until a log line containing `text` appears (the caller bounds the wait)."""
    while text not in log_messages(caplog):
        await trio.sleep(0.01)
