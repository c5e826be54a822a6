"""Property: any byte string as a guest frame never raises, and every reply is a well-formed frame
no larger than the MTU (frames from a few bytes up to ~9100, past a 9000-byte jumbo MTU)."""

import struct
from collections import Counter

from hypothesis import HealthCheck, given, settings, strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from gateway.core.checksum import is_valid_checksum
from gateway.app.config import GatewayConfig
from gateway.core.drops import Drop
from gateway.core.stack import Stack
from gateway.core.udp import is_valid_udp_checksum
from guest_frames import arp_request, ntp_request, ping, udp_to_gateway

GATEWAY_MAC = bytes.fromhex("f61636bcf9c6")
LOCAL_IPS = {bytes([192, 168, 65, 1]), bytes([192, 168, 65, 2])}


class Echo:
    port = 7
    accepts_broadcast = True
    drops: Counter = Counter()

    def handle_datagram(self, source, local_ip, payload, now):
        return [payload]


def make_stack(mtu: int = 1500):
    return Stack(GatewayConfig(host_alias_ip="192.168.65.2", mtu=mtu), [Echo()])


def assert_well_formed_reply(request: bytes, reply: bytes, mtu: int = 1500) -> None:
    assert isinstance(reply, bytes) and 60 <= len(reply) <= 14 + mtu
    dst, src, ethertype = struct.unpack_from("!6s6sH", reply)
    assert src == GATEWAY_MAC
    if ethertype == 0x0806:
        # RFC 826: the reply goes to the request's sender hardware address (ar$sha)
        assert dst == request[22:28] and not dst[0] & 1
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = struct.unpack_from("!HHBBH6s4s6s4s", reply, 14)
        assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 2)
        assert sha == GATEWAY_MAC and spa in LOCAL_IPS and tha == dst
        return
    assert dst == request[6:12], "an IP reply goes back to the MAC that asked"
    assert ethertype == 0x0800
    header = reply[14:34]
    assert header[0] == 0x45 and is_valid_checksum(header)
    total_len = struct.unpack_from("!H", header, 2)[0]
    assert 14 + total_len <= len(reply)
    src_ip, dst_ip = header[12:16], header[16:20]
    assert src_ip in LOCAL_IPS
    payload = reply[34:14 + total_len]
    if header[9] == 1:
        assert is_valid_checksum(payload) and payload[0] in (0, 3)
    else:
        assert header[9] == 17
        assert struct.unpack_from("!H", payload, 4)[0] == len(payload)
        assert is_valid_udp_checksum(src_ip, dst_ip, payload)


VALID_FRAMES = [arp_request(), arp_request(target="192.168.65.2"), ping(), udp_to_gateway(b"abc", dport=7),
                udp_to_gateway(ntp_request(), dport=123), udp_to_gateway(b"q", dport=53)]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_any_bytes(frame):
    stack = make_stack()
    for reply in stack.receive_frame(frame, now=0.0):
        assert_well_formed_reply(frame, reply)


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(VALID_FRAMES), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
       st.integers(0, 200))
def test_mutated_valid_frames(frame, flips, cut):
    """Byte mutations and truncations of valid frames reach every parser path."""
    mutated = bytearray(frame)
    for position, value in flips:
        if position < len(mutated):
            mutated[position] = value
    mutated = bytes(mutated[:len(mutated) - cut]) if cut < len(mutated) else bytes(mutated)
    stack = make_stack()
    outputs = stack.receive_frame(mutated, now=0.0)
    for reply in outputs:
        assert_well_formed_reply(mutated, reply)
    assert stack.frames_received == 1
    assert len(outputs) or sum(stack.drops.values()) == 1, "a frame not answered is counted as a drop"


def test_valid_frames_are_all_answered():
    stack = make_stack()
    for frame in VALID_FRAMES:
        (reply,) = stack.receive_frame(frame, now=0.0)
        assert_well_formed_reply(frame, reply)


#: the largest frame tried: a 9000-byte jumbo MTU plus headers and some slack
LARGEST_FRAME = 9100
_HEADERS = 14 + 20 + 8  # Ethernet, IPv4, and the ICMP echo or UDP header
PAYLOAD_SIZES = st.one_of(
    st.integers(0, LARGEST_FRAME - _HEADERS),
    # around the edges: the 576, 1500 and 9000 MTUs' largest payloads, +-2
    st.sampled_from([mtu - 28 + d for mtu in (576, 1500, 9000) for d in (-2, -1, 0, 1, 2)]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(["echo", "udp", "udp-broadcast"]), size=PAYLOAD_SIZES,
       mtu=st.sampled_from([576, 1500, 9000]), flips=st.lists(st.tuples(st.integers(0, 41), st.integers(0, 255)),
                                                               max_size=2))
def test_large_frames_never_get_a_reply_over_the_mtu(path, size, mtu, flips):
    """Frames up to ~9100 bytes on the echo and UDP paths: every reply fits the MTU, and a
    frame that gets none is counted as a drop (REPLY_OVER_MTU when only the size is wrong)."""
    payload = bytes(size)
    if path == "echo":
        frame = ping(payload)
    elif path == "udp":
        frame = udp_to_gateway(payload, dport=7)
    else:
        frame = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src="52:54:00:12:34:56")
                      / IP(src="192.168.65.3", dst="255.255.255.255") / UDP(sport=68, dport=7) / payload)
    assert len(frame) <= LARGEST_FRAME
    mutated = bytearray(frame)
    for position, value in flips:
        mutated[position] = value
    mutated = bytes(mutated)
    stack = make_stack(mtu)
    outputs = stack.receive_frame(mutated, now=0.0)
    for reply in outputs:
        assert_well_formed_reply(mutated, reply, mtu)
    assert len(outputs) or sum(stack.drops.values()) == 1, "a frame not answered is counted as a drop"
    if not flips:
        fits = 20 + 8 + size <= mtu
        assert len(outputs) == (1 if fits else 0)
        assert stack.drops == ({} if fits else {Drop.REPLY_OVER_MTU: 1})
