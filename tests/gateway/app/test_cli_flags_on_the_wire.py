"""Every gateway and responder flag of `hostclock run`, end to end: the real CLI on `--stdio`
(u16 little-endian length + frame on its stdin and stdout), with and without the flag, and
the difference seen in the frames it sends back. Frames are built and read with scapy.

"Nothing comes back" is observed in order: the probe is followed by an ARP request for the
gateway, and the first frame back must be that ARP's reply (the gateway handles one link's
frames in order).
"""

from __future__ import annotations

import os
import select
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether

from plugins.ntp.host_clock import read_kernel_time_state

REPO = Path(__file__).resolve().parents[3]
GATEWAY_MAC, GATEWAY_IP = "f6:16:36:bc:f9:c6", "192.168.65.1"
GUEST_MAC, GUEST_IP = "52:54:00:12:34:56", "192.168.65.3"
TIMEOUT = 10.0


class StdioGateway:
    """`python -m gateway run --stdio FLAGS...` as a child process; frames in and out."""

    def __init__(self, *flags: str, env: dict | None = None) -> None:
        environment = dict(os.environ, **(env or {}))
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(REPO), *(environment.get("PYTHONPATH", "").split(os.pathsep))]).rstrip(os.pathsep)
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--stdio", *flags],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=environment, cwd=REPO)
        self.buffer = b""
        self.stderr = b""
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while b"hostclock: gateway " not in self.stderr:  # the ready line (on stderr with --stdio)
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"not ready: {self.stderr.decode(errors='replace')}"
                                   f"{self.proc.stderr.read().decode(errors='replace') if self.proc.poll() is not None else ''}")
            if select.select([self.proc.stderr], [], [], 0.1)[0]:
                self.stderr += os.read(self.proc.stderr.fileno(), 65536)

    def send(self, frame) -> None:
        data = bytes(frame)
        self.proc.stdin.write(struct.pack("<H", len(data)) + data)
        self.proc.stdin.flush()

    def _read(self, n: int, deadline: float) -> bytes:
        while len(self.buffer) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError(f"no frame from the gateway within {TIMEOUT} s")
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                raise EOFError("the gateway closed stdout")
            self.buffer += data
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def receive(self) -> Ether:
        deadline = time.monotonic() + TIMEOUT
        (length,) = struct.unpack("<H", self._read(2, deadline))
        return Ether(self._read(length, deadline))

    def answer_to(self, frame) -> Ether | None:
        """The gateway's answer to `frame`, or None if the next frame back answers the sentinel."""
        self.send(frame)
        self.send(arp_request(GATEWAY_IP))
        reply = self.receive()
        if ARP in reply and reply[ARP].op == 2 and reply[ARP].psrc == GATEWAY_IP:
            return None
        sentinel = self.receive()
        assert ARP in sentinel and sentinel[ARP].psrc == GATEWAY_IP, sentinel.summary()
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # EOF on stdin: the guest left
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()

    def __enter__(self) -> "StdioGateway":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def arp_request(target: str, mac: str = GUEST_MAC, ip: str = GUEST_IP) -> Ether:
    return Ether(dst="ff:ff:ff:ff:ff:ff", src=mac) / ARP(op=1, hwsrc=mac, psrc=ip, pdst=target)


def to_gateway(l4, *, src: str = GUEST_IP, dst: str = GATEWAY_IP) -> Ether:
    return Ether(dst=GATEWAY_MAC, src=GUEST_MAC) / IP(src=src, dst=dst) / l4


def ntp_request() -> bytes:
    return bytes([0x23, 0, 6, 0xEC]) + bytes(36) + bytes.fromhex("0102030405060708")


def udp_payload(frame: Ether) -> bytes:
    """The UDP payload without the Ethernet padding scapy would count in."""
    return bytes(frame[UDP])[8:frame[UDP].len]


def ntp_reply(*flags: str) -> bytes:
    """The reply to one NTP request (answered asynchronously, by the responder on loopback: the
    ARP sentinel may overtake it, so the reply is waited for by itself)."""
    with StdioGateway("--no-dhcp", *flags) as gateway:
        gateway.send(to_gateway(UDP(sport=40000, dport=123) / ntp_request()))
        reply = gateway.receive()
    assert UDP in reply and reply[UDP].sport == 123 and reply[UDP].dport == 40000, reply.summary()
    payload = udp_payload(reply)
    assert payload[0] & 7 == 4 and payload[24:32] == bytes.fromhex("0102030405060708")
    return payload


# -- responder flags -------------------------------------------------------------------------

def test_stratum_and_refid_are_what_the_guest_receives():
    default = ntp_reply()
    assert default[1] == 10 and default[12:16] == bytes([127, 127, 1, 1])  # chrony's `local`
    chosen = ntp_reply("--stratum", "7", "--refid", "GPS")
    assert chosen[1] == 7 and chosen[12:16] == b"GPS\0"


def test_an_ipv4_refid_is_sent_as_its_four_bytes():
    assert ntp_reply("--refid", "192.0.2.77")[12:16] == bytes([192, 0, 2, 77])


def test_report_unsync_answers_li_3_stratum_0_while_the_kernel_says_unsynchronised():
    kernel = read_kernel_time_state()
    assert ntp_reply()[0] >> 6 == 0  # served as synchronised by default, whatever the kernel says
    reply = ntp_reply("--report-unsync")
    if kernel.known and not kernel.synchronised:
        assert (reply[0] >> 6, reply[1]) == (3, 0)  # chrony's way: LI=3 (unsynchronised), stratum 0
    else:  # a host the kernel calls synchronised is served as such with the flag too
        assert (reply[0] >> 6, reply[1]) == (0, 10)


# -- gateway flags ---------------------------------------------------------------------------

def test_host_alias_is_answered_for_arp_and_ping_only_with_the_flag():
    alias = "192.168.65.2"
    with StdioGateway("--no-dhcp") as gateway:
        assert gateway.answer_to(arp_request(alias)) is None
    with StdioGateway("--no-dhcp", "--host-alias", alias) as gateway:
        reply = gateway.answer_to(arp_request(alias))
        assert reply is not None and reply[ARP].op == 2 and reply[ARP].psrc == alias
        assert reply[ARP].hwsrc == GATEWAY_MAC and reply[ARP].pdst == GUEST_IP
        echo = gateway.answer_to(to_gateway(ICMP(type=8, id=1, seq=1) / b"alias", dst=alias))
        assert echo is not None and echo[ICMP].type == 0 and echo[IP].src == alias


def test_unbound_udp_drop_silences_the_port_unreachable():
    probe = to_gateway(UDP(sport=40001, dport=9) / b"discard?")
    with StdioGateway("--no-dhcp") as gateway:
        reply = gateway.answer_to(probe)
    assert reply is not None and (reply[ICMP].type, reply[ICMP].code) == (3, 3)  # RFC 1122 §4.1.3.1
    with StdioGateway("--no-dhcp", "--unbound-udp", "drop") as gateway:
        assert gateway.answer_to(probe) is None


def echo_request(total_length: int) -> Ether:
    """An echo request whose IP datagram is `total_length` bytes."""
    return to_gateway(ICMP(type=8, id=2, seq=1) / (b"m" * (total_length - 28)))


def test_mtu_bounds_the_echo_the_gateway_answers():
    with StdioGateway("--no-dhcp") as gateway:
        reply = gateway.answer_to(echo_request(1000))
        assert reply is not None and reply[ICMP].type == 0 and reply[IP].len == 1000
    with StdioGateway("--no-dhcp", "--mtu", "576") as gateway:
        assert gateway.answer_to(echo_request(1000)) is None  # its reply would not fit: never fragmented
        reply = gateway.answer_to(echo_request(576))
        assert reply is not None and reply[ICMP].type == 0 and reply[IP].len == 576


def dhcp_discover(mac: str = "52:54:00:aa:bb:01") -> Ether:
    return (Ether(dst="ff:ff:ff:ff:ff:ff", src=mac) / IP(src="0.0.0.0", dst="255.255.255.255")
            / UDP(sport=68, dport=67)
            / BOOTP(chaddr=bytes.fromhex(mac.replace(":", "")), xid=0x1234)
            / DHCP(options=[("message-type", "discover"), "end"]))


def offered(gateway: StdioGateway) -> dict:
    reply = gateway.answer_to(dhcp_discover())
    assert reply is not None and DHCP in reply, reply
    return {option[0]: option[1] for option in reply[DHCP].options if isinstance(option, tuple)}


def test_prefix_len_sets_the_subnet_a_guest_is_served_in():
    wider_guest = "192.168.70.3"  # inside 192.168.0.0/16, outside 192.168.65.0/24; a frame on --stdio pipes only
    ping = to_gateway(ICMP(type=8, id=3, seq=1) / b"subnet", src=wider_guest)
    with StdioGateway() as gateway:
        assert offered(gateway)["subnet_mask"] == "255.255.255.0"
        assert gateway.answer_to(ping) is None  # not a host of the guest subnet (RFC 1122 §3.2.1.3)
    with StdioGateway("--prefix-len", "16") as gateway:
        assert offered(gateway)["subnet_mask"] == "255.255.0.0"
        reply = gateway.answer_to(ping)
        assert reply is not None and reply[ICMP].type == 0 and reply[IP].dst == wider_guest


# -- --plugin --------------------------------------------------------------------------------

PLUGIN_MODULE = '''
"""A third-party plugin for the test: UDP/7 on the gateway answers every datagram, reversed."""
from collections import Counter

from gateway import Contribution, Plugin


class Reverse:
    port, accepts_broadcast = 7, False

    def __init__(self):
        self.drops = Counter()

    def handle_datagram(self, source, local_ip, payload, now):
        return [payload[::-1]]


PLUGIN = Plugin(name="reverse", contribute=lambda settings, gateway: Contribution(services=(Reverse(),)),
                summary="answers UDP/7 with the datagram reversed")
'''


@pytest.fixture
def installed_plugin(tmp_path):
    """A distribution `hc-test-reverse` with entry point `reverse` in `hostclock.plugins`, on a
    PYTHONPATH of its own (the way an installed package is found: its .dist-info)."""
    (tmp_path / "hc_test_reverse.py").write_text(PLUGIN_MODULE)
    info = tmp_path / "hc_test_reverse-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hc-test-reverse\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[hostclock.plugins]\nreverse = hc_test_reverse:PLUGIN\n")
    return {"PYTHONPATH": str(tmp_path)}


def test_plugin_runs_an_installed_plugin_only_when_asked(installed_plugin):
    listing = subprocess.run([sys.executable, "-m", "gateway", "plugins"], capture_output=True, text=True,
                             timeout=30, cwd=REPO, env=dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}"
                                                            f"{installed_plugin['PYTHONPATH']}"))
    assert listing.returncode == 0 and "reverse" in listing.stdout, listing
    probe = to_gateway(UDP(sport=40002, dport=7) / b"hostclock")
    with StdioGateway("--no-dhcp", env=installed_plugin) as gateway:
        reply = gateway.answer_to(probe)
        assert reply is not None and (reply[ICMP].type, reply[ICMP].code) == (3, 3)  # not running
    with StdioGateway("--no-dhcp", "--plugin", "reverse", env=installed_plugin) as gateway:
        reply = gateway.answer_to(probe)
    assert reply is not None and UDP in reply, reply
    assert (reply[UDP].sport, reply[UDP].dport, udp_payload(reply)) == (7, 40002, b"kcolctsoh")
    assert reply[IP].src == GATEWAY_IP and reply[IP].dst == GUEST_IP and reply[Ether].dst == GUEST_MAC
