"""The ``dhcp`` plugin (entry point ``hostclock.plugins``): the DHCP server on the gateway, on by default."""

from __future__ import annotations

from typing import Any

from gateway.core.config import GatewayConfig
from gateway.core.plugin import Contribution, Plugin

from plugins.dhcp.config import DhcpConfig
from plugins.dhcp.service import DhcpService

__all__ = ["PLUGIN"]


def _contribute(settings: DhcpConfig, gateway: GatewayConfig) -> Contribution | None:
    if not settings.enabled:
        return None
    return Contribution(services=(DhcpService(gateway, settings),))


def _add_arguments(group: Any, command: str) -> None:
    if command != "run":
        return
    group.add_argument("--no-dhcp", dest="dhcp_enabled", action="store_const", const=False,
                       help="do not answer DHCP (the guest configures its address by itself)")
    group.add_argument("--dns", metavar="IP", dest="dns_servers", action="append",
                       help="hand the guest this DNS server (option 6; repeatable). None by default: "
                            "nothing on the gateway answers DNS")


def _table_from_arguments(args: Any, command: str, current: DhcpConfig) -> dict[str, Any]:
    table = {}
    if getattr(args, "dhcp_enabled", None) is not None:
        table["enabled"] = args.dhcp_enabled
    if getattr(args, "dns_servers", None) is not None:
        table["dns_servers"] = args.dns_servers
    return table


PLUGIN = Plugin(
    name="dhcp",
    contribute=_contribute,
    settings=DhcpConfig,
    add_arguments=_add_arguments,
    table_from_arguments=_table_from_arguments,
    summary="DHCP server (RFC 2131): an address; router and NTP server (option 42) = the gateway",
)
