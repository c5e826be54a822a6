"""The TAP's kernel filter never drops a frame the stack would act on, and drops most of a flood's garbage.

The program (`gateway.core.kernel_filter`) runs here in a classic BPF interpreter
written apart from it (`classic_bpf`); `tests/gateway/edges/test_tap_kernel_filter.py`
attaches it to a real TAP and checks the kernel agrees.
"""

import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import ICMP, IP, IPOption, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from classic_bpf import run_filter
from gateway.app.assembly import assemble
from gateway.app.config import Config
from gateway.core.kernel_filter import ACCEPT_LENGTH, frame_filter
from guest_frames import GATEWAY_IP, GATEWAY_MAC, GUEST_IP, GUEST_MAC, arp_request, ntp_request, ping, udp_to_gateway

CONFIGS = {
    "defaults": {},
    "unbound udp dropped": {"unbound_udp": "drop"},
    "host alias, /16": {"host_alias_ip": "192.168.65.2", "prefix_len": 16},
}


def stack_for(gateway_settings):
    return assemble(Config().replace(gateway=gateway_settings)).stack


def stack_acts_on(stack, frame) -> bool:
    """Did the stack answer, forward, or take the frame without counting a drop?"""
    before = sum(stack.drop_counts().values())
    outputs = stack.receive_frame(frame, now=1.0)
    return bool(outputs) or sum(stack.drop_counts().values()) == before


def likely(usual, *others):
    """`usual` seven times in ten, else one of `others`: most frames get far into the stack."""
    return st.integers(0, 9).flatmap(lambda n: st.just(usual) if n < 7 else st.sampled_from(others))


MACS = likely(GATEWAY_MAC, "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:fb", "33:33:00:00:00:01", "52:54:00:aa:bb:cc",
              "f6:16:36:bc:f9:c7")
IPS = st.sampled_from([GATEWAY_IP, "192.168.65.2", "255.255.255.255", "192.168.65.255", "192.168.255.255",
                       "192.168.65.9", "198.51.100.7", "0.0.0.0", "224.0.0.251"])
SOURCES = likely(GUEST_IP, "0.0.0.0", "192.168.65.255", "198.51.100.7", "192.168.66.4")
PORTS = st.sampled_from([67, 68, 123, 53, 7, 9, 40000])


@st.composite
def layer4(draw):
    kind = draw(likely("udp", "icmp", "icmp", "tcp", "other"))
    if kind == "udp":
        dport = draw(PORTS)
        if dport == 67:
            payload = BOOTP(chaddr=bytes.fromhex(GUEST_MAC.replace(":", "")), xid=7) / DHCP(
                options=[("message-type", draw(st.sampled_from(["discover", "request", "inform"]))), "end"])
        elif dport == 123:
            payload = ntp_request(mode=draw(st.sampled_from([3, 1, 4])))
        else:
            payload = draw(st.binary(max_size=40))
        return 17, UDP(sport=draw(st.sampled_from([68, 123, 41000])), dport=dport) / payload
    if kind == "icmp":
        return 1, ICMP(type=draw(st.sampled_from([8, 0, 13, 14, 3])), id=5, seq=1) / b"hostclock"
    if kind == "tcp":
        return 6, TCP(dport=draw(PORTS), flags="S")
    return draw(st.sampled_from([2, 47, 132])), b"x" * 20


@st.composite
def frames(draw):
    dst_mac = draw(MACS)
    src_mac = draw(likely(GUEST_MAC, "01:00:5e:00:00:01"))
    kind = draw(likely("ipv4", "arp", "arp", "ipv6", "vlan", "other"))
    ether = Ether(dst=dst_mac, src=src_mac)
    if kind == "arp":
        packet = ether / ARP(op=draw(likely(1, 2)), hwsrc=src_mac, psrc=draw(SOURCES),
                             pdst=draw(IPS), hwlen=draw(likely(6, 8)))
    elif kind == "ipv4":
        proto, l4 = draw(layer4())
        fields = {}
        if draw(st.integers(0, 9)) == 0:
            fields["flags"] = "MF"
        if draw(st.integers(0, 9)) == 0:
            fields["frag"] = 3
        if draw(st.integers(0, 4)) == 0:
            fields["options"] = IPOption(b"\x94\x04\x00\x00")  # router alert: an IHL of 6
        packet = ether / IP(src=draw(SOURCES), dst=draw(IPS), proto=proto, **fields) / l4
    elif kind == "ipv6":
        packet = ether / IPv6(dst="ff02::1") / UDP(dport=123) / ntp_request()
    elif kind == "vlan":
        packet = ether / Dot1Q(vlan=5) / IP(src=GUEST_IP, dst=GATEWAY_IP) / UDP(dport=123) / ntp_request()
    else:
        packet = Ether(dst=dst_mac, src=src_mac, type=0x88CC) / (b"\0" * 46)
    frame = bytearray(bytes(packet))
    if draw(st.integers(0, 4)) == 0:
        frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
    if draw(st.integers(0, 9)) == 0:
        del frame[draw(st.integers(0, len(frame))):]
    return bytes(frame)


@pytest.mark.parametrize("settings_name", CONFIGS)
def test_the_filter_keeps_arp_ping_and_ntp_for_the_gateway(settings_name):
    program = frame_filter(stack_for(CONFIGS[settings_name]))
    for frame in (arp_request(), ping(), udp_to_gateway(ntp_request())):
        assert stack_acts_on(stack_for(CONFIGS[settings_name]), frame)
        assert run_filter(program, frame) == ACCEPT_LENGTH, frame.hex()


@pytest.mark.parametrize("settings_name", CONFIGS)
@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(frame=frames())
def test_a_frame_the_filter_drops_is_one_the_stack_drops(settings_name, frame):
    stack = stack_for(CONFIGS[settings_name])
    if run_filter(frame_filter(stack), frame) == 0:
        assert not stack_acts_on(stack, frame), f"filtered out, but the stack acts on it: {frame.hex()}"


def test_the_filter_drops_what_a_flood_of_garbage_mostly_is():
    """Random bytes and frames to other hosts, IPv6, TCP: the kernel keeps none of them."""
    stack = stack_for({})
    program = frame_filter(stack)
    rng = random.Random(3)
    garbage = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(14, 200))) for _ in range(500)]
    garbage += [bytes(Ether(dst=GATEWAY_MAC, src=GUEST_MAC) / IP(src=GUEST_IP, dst="198.51.100.7") / UDP(dport=123)),
                bytes(Ether(dst=GATEWAY_MAC, src=GUEST_MAC) / IPv6() / UDP(dport=123)),
                bytes(Ether(dst=GATEWAY_MAC, src=GUEST_MAC) / IP(src=GUEST_IP, dst=GATEWAY_IP) / TCP(dport=22)),
                bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=GUEST_MAC) / IP(src=GUEST_IP, dst="255.255.255.255")
                      / UDP(dport=137))]
    kept = [frame for frame in garbage if run_filter(program, frame)]
    assert len(kept) <= 2, [frame.hex() for frame in kept]  # a random frame to ff:ff:.. with ARP's type, say


def with_byte(frame: bytes, offset: int, value: int) -> bytes:
    return frame[:offset] + bytes([value]) + frame[offset + 1:]


def test_the_checks_at_fixed_offsets_are_made_in_the_kernel():
    """What a flood's mutated frames mostly are: each is a frame the stack would drop by one rule."""
    program = frame_filter(stack_for({}))
    ntp = udp_to_gateway(ntp_request())
    request = arp_request()
    assert run_filter(program, ntp) == run_filter(program, request) == ACCEPT_LENGTH
    dropped = {
        "ip header checksum": with_byte(ntp, 14 + 10, ntp[24] ^ 0x40),
        "ip total length beyond the frame": bytes(Ether(dst=GATEWAY_MAC, src=GUEST_MAC)
                                                  / IP(src=GUEST_IP, dst=GATEWAY_IP, len=200) / UDP(dport=123)
                                                  / ntp_request()),
        "ip header length below 20": with_byte(with_byte(ntp, 14, 0x44), 24, 0),
        "ip version 6 in an IPv4 frame": with_byte(ntp, 14, 0x65),
        "source mac multicast": with_byte(ntp, 6, 0x01),
        "arp reply": with_byte(request, 14 + 7, 2),
        "arp hardware length 8": with_byte(request, 14 + 4, 8),
        "arp hardware type 6": with_byte(request, 14 + 1, 6),
        "arp sender mac multicast": with_byte(request, 14 + 8, 0x33),
        "arp sender mac not the source": with_byte(request, 14 + 8 + 5, 0x99),
        "arp sender mac not the source, high bytes": with_byte(request, 14 + 8 + 2, 0x99),
    }
    stack = stack_for({})
    for name, frame in dropped.items():
        assert not stack_acts_on(stack, frame), name
        assert run_filter(program, frame) == 0, name
    # a header with options (IHL 6) is kept whatever its checksum: the stack checks it
    with_options = bytes(Ether(dst=GATEWAY_MAC, src=GUEST_MAC) / IP(src=GUEST_IP, dst=GATEWAY_IP,
                                                                     options=IPOption(b"\x94\x04\x00\x00"))
                         / UDP(dport=123) / ntp_request())
    assert run_filter(program, with_options) == ACCEPT_LENGTH
    assert stack_acts_on(stack, with_options)


def test_bound_ports_alone_pass_when_unbound_udp_is_dropped():
    stack = stack_for({"unbound_udp": "drop"})
    program = frame_filter(stack)
    assert run_filter(program, udp_to_gateway(ntp_request(), dport=123)) == ACCEPT_LENGTH
    assert run_filter(program, udp_to_gateway(b"q", dport=53)) == 0
    # with port unreachable answers (the default), every port must reach the stack
    assert run_filter(frame_filter(stack_for({})), udp_to_gateway(b"q", dport=53)) == ACCEPT_LENGTH


def test_a_broadcast_reaches_only_a_service_that_takes_broadcasts():
    stack = stack_for({})
    program = frame_filter(stack)
    discover = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=GUEST_MAC) / IP(src="0.0.0.0", dst="255.255.255.255")
                     / UDP(sport=68, dport=67) / BOOTP(chaddr=bytes.fromhex("525400123456"))
                     / DHCP(options=[("message-type", "discover"), "end"]))
    assert run_filter(program, discover) == ACCEPT_LENGTH
    to_ntp = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=GUEST_MAC) / IP(src=GUEST_IP, dst="255.255.255.255")
                   / UDP(dport=123) / ntp_request())
    assert run_filter(program, to_ntp) == 0
