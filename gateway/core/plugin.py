"""What a plugin may contribute to a gateway, and nothing more.

A plugin is found by the composition root (`gateway.app.plugin_registry`)
through the entry-point group ``hostclock.plugins``; the entry point's object is
a `Plugin`. From its own validated configuration table and the gateway's
configuration, the plugin builds a `Contribution`:

* `services` — sans-IO `UdpService`s bound to gateway UDP ports;
* `upstreams` — for each forwarding service (`ForwardingService`), where the
  gateway sends what that service forwards: an existing server on the host
  (`Upstream.address`), or a server the plugin runs on the host's loopback
  (`Upstream.host_server`, started before the gateway serves, e.g. the embedded
  SNTP responder); and an in-process `ReplayAnswerer`, so that a capture replay
  stays in-process and deterministic without the replay tool naming the plugin.

A plugin's configuration is its own: `Plugin.settings` is a frozen dataclass
whose fields are the keys of the plugin's TOML table ``[name]`` (their defaults
its defaults; `__post_init__` validates and raises `ConfigError` with one line
naming the fix). The plugin may also add command-line flags for that table.

This module is sans-IO and imports only the standard library; a plugin's host
server is the one part that does I/O, and is only built when the gateway runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.core.config import GatewayConfig
from gateway.core.flows import Flow
from gateway.core.service import UdpService

__all__ = ["Plugin", "Contribution", "Upstream", "HostServer", "ReplayAnswerer", "ExchangeTimes"]


class HostServer(Protocol):
    """A server a plugin runs on the host's loopback, that its forwarding service forwards to."""

    #: what the server dropped, by reason (read by the gateway's counters; may be updated by a thread)
    drops: Counter[str]

    async def run(self, *, task_status: Any = ...) -> None:
        """Serve until cancelled; `task_status.started((host, port))` once listening."""
        ...


@dataclass(frozen=True, slots=True)
class ExchangeTimes:
    """What a client would read from one request/reply exchange (RFC 5905 §8), Unix ns.

    `t1_ns` is the request's own claim of when it was sent, None if it makes none
    (the replay then checks it is plausible); `t2_ns`/`t3_ns` when the server got
    the request and sent the reply; `detail`, protocol fields worth showing.
    """

    t1_ns: int | None
    t2_ns: int
    t3_ns: int
    detail: Mapping[str, Any] = field(default_factory=dict)


class ReplayAnswerer(Protocol):
    """Answers a forwarding service's requests in-process during a capture replay."""

    #: for the replay's summary
    description: str
    #: requests not answered, by reason
    drops: Counter[str]

    def answer(self, flow: Flow, request: bytes, now_ns: int) -> tuple[bytes | None, int]:
        """The reply to `request` sent on `flow` at `now_ns` (the replay clock), and how many ns later it came."""
        ...

    def flows_closed(self, flows: list[Flow]) -> None:
        """The service closed these flows (release what belongs to them)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Upstream:
    """Where a forwarding service's requests go, and how a replay answers them."""

    #: the forwarding service's gateway UDP port
    port: int
    #: an existing server on the host to forward to, or None to start `host_server`
    address: tuple[str, int] | None = None
    #: builds the server the gateway starts first and forwards to (used when `address` is None):
    #: ``host_server(user=NAME)``, NAME the account the gateway switches to once started (`--user`),
    #: or None; a server that runs a process of its own has that process switch too
    host_server: Callable[..., HostServer] | None = None
    #: builds the in-process answerer `hostclock replay` uses (None: replay needs a real --upstream)
    replay_answerer: Callable[[], ReplayAnswerer] | None = None
    #: the key that pairs a request with its reply (NTP: transmit timestamp = originate), for replay
    request_key: Callable[[bytes], bytes] | None = None
    reply_key: Callable[[bytes], bytes] | None = None
    #: reads T1..T3 from an exchange: ``exchange_times(request, reply, request_ns, replay_now_ns)``, the
    #: two times (Unix ns) near T1 and near T2/T3 respectively (NTP timestamps need them for the era)
    exchange_times: Callable[[bytes, bytes, int, int], ExchangeTimes] | None = None
    #: takes the gateway's own residence time out of a reply, given the request's (Ts - Tr, None if
    #: it was not timed) and the reply's (Tw - Tu), in ns: ``correct_reply(reply, request_ns, reply_ns)``
    #: returns the reply to send (itself when left as it is). It needs `request_key`/`reply_key` to
    #: tie the two. None: replies pass as the server sent them (NTP: `plugins.ntp.residence`)
    correct_reply: Callable[[bytes, int | None, int], bytes] | None = None
    #: one phrase for the ready line: "embedded SNTP responder", "SNTP server"
    description: str = "server"

    def __post_init__(self) -> None:
        if (self.address is None) == (self.host_server is None):
            raise ValueError(f"Upstream for UDP port {self.port}: give exactly one of address and host_server")
        if self.correct_reply is not None and (self.request_key is None or self.reply_key is None):
            raise ValueError(f"Upstream for UDP port {self.port}: correct_reply needs request_key and reply_key")


@dataclass(frozen=True)
class Contribution:
    """What one plugin adds to one gateway."""

    services: tuple[UdpService, ...] = ()
    upstreams: tuple[Upstream, ...] = ()


@dataclass(frozen=True)
class Plugin:
    """A plugin: its name (also its TOML table), its settings, and how it builds its contribution."""

    name: str
    #: builds the contribution from the plugin's settings and the gateway's configuration;
    #: None when its settings turn it off
    contribute: Callable[[Any, GatewayConfig], Contribution | None]
    #: a frozen dataclass: the keys of the ``[name]`` table, with their defaults; None if it has none
    settings: type | None = None
    #: earlier names of the table, still read (merged into ``[name]``; ``[name]`` wins)
    legacy_tables: tuple[str, ...] = ()
    #: adds the plugin's flags to a command's parser: ``add_arguments(group, command)``
    add_arguments: Callable[[Any, str], None] | None = None
    #: the table values the parsed flags set, given the settings so far (defaults and the TOML file):
    #: ``table_from_arguments(namespace, command, settings) -> {key: value}``
    table_from_arguments: Callable[[Any, str, Any], Mapping[str, Any]] | None = None
    #: one line for `hostclock plugins`
    summary: str = ""

    def default_settings(self) -> Any:
        return self.settings() if self.settings is not None else None
