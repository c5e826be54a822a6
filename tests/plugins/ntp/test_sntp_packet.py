"""The NTP header layout, cross-checked against hand-written bytes and scapy's dissector."""

from __future__ import annotations

import pytest
from scapy.layers.ntp import NTP, NTPHeader

from plugins.ntp.packet import (
    HEADER, HEADER_LEN, LI_DELETE_SECOND, LI_INSERT_SECOND, LI_NAMES, LI_NO_WARNING,
    LI_UNSYNCHRONISED, MODE_CLIENT, MODE_NAMES, MODE_SERVER, ORIGINATE_OFFSET, RECEIVE_OFFSET,
    REFERENCE_OFFSET, TIMESTAMP, TRANSMIT_OFFSET, first_byte, leap_of, mode_of, version_of,
)

FIELDS = (0x24, 10, 6, -23, 0x00010000, 0x00018000, bytes([127, 127, 1, 1]),
          0xE8A0_0000_8000_0000, 0x0123_4567_89AB_CDEF, 0xE8A0_0000_0000_0005, 0xE8A0_0000_0000_0006)

# the same header written out byte by byte (RFC 5905 §7.3, Figure 8)
GOLDEN = bytes.fromhex(
    "24 0a 06 e9"                # LI 0 VN 4 mode 4, stratum 10, poll 6, precision -23
    "00 01 00 00"                # root delay 1.0 s
    "00 01 80 00"                # root dispersion 1.5 s
    "7f 7f 01 01"                # reference ID 127.127.1.1
    "e8 a0 00 00 80 00 00 00"    # reference timestamp
    "01 23 45 67 89 ab cd ef"    # originate
    "e8 a0 00 00 00 00 00 05"    # receive
    "e8 a0 00 00 00 00 00 06"    # transmit
)


def test_the_header_is_48_bytes():
    assert HEADER_LEN == HEADER.size == 48
    assert TIMESTAMP.size == 8


def test_packing_gives_the_golden_bytes():
    assert HEADER.pack(*FIELDS) == GOLDEN


def test_timestamp_offsets_point_at_the_timestamps():
    for offset, value in zip((REFERENCE_OFFSET, ORIGINATE_OFFSET, RECEIVE_OFFSET, TRANSMIT_OFFSET), FIELDS[7:]):
        assert TIMESTAMP.unpack_from(GOLDEN, offset)[0] == value
    assert TRANSMIT_OFFSET + 8 == HEADER_LEN


def test_scapy_dissects_the_golden_bytes_to_the_same_fields():
    ntp = NTP(GOLDEN)
    raw = ntp.fields
    assert (raw["leap"], raw["version"], raw["mode"]) == (0, 4, 4)
    assert (raw["stratum"], raw["poll"], raw["precision"]) == (10, 6, -23)
    assert ntp.delay == 1 and ntp.dispersion == 1.5
    assert raw["id"] == "127.127.1.1"
    assert (raw["ref"], raw["orig"], raw["recv"], raw["sent"]) == FIELDS[7:]


def test_unpacking_a_scapy_built_header_gives_scapy_values():
    built = bytes(NTP(leap=3, version=3, mode=3, stratum=0, poll=10, precision=-6,
                      orig=0, recv=0, sent=3902000000.5))  # scapy takes seconds since 1900
    fields = HEADER.unpack(built[:HEADER_LEN])
    assert fields[0] == first_byte(3, 3, 3) == 0xDB
    assert fields[2:4] == (10, -6)
    assert fields[10] == (3902000000 << 32) | (1 << 31)


@pytest.mark.parametrize("byte", range(256))
def test_first_byte_helpers_split_and_join_every_byte_as_scapy_does(byte):
    assert first_byte(leap_of(byte), version_of(byte), mode_of(byte)) == byte
    raw = NTPHeader(bytes([byte]) + GOLDEN[1:]).fields  # NTP() would dispatch mode 7 to another layout
    assert (leap_of(byte), version_of(byte), mode_of(byte)) == (raw["leap"], raw["version"], raw["mode"])


@pytest.mark.parametrize(("leap", "version", "mode"), [(4, 4, 3), (-1, 4, 3), (0, 8, 3), (0, 4, 8)])
def test_first_byte_refuses_fields_that_do_not_fit(leap, version, mode):
    with pytest.raises(ValueError):
        first_byte(leap, version, mode)


def test_names_cover_every_mode_and_leap_value():
    assert sorted(MODE_NAMES) == list(range(8))
    assert sorted(LI_NAMES) == [LI_NO_WARNING, LI_INSERT_SECOND, LI_DELETE_SECOND, LI_UNSYNCHRONISED] == [0, 1, 2, 3]
    assert (MODE_CLIENT, MODE_SERVER) == (3, 4)
