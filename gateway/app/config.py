"""hostclock's configuration: one immutable object, vpnkit's defaults, TOML and CLI overrides.

Defaults are vpnkit's (which Docker Desktop used): gateway 192.168.65.1 with
MAC f6:16:36:bc:f9:c6 on a /24, MTU 1500. Validation happens at construction,
so a bad address stops the program at start-up with one line naming the fix.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.app.access import AccessConfig
from gateway.core.addresses import parse_ipv4
from gateway.core.config import ConfigError, GatewayConfig, parse_host_port

__all__ = ["AccessConfig", "ConfigError", "GatewayConfig", "TimeConfig", "DhcpConfig", "ResponderConfig", "Config",
           "parse_host_port", "DEFAULT_RESPONDER_LISTEN"]

DEFAULT_RESPONDER_LISTEN = "127.0.0.1:0"  # an ephemeral loopback port for the embedded responder


@dataclass(frozen=True)
class ResponderConfig:
    """The SNTP responder that serves the host clock on loopback (RFC 4330 server mode)."""

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

    def __post_init__(self) -> None:
        host, _ = parse_host_port(self.listen, what="responder listen address")
        if not ipaddress.IPv4Address(host).is_loopback:
            raise ConfigError(f"responder listen address {self.listen} is not on loopback; the responder serves this host only (use 127.0.0.1:PORT)")
        if not 1 <= self.stratum <= 15:
            raise ConfigError(f"stratum {self.stratum}: a synchronised server announces 1 to 15")
        try:
            parse_ipv4(self.refid)
        except ValueError:
            if not (1 <= len(self.refid) <= 4 and self.refid.isascii()):
                raise ConfigError(f"refid {self.refid!r}: give an IPv4 address or up to 4 ASCII characters") from None


@dataclass(frozen=True)
class TimeConfig:
    """The time plugin: UDP/123 on the gateway, forwarded to an SNTP server on the host."""

    #: "HOST:PORT" of an existing server on the host, or None for the embedded responder
    upstream: str | None = None
    #: permit an upstream off loopback (then guest NTP traffic leaves the machine)
    allow_remote_upstream: bool = False
    #: vpnkit's UDP NAT: a flow idle this long (monotonic seconds) is closed
    flow_idle_timeout: float = 60.0
    #: vpnkit's UDP NAT: at most this many flows; at the limit the oldest quarter is expired
    max_flows: int = 1024

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


_TOML_KINDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _check_toml_type(section_cls: type, section: str, key: str, value: Any, source: str) -> None:
    """ConfigError unless `value` has the kind of the field's annotation (a TOML file can hold
    an array or a table where a string belongs; the sections' checks assume the right kind)."""
    hint = typing.get_type_hints(section_cls).get(key)
    allowed: list[Any] = []
    for option in (typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)):
        if typing.get_origin(option) is typing.Literal:
            allowed.append(str)
        elif typing.get_origin(option) is tuple:
            allowed.append(list)
        elif option in _TOML_KINDS:
            allowed.append(option)
    if not allowed:
        return  # a kind this check does not know: the section checks it
    matches = any(type(value) is bool if kind is bool else
                  (isinstance(value, (int, float)) and type(value) is not bool) if kind is float else
                  (isinstance(value, int) and type(value) is not bool) if kind is int else
                  isinstance(value, kind) for kind in allowed)
    if not matches:
        wanted = " or ".join("an array" if kind is list else _TOML_KINDS[kind] for kind in allowed)
        raise ConfigError(f"{source}: [{section}] {key} = {_toml_kind(value)}: give {wanted}")


def _toml_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (list, dict)):
        return "an array" if isinstance(value, list) else "a table"
    if isinstance(value, float):
        return "a fractional number"
    if isinstance(value, int):
        return "an integer"
    return f"a {type(value).__name__} value" if not isinstance(value, str) else "a string"


@dataclass(frozen=True)
class Config:
    """Everything hostclock needs: the gateway, the time plugin, the responder."""

    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    time: TimeConfig = field(default_factory=TimeConfig)
    responder: ResponderConfig = field(default_factory=ResponderConfig)
    dhcp: DhcpConfig = field(default_factory=DhcpConfig)
    access: AccessConfig = field(default_factory=AccessConfig)

    _SECTIONS = {"gateway": GatewayConfig, "time": TimeConfig, "responder": ResponderConfig, "dhcp": DhcpConfig,
                 "access": AccessConfig}

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, source: str = "configuration") -> "Config":
        """Build from nested dicts ({"gateway": {...}, ...}); unknown keys are errors."""
        sections: dict[str, Any] = {}
        for name, values in data.items():
            section_cls = cls._SECTIONS.get(name)
            if section_cls is None:
                raise ConfigError(f"{source}: unknown section [{name}] (known: {', '.join(cls._SECTIONS)})")
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: [{name}] must be a table")
            known = {f.name for f in dataclasses.fields(section_cls)}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ConfigError(f"{source}: unknown key {unknown[0]!r} in [{name}] (known: {', '.join(sorted(known))})")
            for key, value in values.items():
                _check_toml_type(section_cls, name, key, value, source)
            try:
                sections[name] = section_cls(**values)
            except TypeError as e:
                raise ConfigError(f"{source}: [{name}]: {e}") from None
        return cls(**sections)

    @classmethod
    def from_toml(cls, path: str | Path) -> "Config":
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
        except UnicodeDecodeError as e:  # tomllib decodes the whole file as UTF-8 first (TOML 1.0: "must be UTF-8")
            raise ConfigError(f"config file {path} is not UTF-8 text (byte {e.start}): TOML files must be UTF-8") from None
        return cls.from_mapping(data, source=str(path))

    def replace(self, **sections: dict[str, Any]) -> "Config":
        """A copy with some fields of some sections changed: replace(time={"upstream": ...})."""
        changed = {}
        for name, values in sections.items():
            current = getattr(self, name)
            changed[name] = dataclasses.replace(current, **values) if values else current
        return dataclasses.replace(self, **changed)
