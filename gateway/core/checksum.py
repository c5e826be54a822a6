"""The Internet checksum (RFC 1071), computed the fast way.

RFC 791 §3.1: "The checksum field is the 16 bit one's complement of the one's
complement sum of all 16 bit words in the header."

Because 2**16 is congruent to 1 modulo 0xFFFF, the one's complement sum of the
16-bit words of a buffer equals the buffer read as one big-endian integer,
modulo 0xFFFF (with 0xFFFF standing for a non-zero multiple of it). Python's
`int.from_bytes` and `%` run in C, so this beats summing words one by one.
"""

from __future__ import annotations

__all__ = ["internet_checksum", "is_valid_checksum"]


def _ones_complement_sum(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"  # RFC 1071 §4.1: an odd byte is padded with zero
    value = int.from_bytes(data, "big")
    folded = value % 0xFFFF
    if folded == 0 and value:
        return 0xFFFF
    return folded


def internet_checksum(data: bytes) -> int:
    """The checksum to store in a header whose checksum field is zero in `data`."""
    return ~_ones_complement_sum(data) & 0xFFFF


def is_valid_checksum(data: bytes) -> bool:
    """True when `data`, checksum field included, sums to all ones (RFC 1071 §1)."""
    return _ones_complement_sum(data) == 0xFFFF
