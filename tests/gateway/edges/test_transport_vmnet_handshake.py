"""The sans-IO vmnet handshake, byte for byte against the layout vpnkit's vmnet protocol uses.

The expected bytes are written out here with struct, not taken from the module.
"""

import hashlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.edges.transports.vmnet_handshake import (GuestRequest, Rejected, SendBytes, VmnetHandshake,
                                                mac_for_uuid)

UUID = "6d8e6f4c-3a1b-4f2e-9c0d-1a2b3c4d5e6f"
OUR_INIT = b"VMN3T" + struct.pack("<I", 22) + b"0123456789012345678901234567890123456789"


def client_init(version=22, magic=b"VMN3T"):
    return magic + struct.pack("<I", version) + b"hyperkit-commit".ljust(40, b"\0")


def ethernet_command(uuid=UUID.encode()):
    return b"\x01" + uuid + bytes(4)


def preferred_ipv4_command(ip: str, uuid=UUID.encode()):
    # vpnkit: Cstruct.LE.set_uint32 (Ipaddr.V4.to_int32 ip) -- the address's bytes reversed
    return b"\x08" + uuid + bytes(int(octet) for octet in ip.split("."))[::-1]


def vif_response(mtu, max_packet, mac):
    return (b"\x01" + struct.pack("<HH", mtu, max_packet) + mac).ljust(258, b"\0")


def test_sizes_and_our_init_are_vpnkits():
    assert len(OUR_INIT) == 49 and len(client_init()) == 49
    assert len(ethernet_command()) == 41 and len(preferred_ipv4_command("192.168.65.4")) == 41


def test_ethernet_command_is_answered_with_mtu_max_packet_size_and_the_uuids_mac():
    handshake = VmnetHandshake(mtu=1500)
    assert handshake.receive(client_init()) == [SendBytes(OUR_INIT)]
    events = handshake.receive(ethernet_command())
    assert events == [GuestRequest(UUID, None, False)]
    mac = mac_for_uuid(UUID)
    assert handshake.accept(mac) == vif_response(1500, 1550, mac)
    assert handshake.state == "attached" and handshake.leftover == b""


def test_everything_at_once_and_frames_sent_early_are_kept():
    handshake = VmnetHandshake(mtu=1500)
    early = struct.pack("<H", 3) + b"abc"
    events = handshake.receive(client_init() + ethernet_command() + early[:2])
    assert events == [SendBytes(OUR_INIT), GuestRequest(UUID, None, False)]
    assert handshake.receive(early[2:]) == []
    handshake.accept(b"\x02" * 6)
    assert handshake.leftover == early


@given(st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=100))
def test_any_split_of_the_byte_stream_gives_the_same_events(cuts):
    stream = client_init() + preferred_ipv4_command("192.168.65.9")
    handshake = VmnetHandshake(mtu=1500)
    events = []
    offset = 0
    for size in cuts:
        events += handshake.receive(stream[offset:offset + size])
        offset += size
    events += handshake.receive(stream[offset:])
    assert events == [SendBytes(OUR_INIT), GuestRequest(UUID, bytes([192, 168, 65, 9]), False)]


def test_preferred_ipv4_is_read_little_endian():
    handshake = VmnetHandshake(mtu=1500)
    events = handshake.receive(client_init() + preferred_ipv4_command("192.168.65.7"))
    assert events[-1] == GuestRequest(UUID, bytes([192, 168, 65, 7]), False)


def test_preferred_ipv4_of_zero_means_no_preference():
    handshake = VmnetHandshake(mtu=1500)
    events = handshake.receive(client_init() + preferred_ipv4_command("0.0.0.0"))
    assert events[-1] == GuestRequest(UUID, None, False)


def test_a_nil_uuid_gets_a_generated_one():
    handshake = VmnetHandshake(mtu=1500, new_uuid=lambda: "00000000-0000-4000-8000-000000000001")
    events = handshake.receive(client_init() + ethernet_command(bytes(36)))
    assert events[-1] == GuestRequest("00000000-0000-4000-8000-000000000001", None, True)


def test_another_version_gets_our_init_and_nothing_else():
    handshake = VmnetHandshake(mtu=1500)
    events = handshake.receive(client_init(version=2) + ethernet_command())
    assert len(events) == 1 and isinstance(events[0], Rejected)
    assert events[0].data == OUR_INIT and "version 2" in events[0].reason
    assert handshake.state == "closed"
    assert handshake.receive(b"more") == []


def test_a_wrong_magic_is_not_a_vmnet_client():
    events = VmnetHandshake(mtu=1500).receive(client_init(magic=b"HELLO"))
    assert isinstance(events[0], Rejected) and events[0].data == OUR_INIT and "magic" in events[0].reason


@pytest.mark.parametrize("command, reason", [
    (b"\x06" + bytes(40), "unsupported command 0x06"),  # vpnkit's Bind_ipv4
    (b"\x01" + b"not-a-uuid".ljust(36, b"x") + bytes(4), "invalid UUID"),
    (b"\x01" + UUID.replace("-", "_").encode() + bytes(4), "invalid UUID"),
])
def test_a_bad_command_gets_a_disconnect_response_with_the_reason(command, reason):
    handshake = VmnetHandshake(mtu=1500)
    events = handshake.receive(client_init() + command)
    assert events[0] == SendBytes(OUR_INIT)
    rejected = events[1]
    assert isinstance(rejected, Rejected) and reason in rejected.reason
    data = rejected.data
    assert len(data) == 258 and data[0] == 0x02
    assert data[2:2 + data[1]] == rejected.reason.encode() and data[2 + data[1]:] == bytes(256 - data[1])


def test_refuse_sends_the_reason_truncated_to_255_bytes():
    handshake = VmnetHandshake(mtu=1500)
    handshake.receive(client_init() + ethernet_command())
    data = handshake.refuse("x" * 300)
    assert data == b"\x02\xff" + b"x" * 255 + b"\0"
    assert handshake.state == "closed"


def test_accept_before_a_request_is_a_bug():
    with pytest.raises(RuntimeError):
        VmnetHandshake(mtu=1500).accept(b"\x02" * 6)


def test_max_packet_size_is_capped_to_what_a_u16_can_say():
    handshake = VmnetHandshake(mtu=65535)
    handshake.receive(client_init() + ethernet_command())
    assert handshake.accept(b"\x02" * 6)[1:5] == struct.pack("<HH", 65535, 65535)


def test_mac_for_uuid_is_stable_locally_administered_unicast_and_case_blind():
    mac = mac_for_uuid(UUID)
    assert mac == b"\x02" + hashlib.sha256(UUID.encode()).digest()[:5]
    assert mac[0] & 0x02 and not mac[0] & 0x01
    assert mac_for_uuid(UUID.upper()) == mac
    assert mac_for_uuid("6d8e6f4c-3a1b-4f2e-9c0d-1a2b3c4d5e70") != mac
