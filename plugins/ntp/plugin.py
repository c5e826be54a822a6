"""The ``ntp`` plugin (entry point ``hostclock.plugins``): the time service and where it forwards to.

The gateway forwards guest NTP to `[ntp] upstream` when set (an existing server
on the host), otherwise to the embedded SNTP responder, which the gateway starts
on loopback first: in a process of its own (`plugins.ntp.responder_process`, the
default) or in a thread of the gateway's (`[ntp] responder = "thread"`:
`plugins.ntp.server.SntpServer`); each is imported only then. A capture replay answers in-process with
`plugins.ntp.replay_answerer.EmbeddedResponder`.
"""

from __future__ import annotations

from typing import Any

from gateway.core.config import GatewayConfig, parse_host_port
from gateway.core.flows import FlowTable
from gateway.core.plugin import Contribution, HostServer, Plugin, Upstream

from plugins.ntp.config import DEFAULT_RESPONDER_LISTEN, NtpConfig
from plugins.ntp.exchange import exchange_times, reply_key, request_key
from plugins.ntp.in_flight import InFlight
from plugins.ntp.rate_limit import RateLimit
from plugins.ntp.replay_answerer import EmbeddedResponder
from plugins.ntp.time_service import NTP_PORT, TimeService

__all__ = ["PLUGIN"]

#: the port `hostclock serve` listens on unless told otherwise: it is the host's SNTP server then
SERVE_DEFAULT_LISTEN = "127.0.0.1:123"


def _contribute(settings: NtpConfig, gateway: GatewayConfig) -> Contribution:
    rate_limit = RateLimit(interval=settings.ratelimit_interval, burst=settings.ratelimit_burst,
                           leak=settings.ratelimit_leak, kod=settings.ratelimit_kod) if settings.ratelimit else None
    in_flight = InFlight(settings.max_in_flight) if settings.max_in_flight else None
    service = TimeService(FlowTable(idle_timeout=settings.flow_idle_timeout, max_flows=settings.max_flows),
                          rate_limit, in_flight)
    common: dict[str, Any] = dict(port=NTP_PORT, replay_answerer=lambda: EmbeddedResponder(settings),
                                  request_key=request_key, reply_key=reply_key, exchange_times=exchange_times,
                                  correct_reply=service.correct_reply if settings.residence_correction else None)
    if settings.upstream is not None:
        upstream = Upstream(address=parse_host_port(settings.upstream, what="upstream"),
                            description="SNTP server", **common)
    else:
        upstream = Upstream(host_server=lambda *, user=None: _embedded_responder(settings, user),
                            description="embedded SNTP responder", **common)
    return Contribution(services=(service,), upstreams=(upstream,))


def _embedded_responder(settings: NtpConfig, user: str | None) -> HostServer:
    if settings.responder == "process":
        from plugins.ntp.responder_process import ResponderProcess

        return ResponderProcess(settings, user=user)
    from plugins.ntp.server import SntpServer

    return SntpServer(settings)  # in this process, which switches to `user` itself


def _add_arguments(group: Any, command: str) -> None:
    if command == "run":
        group.add_argument("--upstream", metavar="HOST:PORT",
                           help="forward guest NTP to this server on the host instead of the embedded responder")
        group.add_argument("--allow-remote-upstream", action="store_const", const=True,
                           help="permit an --upstream that is not on loopback (guest NTP then leaves this machine)")
        group.add_argument("--responder", choices=("process", "thread"),
                           help="run the embedded responder in a process of its own (the default: a busy gateway "
                                "cannot delay its replies) or in a thread of the gateway's")
        group.add_argument("--no-residence-correction", dest="residence_correction", action="store_const",
                           const=False, help="pass NTP replies as the server sent them, without taking out the "
                                             "time the exchange spent inside the gateway (on by default)")
    if command == "serve":
        group.add_argument("--listen", metavar="HOST:PORT",
                           help=f"loopback address and port (default {SERVE_DEFAULT_LISTEN})")
    group.add_argument("--stratum", type=int, metavar="N", help="stratum announced (10, as chrony's 'local')")
    group.add_argument("--refid", metavar="ID", help="reference ID: an IPv4 address or up to 4 characters")
    group.add_argument("--report-unsync", action="store_const", const=True,
                       help="answer LI=3, stratum 0 while the host kernel says its clock is unsynchronised")


def _table_from_arguments(args: Any, command: str, current: NtpConfig) -> dict[str, Any]:
    names = ["stratum", "refid", "report_unsync"]
    if command == "run":
        names += ["upstream", "allow_remote_upstream", "residence_correction", "responder"]
    if command == "serve":
        names.append("listen")
    table = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if command == "serve" and "listen" not in table and current.listen == DEFAULT_RESPONDER_LISTEN:
        table["listen"] = SERVE_DEFAULT_LISTEN  # `serve` is the host's SNTP server: the standard port
    if command == "serve":
        table["responder"] = "thread"  # `serve` is the responder's own process already
    return table


PLUGIN = Plugin(
    name="ntp",
    contribute=_contribute,
    settings=NtpConfig,
    legacy_tables=("time", "responder"),
    add_arguments=_add_arguments,
    table_from_arguments=_table_from_arguments,
    summary="the time responder: UDP/123 on the gateway, answered from the host clock (SNTP on loopback)",
)
