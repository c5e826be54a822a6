"""Parsing and formatting of MAC and IPv4 addresses, for configuration and logs.

The hot path keeps addresses as raw `bytes` (6 for a MAC, 4 for IPv4);
these helpers are for the edges, where people type and read them.
"""

from __future__ import annotations

import ipaddress

__all__ = ["parse_mac", "format_mac", "parse_ipv4", "format_ipv4", "BROADCAST_MAC"]

BROADCAST_MAC = b"\xff" * 6


def parse_mac(text: str) -> bytes:
    """'f6:16:36:bc:f9:c6' (or with '-') -> 6 bytes; ValueError if it is not a MAC."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
        raise ValueError(f"not a MAC address: {text!r} (expected six hex pairs like f6:16:36:bc:f9:c6)")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(f"not a MAC address: {text!r} (expected six hex pairs like f6:16:36:bc:f9:c6)") from None


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def parse_ipv4(text: str) -> bytes:
    """'192.168.65.1' -> 4 bytes; ValueError if it is not a dotted-quad IPv4 address."""
    try:
        return ipaddress.IPv4Address(text).packed
    except ValueError:
        raise ValueError(f"not an IPv4 address: {text!r}") from None


def format_ipv4(ip: bytes) -> str:
    return ".".join(str(b) for b in ip)
