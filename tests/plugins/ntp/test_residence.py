"""The residence-time correction, sans-IO: T2' = T2 - request residence, T3' = T3 + reply residence,
only on plain 48-byte server replies, everything else passed untouched with its reason."""

import struct

import pytest

from plugins.ntp.residence import (IMPLAUSIBLE_RESIDENCE, MAX_RESIDENCE_NS, NEGATIVE_RESIDENCE, NO_TIMESTAMPS,
                                   NOT_PLAIN, NOT_SERVER_REPLY, correct_reply)
from plugins.ntp.timestamps import ntp_to_unix_ns, unix_ns_to_ntp

NOW_NS = 1_764_633_600_123_456_789  # 2025-12-02, era 0
ORIGINATE = b"\x9e\x01\x02\x03\x04\x05\x06\x07"  # a client's random cookie: never interpreted


def reply(receive_ns: int = NOW_NS, transmit_ns: int = NOW_NS + 30_000, *, first: int = 0x24, tail: bytes = b"") -> bytes:
    head = bytes([first, 2, 6, 0xEC]) + bytes(8) + b"LOCL" + struct.pack("!Q", unix_ns_to_ntp(NOW_NS - 10**9))
    return head + ORIGINATE + struct.pack("!QQ", unix_ns_to_ntp(receive_ns), unix_ns_to_ntp(transmit_ns)) + tail


def timestamps_ns(payload: bytes) -> tuple[int, int]:
    receive, transmit = struct.unpack_from("!QQ", payload, 32)
    return ntp_to_unix_ns(receive, NOW_NS), ntp_to_unix_ns(transmit, NOW_NS)


def test_receive_moves_earlier_by_the_request_residence_and_transmit_later_by_the_reply_residence():
    original = reply()
    corrected, why = correct_reply(original, 250_000, 40_000)
    assert why is None
    receive, transmit = timestamps_ns(corrected)
    assert abs(receive - (NOW_NS - 250_000)) <= 1 and abs(transmit - (NOW_NS + 30_000 + 40_000)) <= 1
    assert corrected[:32] == original[:32]  # header, reference and originate byte for byte
    assert len(corrected) == 48


def test_zero_durations_leave_the_reply_as_it_was():
    original = reply()
    assert correct_reply(original, 0, 0) == (original, None)


def test_a_reply_across_the_era_rollover_is_corrected_modulo_the_era():
    # RFC 5905 §6: era 0 ends 2036-02-07 06:28:16 UTC; a transmit just before it, moved past it
    rollover_ns = (2**32 - 2_208_988_800) * 10**9
    original = reply(receive_ns=rollover_ns + 100_000, transmit_ns=rollover_ns - 100_000)
    corrected, why = correct_reply(original, 300_000, 300_000)
    assert why is None
    receive, transmit = struct.unpack_from("!QQ", corrected, 32)
    assert ntp_to_unix_ns(receive, rollover_ns) - (rollover_ns - 200_000) in (-1, 0, 1)
    assert ntp_to_unix_ns(transmit, rollover_ns) - (rollover_ns + 200_000) in (-1, 0, 1)
    assert transmit >> 32 == 0  # the seconds field wrapped into era 1


@pytest.mark.parametrize("tail", [struct.pack("!I", 1) + bytes(16),          # symmetric key: key ID + MD5
                                  struct.pack("!I", 1) + bytes(20),          # key ID + SHA1
                                  struct.pack("!HH", 0x0104, 36) + bytes(32)])  # an extension field (NTS)
def test_a_reply_with_a_mac_or_extension_fields_passes_untouched(tail):
    original = reply(tail=tail)
    corrected, why = correct_reply(original, 250_000, 40_000)
    assert corrected is original and why == NOT_PLAIN


@pytest.mark.parametrize("first", [0x23, 0x25, 0x22])  # modes 3, 5, 2
def test_only_server_replies_are_corrected(first):
    original = reply(first=first)
    assert correct_reply(original, 1_000, 1_000) == (original, NOT_SERVER_REPLY)


@pytest.mark.parametrize("request_ns, reply_ns", [(-1, 1_000), (1_000, -5_000_000_000)])
def test_a_negative_residence_leaves_the_reply_uncorrected(request_ns, reply_ns):
    original = reply()
    assert correct_reply(original, request_ns, reply_ns) == (original, NEGATIVE_RESIDENCE)


@pytest.mark.parametrize("request_ns, reply_ns", [(MAX_RESIDENCE_NS + 1, 0), (0, 3_600 * 10**9)])
def test_an_implausibly_long_residence_leaves_the_reply_uncorrected(request_ns, reply_ns):
    original = reply()
    assert correct_reply(original, request_ns, reply_ns) == (original, IMPLAUSIBLE_RESIDENCE)
    assert correct_reply(original, MAX_RESIDENCE_NS, MAX_RESIDENCE_NS)[1] is None


def test_a_reply_without_receive_or_transmit_timestamps_passes_untouched():
    original = reply()[:32] + bytes(16)
    assert correct_reply(original, 1_000, 1_000) == (original, NO_TIMESTAMPS)


@pytest.mark.parametrize("size", [0, 47, 44])
def test_short_replies_pass_untouched(size):
    original = reply()[:size]
    assert correct_reply(original, 1_000, 1_000) == (original, NOT_PLAIN)
