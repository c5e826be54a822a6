#!/usr/bin/env python3
"""Write the hostile part of the replay corpus: crafted guest frames the gateway must survive.

    python3 pcaps/make_hostile.py          # (re)writes pcaps/hostile/*.pcap and *.pcapng
    python3 pcaps/make_golden.py           # then refresh the expected outcomes

Frames are built with scapy and written with scapy's own writers (a second,
independent pcap implementation beside the gateway's), except the few files
that are broken on purpose, which are cut or assembled byte by byte. Every
field that scapy would otherwise fill from this machine or the clock (MACs,
timestamps, NTP transmit times) is given, so running this twice writes the
same bytes. Times start at 2024-05-01T12:00:00Z, one frame per millisecond.

The guest is 192.168.65.3 (MAC 02:00:00:00:00:03), the gateway vpnkit's
192.168.65.1 (f6:16:36:bc:f9:c6); other addresses are documentation ranges.
What each capture holds is in pcaps/README.md and in CAPTURES below.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_Router_Alert
from scapy.layers.inet6 import ICMPv6ND_RS, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Dot3, Ether, LLC
from scapy.packet import Raw
from scapy.utils import EDecimal, PcapNgWriter, PcapWriter

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "hostile"

GW_MAC, GW_IP = "f6:16:36:bc:f9:c6", "192.168.65.1"
GUEST_MAC, GUEST_IP = "02:00:00:00:00:03", "192.168.65.3"
OTHER_MAC = "02:00:00:00:00:07"
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
BASE_NS = 1_714_564_800 * 1_000_000_000  # 2024-05-01T12:00:00Z
STEP_NS = 1_000_000
NTP_UNIX_OFFSET = 2_208_988_800
#: a transmit timestamp that is no time at all, as chronyd sends (data minimisation)
RANDOM_TRANSMIT = bytes.fromhex("5a3c9e01d27f44b8")

Frame = bytes
Timed = tuple[int, Frame]


# -- building blocks ---------------------------------------------------------------------------

def ntp_time(ns: int) -> bytes:
    seconds, rest = divmod(ns, 1_000_000_000)
    return struct.pack("!II", (seconds + NTP_UNIX_OFFSET) & 0xFFFFFFFF, rest * (1 << 32) // 1_000_000_000)


def ntp(version: int = 4, mode: int = 3, size: int = 48, transmit: bytes | None = None, leap: int = 0) -> bytes:
    """An NTP packet of `size` bytes: the 48-byte header (cut or zero-extended), transmit = 2024-05-01T12:00Z."""
    header = bytes([leap << 6 | version << 3 | mode, 0, 6, 0xEC]) + bytes(36) + (transmit or ntp_time(BASE_NS))
    return (header + bytes(max(0, size - 48)))[:size]


def ntp_with_mac(digest_len: int, key_id: int = 1) -> bytes:
    """A request with an RFC 5905 MAC: key ID then an MD5 (16) or SHA-1 (20) digest: 68 or 72 bytes."""
    return ntp() + struct.pack("!I", key_id) + bytes(range(1, digest_len + 1))


def udp_to_gateway(payload: bytes, sport: int = 40000, dport: int = 123, *, src_ip: str = GUEST_IP,
                   dst_ip: str = GW_IP, dst_mac: str = GW_MAC, src_mac: str = GUEST_MAC, **ip_fields) -> Ether:
    return (Ether(dst=dst_mac, src=src_mac) / IP(src=src_ip, dst=dst_ip, **ip_fields)
            / UDP(sport=sport, dport=dport) / Raw(payload))


def arp(op: int, psrc: str, pdst: str, *, dst: str = BROADCAST_MAC, hwsrc: str = GUEST_MAC,
        hwdst: str = "00:00:00:00:00:00", **fields) -> Ether:
    return Ether(dst=dst, src=hwsrc) / ARP(op=op, hwsrc=hwsrc, psrc=psrc, hwdst=hwdst, pdst=pdst, **fields)


def with_field(frame: Ether, offset: int, value: bytes) -> bytes:
    """The frame's bytes with `value` written at `offset` (to break a field after scapy built it right)."""
    raw = bytearray(bytes(frame))
    raw[offset:offset + len(value)] = value
    return bytes(raw)


def spaced(frames: list) -> list[Timed]:
    return [(BASE_NS + i * STEP_NS, bytes(f)) for i, f in enumerate(frames)]


REQUEST = udp_to_gateway(ntp())
THREE_REQUESTS = spaced([udp_to_gateway(ntp(), sport=40600 + i) for i in range(3)])


# -- the captures ----------------------------------------------------------------------------------

def truncated_headers() -> list[Timed]:
    """One good NTP request cut at every header boundary and one byte either side of it; a cut ARP."""
    whole = bytes(REQUEST)  # Ethernet 14 + IPv4 20 + UDP 8 + NTP 48 = 90 bytes
    cuts = [0, 1, 6, 12, 13, 14, 15, 33, 34, 35, 41, 42, 43, 89]
    request = bytes(arp(1, GUEST_IP, GW_IP))
    return spaced([whole[:n] for n in cuts] + [request[:14 + 27], whole])


def bad_checksums() -> list[Timed]:
    """Broken IPv4, UDP and ICMP checksums; a zero UDP checksum (none computed) is legal and answered."""
    ping = Ether(dst=GW_MAC, src=GUEST_MAC) / IP(src=GUEST_IP, dst=GW_IP) / ICMP(id=7, seq=1) / Raw(b"hostclock")
    return spaced([
        with_field(REQUEST, 24, b"\x12\x34"),  # IPv4 header checksum
        with_field(REQUEST, 40, b"\x12\x34"),  # UDP checksum
        with_field(REQUEST, 40, b"\x00\x00"),  # UDP checksum 0: "no checksum", answered
        with_field(ping, 36, b"\xde\xad"),  # ICMP checksum
        ping,
    ])


def ip_fragments() -> list[Timed]:
    """An NTP request in two IPv4 fragments (no reassembly: both dropped), then with DF only (answered)."""
    datagram = bytes(UDP(sport=40000, dport=123) / Raw(ntp()))
    first = Ether(dst=GW_MAC, src=GUEST_MAC) / IP(src=GUEST_IP, dst=GW_IP, id=77, flags="MF", frag=0, proto=17) / Raw(datagram[:24])
    second = Ether(dst=GW_MAC, src=GUEST_MAC) / IP(src=GUEST_IP, dst=GW_IP, id=77, frag=3, proto=17) / Raw(datagram[24:])
    return spaced([first, second, udp_to_gateway(ntp(), flags="DF")])


def ip_options() -> list[Timed]:
    """IPv4 options (allowed, skipped: answered), a header length below 20 and a version that is not 4."""
    return spaced([
        udp_to_gateway(ntp(), options=[IPOption_Router_Alert()]),
        udp_to_gateway(ntp(), options=[IPOption_NOP(), IPOption_NOP(), IPOption_NOP(), IPOption_NOP()]),
        udp_to_gateway(ntp(), ihl=4),
        with_field(REQUEST, 14, b"\x65"),  # version 6 in an IPv4 EtherType
    ])


def wrong_lengths() -> list[Timed]:
    """IPv4 and UDP length fields that lie, and Ethernet padding after the datagram (legal, answered)."""
    return spaced([
        udp_to_gateway(ntp(), len=200),  # IPv4 total length beyond the frame
        udp_to_gateway(ntp(), len=16),  # IPv4 total length below the header
        with_field(REQUEST, 38, struct.pack("!H", 4)),  # UDP length below 8
        with_field(REQUEST, 38, struct.pack("!H", 120)),  # UDP length beyond the IP payload
        Ether(dst=GW_MAC, src=GUEST_MAC) / IP(src=GUEST_IP, dst=GW_IP) / UDP(sport=40000, dport=123, len=8 + 44, chksum=0)
        / Raw(ntp()),  # UDP says 44 bytes of NTP (no checksum): too short for NTP
        bytes(REQUEST) + bytes(20),  # trailing Ethernet padding
    ])


def vlan_and_ethertypes() -> list[Timed]:
    """802.1Q and 802.1ad tagged requests, an 802.3/LLC frame, an unknown EtherType (LLDP)."""
    inner = IP(src=GUEST_IP, dst=GW_IP) / UDP(sport=40000, dport=123) / Raw(ntp())
    return spaced([
        Ether(dst=GW_MAC, src=GUEST_MAC) / Dot1Q(vlan=65) / inner,
        Ether(dst=GW_MAC, src=GUEST_MAC, type=0x88A8) / Dot1Q(vlan=1) / Dot1Q(vlan=65) / inner,
        Dot3(dst=GW_MAC, src=GUEST_MAC) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / Raw(bytes(38)),
        Ether(dst=GW_MAC, src=GUEST_MAC, type=0x88CC) / Raw(bytes(46)),
    ])


def ipv6() -> list[Timed]:
    """An NTP request over IPv6 and a router solicitation: the gateway speaks IPv4 only."""
    return spaced([
        Ether(dst=GW_MAC, src=GUEST_MAC) / IPv6(src="fe80::3", dst="fe80::1", hlim=64)
        / UDP(sport=40000, dport=123) / Raw(ntp()),
        Ether(dst="33:33:00:00:00:02", src=GUEST_MAC) / IPv6(src="fe80::3", dst="ff02::2", hlim=255) / ICMPv6ND_RS(),
    ])


def broadcast_multicast() -> list[Timed]:
    """NTP to broadcast and multicast, and frames with the wrong MACs or addresses for the gateway."""
    return spaced([
        udp_to_gateway(ntp(), dst_ip="255.255.255.255", dst_mac=BROADCAST_MAC),
        udp_to_gateway(ntp(), dst_ip="192.168.65.255", dst_mac=BROADCAST_MAC),
        udp_to_gateway(ntp(mode=5), dst_ip="224.0.1.1", dst_mac="01:00:5e:00:01:01"),  # NTP multicast
        udp_to_gateway(ntp(), src_mac="01:00:5e:00:00:01"),  # multicast source MAC
        udp_to_gateway(ntp(), dst_mac=OTHER_MAC),  # another host's MAC
        udp_to_gateway(ntp(), dst_ip="192.168.65.7"),  # gateway MAC, another host's IP
        udp_to_gateway(ntp(), src_ip="198.51.100.5"),  # source outside the guest subnet
        udp_to_gateway(ntp(), src_ip="0.0.0.0"),  # no address yet, but unicast
        udp_to_gateway(ntp(), src_ip=GW_IP),  # the gateway's own address as source
    ])


def arp_requests() -> list[Timed]:
    """ARP for the gateway (answered) and for other hosts, replies, gratuitous ARP, non-IPv4 ARP."""
    return spaced([
        arp(1, GUEST_IP, GW_IP),
        arp(1, GUEST_IP, "192.168.65.7"),
        arp(1, GUEST_IP, "198.51.100.1"),
        arp(2, GUEST_IP, GW_IP, dst=GW_MAC, hwdst=GW_MAC),
        arp(1, GUEST_IP, GUEST_IP),  # gratuitous
        arp(1, GUEST_IP, GW_IP, hwlen=8),
        arp(1, GUEST_IP, GW_IP, dst=GW_MAC),  # unicast request: still answered
    ])


def ntp_modes() -> list[Timed]:
    """Modes 0-7, version 4, 48 bytes: only mode 3 (client) is forwarded."""
    return spaced([udp_to_gateway(ntp(mode=mode), sport=40000 + mode) for mode in range(8)])


def ntp_versions() -> list[Timed]:
    """Versions 0-7, mode 3: 1-4 are answered (the reply copies the version), 0 and 5-7 dropped."""
    return spaced([udp_to_gateway(ntp(version=version), sport=40100 + version) for version in range(8)])


def ntp_sizes() -> list[Timed]:
    """Payloads of 0, 1, 47, 48, 49, 52, 68 (MD5 MAC), 72 (SHA-1 MAC) and 120 bytes: replies are 48 bytes."""
    payloads = [b"", b"\x23", ntp(size=47), ntp(), ntp(size=49), ntp(size=52), ntp_with_mac(16), ntp_with_mac(20),
                ntp(size=120)]
    return spaced([udp_to_gateway(p, sport=40200 + i) for i, p in enumerate(payloads)])


def amplification() -> list[Timed]:
    """Requests an amplifier would answer with more than it got: none is answered at all.

    ntpdc's monlist (mode 7, CVE-2013-5211), padded and bare; ntpq's readvar
    (mode 6); a mode-3 request shorter than the 48-byte reply it asks for.
    """
    monlist = bytes([0x17, 0x00, 0x03, 0x2A]) + bytes(4)
    readvar = bytes([0x16, 0x02, 0x00, 0x01]) + bytes(8)
    return spaced([
        udp_to_gateway(monlist, sport=40300),
        udp_to_gateway(monlist + bytes(40), sport=40301),
        udp_to_gateway(readvar, sport=40302),
        udp_to_gateway(readvar + bytes(36), sport=40303),
        udp_to_gateway(ntp(size=8), sport=40304),
    ])


def port_flood() -> list[Timed]:
    """1100 requests from distinct source ports, past the 1024-flow limit: the oldest quarter is evicted."""
    return spaced([udp_to_gateway(ntp(transmit=ntp_time(BASE_NS + i * STEP_NS)), sport=20000 + i)
                   for i in range(1100)])


def flow_expiry() -> list[Timed]:
    """One guest port asking every 61 s (past the 60 s idle timeout), with chronyd's random transmit."""
    request = udp_to_gateway(ntp(transmit=RANDOM_TRANSMIT), sport=40400)
    return [(BASE_NS + i * 61_000_000_000, bytes(request)) for i in range(3)]


def icmp_and_other_protocols() -> list[Timed]:
    """Ping (answered), an echo reply, a timestamp request, a cut ICMP header, TCP, GRE, UDP to port 9."""
    to_gw = Ether(dst=GW_MAC, src=GUEST_MAC) / IP(src=GUEST_IP, dst=GW_IP)
    return spaced([
        to_gw / ICMP(type=8, id=9, seq=1) / Raw(b"abcdefgh"),
        to_gw / ICMP(type=0, id=9, seq=1),
        to_gw / ICMP(type=13, id=9, seq=2, ts_ori=1, ts_rx=0, ts_tx=0),
        Ether(dst=GW_MAC, src=GUEST_MAC) / IP(src=GUEST_IP, dst=GW_IP, proto=1) / Raw(b"\x08\x00\xf7"),
        to_gw / TCP(sport=40500, dport=123, flags="S", seq=1),
        Ether(dst=GW_MAC, src=GUEST_MAC) / IP(src=GUEST_IP, dst=GW_IP, proto=47) / Raw(bytes(8)),
        udp_to_gateway(b"discard me", dport=9),
    ])


def host_rules() -> list[Timed]:
    """RFC 1122 host rules: unicast to the gateway inside a link-layer broadcast frame (§3.3.6: dropped,
    and no port unreachable for it, §3.2.2), a source that is the subnet's network address (§3.2.1.3),
    an echo request whose reply would exceed the 1500-byte MTU (never sent), and a good ping."""
    to_gw = Ether(dst=GW_MAC, src=GUEST_MAC) / IP(src=GUEST_IP, dst=GW_IP)
    big_echo = Ether(dst=GW_MAC, src=GUEST_MAC) / IP(src=GUEST_IP, dst=GW_IP, flags="DF") \
        / ICMP(type=8, id=9, seq=3) / Raw(bytes(1480))
    return spaced([
        udp_to_gateway(ntp(), dst_mac=BROADCAST_MAC),
        udp_to_gateway(b"discard me", dport=9, dst_mac=BROADCAST_MAC),
        udp_to_gateway(ntp(), src_ip="192.168.65.0"),
        big_echo,
        to_gw / ICMP(type=8, id=9, seq=4) / Raw(b"abcdefgh"),
    ])


def icmp_error_flood() -> list[Timed]:
    """150 datagrams to an unbound port within 15 ms: port unreachable for the burst of 100 and what
    refills meanwhile (100/s), the rest counted as rate-limited (RFC 1812 §4.3.2.8)."""
    return [(BASE_NS + i * 100_000, bytes(udp_to_gateway(b"x", sport=41000 + i, dport=9))) for i in range(150)]


def not_from_guest() -> list[Timed]:
    """A guest request amid frames the gateway itself sent (its ARP reply and NTP reply): only the request is input."""
    arp_reply = Ether(dst=GUEST_MAC, src=GW_MAC) / ARP(op=2, hwsrc=GW_MAC, psrc=GW_IP, hwdst=GUEST_MAC, pdst=GUEST_IP)
    reply_payload = bytes([0x24, 10, 6, 0xEC]) + bytes(20) + ntp_time(BASE_NS) + ntp_time(BASE_NS + STEP_NS) * 2
    ntp_reply = (Ether(dst=GUEST_MAC, src=GW_MAC) / IP(src=GW_IP, dst=GUEST_IP) / UDP(sport=123, dport=40000)
                 / Raw(reply_payload))
    return spaced([arp_reply, REQUEST, ntp_reply])


def snaplen_cut() -> list[Timed]:
    """Written with a 64-byte snap length, so every request is cut short in the file (and skipped)."""
    return spaced([REQUEST, arp(1, GUEST_IP, GW_IP)])


# -- writers ------------------------------------------------------------------------------------

def write_pcap(path: Path, records: list[Timed], *, nano: bool = True, linktype: int = 1, endianness: str = "<",
               snaplen: int = 65535) -> None:
    with PcapWriter(str(path), linktype=linktype, nano=nano, endianness=endianness, snaplen=snaplen, sync=True) as w:
        w.write_header(None)  # write_packet() alone writes no file header
        for ts, frame in records:
            seconds, rest = divmod(ts, 1_000_000_000)
            w.write_packet(frame[:snaplen], sec=seconds, usec=rest if nano else rest // 1000,
                           caplen=min(len(frame), snaplen), wirelen=len(frame))


def write_pcapng(path: Path, records: list[Timed]) -> None:
    """scapy's pcapng writer (microsecond resolution)."""
    with PcapNgWriter(str(path)) as w:
        for ts, frame in records:
            packet = Ether(frame)
            packet.time = EDecimal(ts) / 1_000_000_000
            w.write(packet)


def _pcapng_block(block_type: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def write_mixed_pcapng(path: Path) -> None:
    """Two interfaces, Ethernet and raw IPv4 (link type 101), nanosecond resolution, assembled by hand."""
    shb = _pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    tsresol_ns = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
    idb_ether = _pcapng_block(1, struct.pack("<HHI", 1, 0, 262144) + tsresol_ns)
    idb_raw = _pcapng_block(1, struct.pack("<HHI", 101, 0, 262144) + tsresol_ns)
    blocks = [shb, idb_ether, idb_raw]
    frames = [(0, bytes(arp(1, GUEST_IP, GW_IP))), (1, bytes(REQUEST)[14:]), (0, bytes(REQUEST))]
    for i, (interface, data) in enumerate(frames):
        ts = BASE_NS + i * STEP_NS
        blocks.append(_pcapng_block(6, struct.pack("<IIIII", interface, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data))
    path.write_bytes(b"".join(blocks))


def write_cut_file(path: Path, cut: int) -> None:
    """A good nanosecond pcap of three requests with the last `cut` bytes missing."""
    write_pcap(path, THREE_REQUESTS)
    data = path.read_bytes()
    path.write_bytes(data[:-cut])


def write_partial_header(path: Path) -> None:
    """A good nanosecond pcap of three requests followed by 7 bytes of a record header."""
    write_pcap(path, THREE_REQUESTS)
    with path.open("ab") as f:
        f.write(bytes(7))


#: file name -> (what it holds, how it is written)
CAPTURES: dict[str, tuple[str, Callable[[Path], None]]] = {
    "truncated_headers.pcap": ("a request cut at every header boundary (0..89 bytes), a cut ARP",
                               lambda p: write_pcap(p, truncated_headers())),
    "bad_checksums.pcap": ("bad IPv4/UDP/ICMP checksums; UDP checksum 0 (answered); a good ping",
                           lambda p: write_pcap(p, bad_checksums())),
    "ip_fragments.pcap": ("a request in two IPv4 fragments (dropped), then unfragmented with DF",
                          lambda p: write_pcap(p, ip_fragments())),
    "ip_options.pcap": ("IPv4 options (answered), IHL 4, version 6 in an IPv4 frame",
                        lambda p: write_pcap(p, ip_options())),
    "wrong_lengths.pcap": ("lying IPv4 total length and UDP length fields; Ethernet padding (answered)",
                           lambda p: write_pcap(p, wrong_lengths())),
    "vlan_and_ethertypes.pcap": ("802.1Q and 802.1ad tagged requests, 802.3/LLC, LLDP EtherType",
                                 lambda p: write_pcap(p, vlan_and_ethertypes())),
    "ipv6.pcap": ("NTP over IPv6, an ICMPv6 router solicitation", lambda p: write_pcap(p, ipv6())),
    "broadcast_multicast.pcap": ("NTP to broadcast and multicast, wrong MACs, foreign and spoofed addresses",
                                 lambda p: write_pcap(p, broadcast_multicast())),
    "arp_requests.pcap": ("ARP for the gateway (answered twice) and other hosts, replies, gratuitous, hlen 8",
                          lambda p: write_pcap(p, arp_requests())),
    "ntp_modes.pcap": ("NTP modes 0-7: only mode 3 answered", lambda p: write_pcap(p, ntp_modes())),
    "ntp_versions.pcap": ("NTP versions 0-7: 1-4 answered", lambda p: write_pcap(p, ntp_versions())),
    "ntp_sizes.pcap": ("NTP payloads 0/1/47/48/49/52/68/72/120 bytes: 48-byte replies, never longer",
                       lambda p: write_pcap(p, ntp_sizes())),
    "amplification.pcap": ("monlist (mode 7), readvar (mode 6), an 8-byte mode 3: nothing answered",
                           lambda p: write_pcap(p, amplification())),
    "port_flood.pcap": ("1100 requests from distinct ports: all answered, 256 flows evicted",
                        lambda p: write_pcap(p, port_flood())),
    "flow_expiry.pcap": ("one port asking every 61 s with a random transmit timestamp: flows expire",
                         lambda p: write_pcap(p, flow_expiry())),
    "icmp_and_other_protocols.pcap": ("ping (answered), other ICMP, cut ICMP, TCP, GRE, UDP port 9 (unreachable)",
                                      lambda p: write_pcap(p, icmp_and_other_protocols())),
    "host_rules.pcap": ("RFC 1122: unicast in a link broadcast, a network-address source, an echo over the MTU; "
                        "a good ping", lambda p: write_pcap(p, host_rules())),
    "icmp_error_flood.pcap": ("150 datagrams to an unbound port in 15 ms: 101 port unreachables (burst 100 + 1.5 refilled), 49 rate-limited",
                              lambda p: write_pcap(p, icmp_error_flood())),
    "not_from_guest.pcap": ("the gateway's own ARP and NTP replies around a request: skipped as not from a guest",
                            lambda p: write_pcap(p, not_from_guest())),
    "snaplen_cut.pcap": ("snap length 64: frames cut short in the file, skipped",
                         lambda p: write_pcap(p, snaplen_cut(), snaplen=64)),
    "linktype_raw_ip.pcap": ("link type 101 (raw IPv4): not Ethernet, skipped",
                             lambda p: write_pcap(p, [(ts, f[14:]) for ts, f in spaced([REQUEST])], linktype=101)),
    "microsecond_big_endian.pcap": ("a request and a ping in a big-endian microsecond pcap (answered)",
                                    lambda p: write_pcap(p, bad_checksums()[-1:] + spaced([REQUEST]), nano=False,
                                                         endianness=">")),
    "scapy_writer.pcapng": ("ARP and a request in scapy's pcapng (microsecond resolution): answered",
                            lambda p: write_pcapng(p, spaced([arp(1, GUEST_IP, GW_IP), REQUEST]))),
    "mixed_interfaces.pcapng": ("pcapng with an Ethernet and a raw-IPv4 interface, nanosecond resolution",
                                write_mixed_pcapng),
    "cut_mid_record.pcap": ("three requests, the file ends 10 bytes early, inside the last record",
                            lambda p: write_cut_file(p, 10)),
    "cut_mid_header.pcap": ("three requests plus 7 bytes of a fourth record header",
                            write_partial_header),
}


def write_all(out_dir: Path = OUT_DIR) -> None:
    """Write every capture of CAPTURES into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (_, write) in CAPTURES.items():
        write(out_dir / name)


def main() -> int:
    write_all()
    for name, (description, _) in CAPTURES.items():
        print(f"{name}: {description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
