"""Parsing and formatting of MAC and IPv4 addresses, for configuration and logs.

The hot path keeps addresses as raw `bytes` (6 for a MAC, 4 for IPv4);
these helpers are for the edges, where people type and read them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["parse_mac", "format_mac", "parse_ipv4", "format_ipv4", "BROADCAST_MAC", "GuestSubnet"]

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


class GuestSubnet:
    """Which IPv4 addresses a guest can have: the one rule the stack and the DHCP server share.

    A guest host address is an address of the guest subnet that is

    * not the network address (host part all zeros) nor the subnet broadcast
      address (host part all ones). RFC 1122 §3.2.1.3: "IP addresses are not
      permitted to have the value 0 or -1 for any of the <Host-number>,
      <Network-number>, or <Subnet-number> fields (except in the special cases
      listed above)", the directed broadcast { <Network-number>, -1 } "MUST NOT
      be used as a source address", and "A host MUST silently discard an
      incoming datagram containing an IP source address that is invalid by the
      rules of this section". (The host-part-0 form is also 4.2BSD's old
      broadcast address, RFC 1122 §3.3.6.)
    * not one of the gateway's own addresses (`local_ips`: the gateway and the
      host alias), which no guest may claim.

    `is_host(ip)` is on the stack's hot path (every IPv4 frame's source): a closure
    over raw 4-byte addresses and integers, cheaper to call than a method.
    """

    __slots__ = ("network", "local_ips", "is_host")

    def __init__(self, network: ipaddress.IPv4Network, local_ips: Iterable[bytes]) -> None:
        self.network = network
        self.local_ips = local = frozenset(local_ips)
        network_int = int(network.network_address)
        broadcast_int = int(network.broadcast_address)

        def is_host(ip: bytes) -> bool:
            """Whether `ip` (4 raw bytes; anything else is not) can be a guest's own address."""
            # strictly between the network and broadcast addresses: in the subnet, host part neither 0 nor -1
            return len(ip) == 4 and ip not in local and network_int < int.from_bytes(ip, "big") < broadcast_int

        self.is_host = is_host

    @classmethod
    def of_gateway(cls, gateway) -> "GuestSubnet":
        """The guest subnet of a `gateway.app.config.GatewayConfig` (its network, gateway and host alias)."""
        local = [parse_ipv4(ip) for ip in (gateway.gateway_ip, gateway.host_alias_ip) if ip is not None]
        return cls(gateway.network, local)
