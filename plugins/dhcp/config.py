"""The dhcp plugin's settings: the ``[dhcp]`` table."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.addresses import parse_ipv4
from gateway.core.config import ConfigError

__all__ = ["DhcpConfig"]


@dataclass(frozen=True)
class DhcpConfig:
    """The DHCP server on the gateway (RFC 2131), handing the guest vpnkit's settings:
    an address, router = gateway, NTP server (option 42) = gateway."""

    enabled: bool = True
    #: seconds; vpnkit's is 2 hours (charrua's default)
    lease_time: int = 7200
    #: DNS servers (option 6) to hand out. None by default: nothing on the gateway answers DNS.
    dns_servers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"dhcp enabled {self.enabled!r}: use true or false")
        # RFC 2132 §9.2: a 32-bit count of seconds; 0xffffffff means "infinity"
        if isinstance(self.lease_time, bool) or not isinstance(self.lease_time, int) \
                or not 60 <= self.lease_time < 0xFFFFFFFF:
            raise ConfigError(f"dhcp lease_time {self.lease_time!r}: give whole seconds from 60 to 4294967294")
        if isinstance(self.dns_servers, str) or not isinstance(self.dns_servers, (list, tuple)):
            raise ConfigError(f"dhcp dns_servers {self.dns_servers!r}: give a list of IPv4 addresses")
        for server in self.dns_servers:
            try:
                if not isinstance(server, str):
                    raise ValueError(server)
                parse_ipv4(server)
            except ValueError:
                raise ConfigError(f"dhcp dns_servers: {server!r} is not an IPv4 address") from None
        # RFC 2132 §3.8: option 6 is one option of at most 255 octets, 4 per server
        if len(self.dns_servers) > 63:
            raise ConfigError(f"dhcp dns_servers: {len(self.dns_servers)} servers; at most 63 fit option 6")
        object.__setattr__(self, "dns_servers", tuple(self.dns_servers))
