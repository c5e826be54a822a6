"""plugins.dhcp.packet: the DHCP codec, with scapy as the independent oracle."""

import pytest
from scapy.layers.dhcp import BOOTP, DHCP

from plugins.dhcp.drops import DhcpDrop
from plugins.dhcp.packet import (
    BOOTP_MIN_LEN, DISCOVER, HEADER_LEN, MAGIC_COOKIE, MIN_MESSAGE_LEN, OFFER, REQUEST, DhcpMessage,
    build_message, encoded_length, parse_message,
)

MAC = bytes.fromhex("525400123456")


def scapy_request(options, **fields) -> bytes:
    fields.setdefault("chaddr", MAC)
    fields.setdefault("xid", 0xCAFEBABE)
    return bytes(BOOTP(**fields) / DHCP(options=options))


# -- parsing --------------------------------------------------------------------------------

def test_a_scapy_discover_parses_field_by_field():
    data = scapy_request([("message-type", "discover"), ("param_req_list", [1, 3, 42]),
                          ("client_id", b"\x01" + MAC), ("max_dhcp_size", 1500), "end"],
                         flags=0x8000, secs=7, hops=1, ciaddr="192.168.65.9")
    message = parse_message(data)
    assert isinstance(message, DhcpMessage)
    assert (message.op, message.htype, message.hlen, message.hops) == (1, 1, 6, 1)
    assert (message.xid, message.secs, message.flags) == (0xCAFEBABE, 7, 0x8000)
    assert message.broadcast_flag
    assert message.ciaddr == bytes([192, 168, 65, 9]) and message.yiaddr == bytes(4)
    assert message.chaddr == MAC + bytes(10) and message.client_mac == MAC
    assert message.message_type == DISCOVER
    assert message.options == {53: b"\x01", 55: bytes([1, 3, 42]), 61: b"\x01" + MAC, 57: (1500).to_bytes(2, "big")}
    assert list(message.options) == [53, 55, 61, 57]  # arrival order is kept


def test_pad_options_are_skipped_and_what_follows_end_is_ignored():
    data = scapy_request([])[:MIN_MESSAGE_LEN] + bytes([0, 0, 53, 1, 3, 0, 255, 12, 99, 1, 2])
    message = parse_message(data)
    assert isinstance(message, DhcpMessage)
    assert message.options == {53: bytes([REQUEST])}


def test_split_options_are_concatenated_rfc3396():
    data = scapy_request([])[:MIN_MESSAGE_LEN] + bytes([53, 1, 1, 55, 2, 1, 3, 55, 1, 42, 255])
    assert parse_message(data).options[55] == bytes([1, 3, 42])


@pytest.mark.parametrize("overload", [1, 2, 3])  # 1: 'file' holds options, 2: 'sname', 3: both
def test_option_overload_reads_file_then_sname(overload):
    file = bytes([55, 1, 42, 255]) if overload & 1 else b""
    sname = bytes([61, 2, 1, 2, 255]) if overload & 2 else b""
    data = scapy_request([], file=file, sname=sname)[:MIN_MESSAGE_LEN] + bytes([53, 1, 1, 52, 1, overload, 255])
    message = parse_message(data)
    assert isinstance(message, DhcpMessage), message
    assert (55 in message.options) == bool(overload & 1)
    assert (61 in message.options) == bool(overload & 2)
    assert message.file == (b"" if overload & 1 else bytes(128))
    assert message.sname == (b"" if overload & 2 else bytes(64))


def with_options(raw: bytes) -> bytes:
    return scapy_request([])[:MIN_MESSAGE_LEN] + raw


@pytest.mark.parametrize("data, reason", [
    (b"", DhcpDrop.TRUNCATED),
    (scapy_request([("message-type", "discover"), "end"])[:239], DhcpDrop.TRUNCATED),
    (scapy_request([])[:HEADER_LEN] + b"\x63\x82\x53\x64" + bytes([53, 1, 1, 255]), DhcpDrop.BAD_MAGIC_COOKIE),
    (with_options(bytes([53, 1, 1, 12, 9, 65, 255])), DhcpDrop.BAD_OPTION_LENGTH),
    (with_options(bytes([53, 1, 1, 12])), DhcpDrop.BAD_OPTION_LENGTH),
    (with_options(bytes([53, 1, 1])), DhcpDrop.MISSING_END_OPTION),
    (with_options(b""), DhcpDrop.MISSING_END_OPTION),
    (with_options(bytes([55, 1, 3, 255])), DhcpDrop.MISSING_MESSAGE_TYPE),
    (with_options(bytes([255])), DhcpDrop.MISSING_MESSAGE_TYPE),
    (with_options(bytes([53, 1, 0, 255])), DhcpDrop.BAD_MESSAGE_TYPE),
    (with_options(bytes([53, 1, 9, 255])), DhcpDrop.BAD_MESSAGE_TYPE),
    (with_options(bytes([53, 2, 1, 1, 255])), DhcpDrop.BAD_MESSAGE_TYPE),
    (with_options(bytes([53, 0, 255])), DhcpDrop.BAD_MESSAGE_TYPE),
    (with_options(bytes([53, 1, 1, 52, 1, 4, 255])), DhcpDrop.BAD_OPTION_OVERLOAD),
    (with_options(bytes([53, 1, 1, 52, 1, 1, 255])), DhcpDrop.MISSING_END_OPTION),  # 'file' of zeros: no end
])
def test_malformed_messages_are_named_not_raised(data, reason):
    assert parse_message(data) is reason


# -- building -------------------------------------------------------------------------------

GOLDEN_OFFER = bytes.fromhex(
    "02010600" "01020304" "0000" "8000" "00000000" "c0a8410a" "00000000" "00000000"
    "525400123456" + "00" * 10 + "00" * 64 + "00" * 128
    + "63825363" "350102" "3604c0a84101" "330400001c20" "0104ffffff00" "ff")


def test_an_offer_is_golden_bytes_and_scapy_reads_it_back():
    offer = DhcpMessage(op=2, xid=0x01020304, chaddr=MAC, flags=0x8000, yiaddr=bytes([192, 168, 65, 10]))
    options = [(53, bytes([OFFER])), (54, bytes([192, 168, 65, 1])), (51, (7200).to_bytes(4, "big")),
               (1, bytes([255, 255, 255, 0]))]
    wire = build_message(offer, options)
    assert wire == GOLDEN_OFFER + bytes(BOOTP_MIN_LEN - len(GOLDEN_OFFER))
    # the same message built by scapy (which does not pad to 300 octets)
    scapy = bytes(BOOTP(op=2, xid=0x01020304, chaddr=MAC, flags=0x8000, yiaddr="192.168.65.10")
                  / DHCP(options=[("message-type", "offer"), ("server_id", "192.168.65.1"),
                                  ("lease_time", 7200), ("subnet_mask", "255.255.255.0"), "end"]))
    assert wire[:len(scapy)] == scapy and not any(wire[len(scapy):])
    decoded = BOOTP(wire)
    assert decoded.op == 2 and decoded.yiaddr == "192.168.65.10" and decoded.xid == 0x01020304
    assert decoded[DHCP].options[:4] == [("message-type", 2), ("server_id", "192.168.65.1"),
                                         ("lease_time", 7200), ("subnet_mask", "255.255.255.0")]


def test_build_then_parse_round_trips():
    message = DhcpMessage(op=1, xid=99, chaddr=MAC, ciaddr=bytes([10, 0, 0, 7]),
                          options={53: bytes([REQUEST]), 55: bytes([1, 3]), 61: b"\x01" + MAC})
    wire = build_message(message)
    assert len(wire) == BOOTP_MIN_LEN
    parsed = parse_message(wire)
    assert parsed.options == message.options
    assert parsed.ciaddr == message.ciaddr and parsed.chaddr == MAC + bytes(10)


def test_a_long_message_is_not_padded_and_its_length_is_predicted():
    options = [(53, bytes([OFFER]))] + [(code, bytes(40)) for code in range(100, 106)]
    wire = build_message(DhcpMessage(op=2, xid=1, chaddr=MAC), options)
    assert len(wire) == encoded_length(options) == MIN_MESSAGE_LEN + 3 + 6 * 42 + 1
    assert wire[-1] == 255


def test_an_option_that_cannot_be_encoded_is_a_caller_bug():
    with pytest.raises(ValueError):
        build_message(DhcpMessage(op=2, xid=1, chaddr=MAC), [(6, bytes(256))])
    with pytest.raises(ValueError):
        build_message(DhcpMessage(op=2, xid=1, chaddr=MAC), [(255, b"")])


def test_magic_cookie_is_rfc2131s():
    assert MAGIC_COOKIE == bytes([99, 130, 83, 99]) and HEADER_LEN == 236
