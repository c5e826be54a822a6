"""The ntp plugin's settings: the ``[ntp]`` table (earlier ``[time]`` and ``[responder]``, still read).

One frozen dataclass, validated at construction, so a bad value stops the
program at start-up with one line naming the fix.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from gateway.core.addresses import parse_ipv4
from gateway.core.config import ConfigError, parse_host_port

from plugins.ntp.in_flight import DEFAULT_LIMIT

__all__ = ["NtpConfig", "DEFAULT_RESPONDER_LISTEN"]

DEFAULT_RESPONDER_LISTEN = "127.0.0.1:0"  # an ephemeral loopback port for the embedded responder


@dataclass(frozen=True)
class NtpConfig:
    """UDP/123 on the gateway, forwarded to an SNTP server on the host: by default the embedded
    responder that serves the host clock on loopback (RFC 4330 server mode)."""

    # -- the gateway's time service
    #: "HOST:PORT" of an existing server on the host, or None for the embedded responder
    upstream: str | None = None
    #: permit an upstream off loopback (then guest NTP traffic leaves the machine)
    allow_remote_upstream: bool = False
    #: vpnkit's UDP NAT: a flow idle this long (monotonic seconds) is closed
    flow_idle_timeout: float = 60.0
    #: vpnkit's UDP NAT: at most this many flows; at the limit the oldest quarter is expired
    max_flows: int = 1024
    #: move a plain reply's receive/transmit timestamps to the gateway's edges (the time the exchange
    #: spent inside the gateway taken out, as a PTP transparent clock does): `plugins.ntp.residence`
    residence_correction: bool = True

    #: requests of one guest (MAC + IPv4 address) awaiting the upstream at once; more are dropped
    #: until replies come back (`plugins.ntp.in_flight`); 0: no cap
    max_in_flight: int = DEFAULT_LIMIT

    # -- the embedded SNTP responder
    #: where the embedded responder runs: "process", a child process of its own (the default: the
    #: gateway's loop cannot delay its replies, `plugins.ntp.responder_process`), or "thread", a
    #: thread of the gateway's process (one process; replies wait for the GIL while the gateway is busy)
    responder: str = "process"
    #: where the embedded responder listens (port 0: an ephemeral port)
    listen: str = DEFAULT_RESPONDER_LISTEN
    #: stratum announced while the host clock is served as synchronised. 10 is the stratum
    #: chrony's `local` directive uses for "my own clock, vouched for by nobody upstream";
    #: the guest has no other source, so it follows the host either way.
    stratum: int = 10
    #: reference ID: for stratum >= 2 an IPv4 address; 127.127.1.1 is the classic "local clock"
    refid: str = "127.127.1.1"
    #: answer LI=3, stratum 0 (chrony's way) while the host kernel says its clock is unsynchronised.
    #: Off by default: the guest must follow the host even when the host is off real time.
    report_unsync: bool = False

    # -- the per-guest rate limit (chrony's `ratelimit`; off by default, as in chrony)
    #: limit the requests each guest (MAC + IPv4 address) gets answered
    ratelimit: bool = False
    #: log2 of the seconds per request answered on average (3: one per 8 s)
    ratelimit_interval: int = 3
    #: requests answered at once before the limit bites
    ratelimit_burst: int = 8
    #: one in 2^leak requests over the limit is answered anyway (2: one in 4)
    ratelimit_leak: int = 2
    #: tell a guest over the limit with a Kiss-o'-Death RATE, at most once per interval
    ratelimit_kod: bool = False

    def __post_init__(self) -> None:
        if self.upstream is not None:
            host, port = parse_host_port(self.upstream, what="upstream")
            if port == 0:
                raise ConfigError(f"upstream {self.upstream}: port 0 is not a server port")
            if not ipaddress.IPv4Address(host).is_loopback and not self.allow_remote_upstream:
                raise ConfigError(
                    f"upstream {self.upstream} is not on loopback and by default no traffic leaves this machine; "
                    "use a 127.x.x.x server or pass --allow-remote-upstream")
        if self.flow_idle_timeout <= 0:
            raise ConfigError(f"flow_idle_timeout {self.flow_idle_timeout}: must be above 0 seconds")
        if self.max_flows < 4:
            raise ConfigError(f"max_flows {self.max_flows}: allow at least 4 flows")
        if not 0 <= self.max_in_flight <= 65535:
            raise ConfigError(f"max_in_flight {self.max_in_flight}: give 1 to 65535 requests (0: no cap)")
        if not isinstance(self.residence_correction, bool):
            raise ConfigError(f"residence_correction {self.residence_correction!r}: give true or false")
        if self.responder not in ("process", "thread"):
            raise ConfigError(f"responder {self.responder!r}: give \"process\" (its own process) or \"thread\" (the gateway's)")
        host, _ = parse_host_port(self.listen, what="responder listen address")
        if not ipaddress.IPv4Address(host).is_loopback:
            raise ConfigError(f"responder listen address {self.listen} is not on loopback; the responder serves this host only (use 127.0.0.1:PORT)")
        if not -4 <= self.ratelimit_interval <= 12:
            raise ConfigError(f"ratelimit_interval {self.ratelimit_interval}: give -4 to 12 (log2 seconds; 3 = 8 s)")
        if not 1 <= self.ratelimit_burst <= 255:
            raise ConfigError(f"ratelimit_burst {self.ratelimit_burst}: give 1 to 255")
        if not 0 <= self.ratelimit_leak <= 4:
            raise ConfigError(f"ratelimit_leak {self.ratelimit_leak}: give 0 to 4 (one in 2^leak answered anyway)")
        if not 1 <= self.stratum <= 15:
            raise ConfigError(f"stratum {self.stratum}: a synchronised server announces 1 to 15")
        try:
            parse_ipv4(self.refid)
        except ValueError:
            if not (1 <= len(self.refid) <= 4 and self.refid.isascii()):
                raise ConfigError(f"refid {self.refid!r}: give an IPv4 address or up to 4 ASCII characters") from None
