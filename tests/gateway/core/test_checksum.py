from hypothesis import given, strategies as st

from gateway.core.checksum import internet_checksum, is_valid_checksum


def reference_checksum(data: bytes) -> int:
    """RFC 1071 §4.1, word by word."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_rfc1071_example():
    # RFC 1071 §3 example bytes: 00 01 f2 03 f4 f5 f6 f7 -> sum ddf2, checksum 220d
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_known_ipv4_header():
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert internet_checksum(header) == 0xB861
    assert is_valid_checksum(header[:10] + b"\xb8\x61" + header[12:])


@given(st.binary(max_size=300))
def test_matches_reference(data):
    assert internet_checksum(data) == reference_checksum(data)


@given(st.binary(min_size=2, max_size=300).map(lambda b: b if len(b) % 2 == 0 else b + b"\0"))
def test_filled_in_checksum_verifies(data):
    data = b"\0\0" + data[2:]
    filled = internet_checksum(data).to_bytes(2, "big") + data[2:]
    assert is_valid_checksum(filled)


def test_all_zero_data_does_not_verify():
    assert internet_checksum(bytes(20)) == 0xFFFF
    assert not is_valid_checksum(bytes(20))
