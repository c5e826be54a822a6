"""The `hostclock` command.

    hostclock run --tap hc0                      gateway + embedded SNTP responder on a new TAP
    hostclock run --qemu-stream /tmp/hc.sock     ... for QEMU -netdev stream
    hostclock run --qemu-socket 127.0.0.1:5555   ... for QEMU -netdev socket,connect=127.0.0.1:5555 (TCP)
    hostclock run --tap hc0 --upstream 127.0.0.1:123   forward to an existing server on the host
    hostclock serve --listen 127.0.0.1:1123      only the SNTP responder
    hostclock run --tap hc0 --pcap live.pcap     ... recording the guest's link (both directions)
    hostclock run --tap hc0 --watch-guest-clock=5 --guest-clock-log clocks.csv
                                                 ... reading each guest's clock every 5 s, one CSV row each
    hostclock replay guest.pcap --out out.pcap   replay a capture through the gateway (no network)
    hostclock demo --guest netns                 the demo: a guest on the gateway, its clock shown live

A configuration or start-up problem ends with one line on stderr and exit
status 2 (bad configuration) or 1 (could not start), never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

import trio

from gateway.app.config import Config, ConfigError
from gateway.app.log_output import start_log_output
from gateway.core.failures import ServingFailed
from gateway.core.config import DEFAULT_WATCH_INTERVAL
from gateway.app.plugin_registry import available_plugins, installed_plugins
from gateway.edges.transports import TRANSPORTS, TransportError, make_transport

__all__ = ["main"]

log = logging.getLogger("hostclock")

EXIT_START_FAILED = 1
EXIT_BAD_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    # written by a thread of its own: a stderr nobody reads must not stop the gateway (log_output.py)
    output = start_log_output(getattr(logging, args.log_level.upper()),
                              "hostclock: %(levelname)s %(message)s" if args.log_level == "debug" else "hostclock: %(message)s")
    try:
        config = _config_from_args(args)
        return trio.run(args.command, args, config)
    except BaseException as e:
        failure = _startup_failure(e)
        if failure is None:
            raise
        if output is not None:
            output.stop()  # the log's last lines before the error's
            output = None
        print(f"hostclock: error: {failure}", file=sys.stderr)
        return EXIT_BAD_CONFIG if isinstance(failure, ConfigError) else EXIT_START_FAILED
    finally:
        if output is not None:
            output.stop()


def _startup_failure(e: BaseException) -> Exception | None:
    """The configuration or start-up error behind `e`, found inside trio's exception groups too."""
    from gateway.app.demo.errors import DemoFailed

    if isinstance(e, (ConfigError, TransportError, StartupError, DemoFailed, ServingFailed)):
        return e
    if isinstance(e, BaseExceptionGroup):
        for inner in e.exceptions:
            found = _startup_failure(inner)
            if found is not None:
                return found
    return None


class StartupError(Exception):
    """Something the gateway needs at start-up is unavailable (a port in use, ...)."""


# -- commands -----------------------------------------------------------------------------

async def _run(args: argparse.Namespace, config: Config) -> int:
    from gateway.app.runtime import Gateway

    flag, argument = args.transport
    transport = make_transport(flag, argument, config.gateway)
    gateway = Gateway(config, transport, plugins=args.plugins or (), pcap=args.pcap,
                      guest_clock_log=args.guest_clock_log)
    # a transport whose frames use stdout (--stdio) must not get the ready line there;
    # one that can end by itself (--stdio: the parent closed stdin) ends the run
    return await _serve_until_signalled(gateway.run, ready_to=sys.stderr if TRANSPORTS[flag].uses_stdout else sys.stdout,
                                        finished=getattr(transport, "finished", None))


async def _replay(args: argparse.Namespace, config: Config) -> int:
    from gateway.replay.command import run_replay

    return run_replay(args, config)


async def _demo(args: argparse.Namespace, config: Config) -> int:
    from gateway.app.demo.command import run_demo

    return await run_demo(args, config)


async def _list_plugins(args: argparse.Namespace, config: Config) -> int:
    for entry in installed_plugins().values():
        kind = "built in, on unless its settings turn it off" if entry.builtin else "run with --plugin"
        print(f"{entry.name:12} {entry.target}  ({kind}; from {entry.distribution or 'unknown'})")
    return 0


async def _serve(args: argparse.Namespace, config: Config) -> int:
    """Run only the host servers the built-in plugins provide (the ntp plugin's SNTP responder)."""
    from gateway.app.assembly import assemble

    servers = [upstream.host_server(user=None) for upstream in assemble(config).upstreams.values()
               if upstream.host_server is not None]
    if not servers:
        raise ConfigError("no plugin provides a host server to serve (is [ntp] upstream set?)")

    async def run(*, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            listening = [await nursery.start(server.run) for server in servers]
            task_status.started("hostclock: SNTP responder serving the host clock on "
                                + ", ".join(f"{host}:{port}" for host, port in listening))

    return await _serve_until_signalled(run)


async def _serve_until_signalled(run: Any, *, ready_to: Any = None, finished: trio.Event | None = None) -> int:
    """Start `run`, print its ready line, serve until SIGINT or SIGTERM (or `finished`), then shut down cleanly."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            try:
                ready_line = await nursery.start(run)
            except BaseException as e:
                cause = _os_error(e)
                if cause is None:
                    raise
                raise StartupError(_describe_os_error(cause)) from None
            print(ready_line, file=ready_to or sys.stdout, flush=True)
            if finished is not None:
                async def stop_when_finished() -> None:
                    await finished.wait()
                    log.info("the transport has finished, shutting down")
                    nursery.cancel_scope.cancel()
                nursery.start_soon(stop_when_finished)
            async for signum in signals:
                log.info("%s received, shutting down", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    return 0


def _os_error(e: BaseException) -> OSError | None:
    if isinstance(e, OSError):
        return e
    if isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        return _os_error(e.exceptions[0])
    return None


def _describe_os_error(e: OSError) -> str:
    where = f" {e.filename}" if e.filename else ""
    return f"cannot start{where}: {e.strerror or e}"


# -- arguments ------------------------------------------------------------------------------

def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hostclock",
        description="A userspace virtual-network gateway that gives a VM guest its host's clock.")
    commands = parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the gateway on a transport, with the SNTP responder",
                              description="Run the gateway: answer ARP and ping for it, and NTP on "
                                          "gateway:123 from the host clock.")
    transports = run.add_mutually_exclusive_group(required=True)
    for kind in TRANSPORTS.values():
        if kind.metavar:
            transports.add_argument(kind.flag, metavar=kind.metavar, help=kind.help, dest="transport",
                                    type=lambda value, flag=kind.flag: (flag, value))
        else:  # a flag without an argument, e.g. --stdio
            transports.add_argument(kind.flag, help=kind.help, dest="transport", action="store_const",
                                    const=(kind.flag, ""))
    run.add_argument("--plugin", metavar="NAME", dest="plugins", action="append",
                     help="also run the installed third-party plugin NAME (repeatable; see `hostclock plugins`)")
    run.add_argument("--pcap", metavar="FILE",
                     help="record the guest's link, both directions, to FILE (nanosecond pcap)")
    _add_config_arguments(run)
    _add_gateway_arguments(run)
    _add_guest_clock_arguments(run)
    _add_plugin_arguments(run, "run")
    access = run.add_argument_group("access (who can get in; table [access])")
    access.add_argument("--socket-mode", metavar="OCTAL",
                        help="permission bits of the transport's socket file (0600: only its owner may connect)")
    access.add_argument("--socket-group", metavar="GROUP",
                        help="group of the transport's socket file (with --socket-mode 0660, the group may connect)")
    access.add_argument("--user", metavar="NAME",
                        help="after opening the TAP device and sockets as root, run as this user")
    access.add_argument("--max-guests", metavar="N", type=int,
                        help="connections a listening transport serves at once; more are refused (64)")
    run.set_defaults(command=_run)

    serve = commands.add_parser("serve", help="run only the SNTP responder on loopback",
                                description="Serve the host clock over SNTP (RFC 4330 server mode) on loopback.")
    _add_config_arguments(serve)
    _add_plugin_arguments(serve, "serve")
    serve.set_defaults(command=_serve)

    replay = commands.add_parser("replay", help="replay a capture of a guest's link through the gateway (no network)",
                                 description="Feed the guest's frames of a pcap/pcapng capture to the gateway, "
                                             "answer NTP with the responder, write what the gateway sends and "
                                             "summarise drops and NTP exchanges.")
    from gateway.replay.command import add_replay_arguments

    add_replay_arguments(replay)
    _add_config_arguments(replay)
    _add_gateway_arguments(replay)
    _add_plugin_arguments(replay, "replay")
    replay.set_defaults(command=_replay)

    demo = commands.add_parser("demo", help="the standalone demo: a guest whose clock you watch being kept on the host's",
                               description="Start the gateway in-process and a guest on it (a VM under QEMU whose "
                                           "clock drifts, or a network namespace with query-mode NTP clients), show "
                                           "the guest's clock offset and the gateway's figures live, and write "
                                           "DIR/demo.csv and DIR/demo.png when it stops (q, Ctrl-C, --duration).")
    from gateway.app.demo.arguments import add_demo_arguments

    add_demo_arguments(demo)
    _add_config_arguments(demo)
    demo.set_defaults(command=_demo)

    listing = commands.add_parser("plugins", help="list the plugins hostclock can run",
                                  description="List built-in plugins and those installed as entry points "
                                              "in the group 'hostclock.plugins'.")
    listing.set_defaults(command=_list_plugins, config=None, log_level="warning")
    return parser


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML file: [gateway], [access] and one table per plugin ([ntp], [dhcp], ...)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))


def _add_gateway_arguments(parser: argparse.ArgumentParser) -> None:
    gateway = parser.add_argument_group("gateway (defaults: vpnkit's)")
    gateway.add_argument("--gateway-ip", metavar="IP", help="gateway address (192.168.65.1)")
    gateway.add_argument("--gateway-mac", metavar="MAC", help="gateway MAC (f6:16:36:bc:f9:c6)")
    gateway.add_argument("--prefix-len", metavar="N", type=int, help="guest subnet prefix length (24)")
    gateway.add_argument("--mtu", metavar="N", type=int, help="link MTU (1500)")
    gateway.add_argument("--host-alias", metavar="IP", dest="host_alias_ip",
                         help="a second gateway address, as vpnkit's host alias 192.168.65.2 (off)")
    gateway.add_argument("--unbound-udp", choices=("port-unreachable", "drop"),
                         help="answer UDP to ports with no service with ICMP port unreachable (default) or drop it")
    gateway.add_argument("--no-kernel-filter", dest="kernel_filter", action="store_false", default=None,
                         help="let every frame of a TAP's guest reach the gateway (and its drop counts); by "
                              "default the kernel drops, before queueing them, frames the gateway would only drop")


def _add_guest_clock_arguments(parser: argparse.ArgumentParser) -> None:
    watch = parser.add_argument_group("watching each guest's clock (ICMP timestamps, the guest's own NTP requests)")
    watch.add_argument("--watch-guest-clock", metavar="SECONDS", nargs="?", type=float,
                       const=DEFAULT_WATCH_INTERVAL, dest="guest_clock_interval",
                       help="read each guest's clock every SECONDS (default when given without a value: "
                            f"{DEFAULT_WATCH_INTERVAL:g}); off unless given ([guest_clock] interval; 0: off)")
    watch.add_argument("--guest-clock-threshold", metavar="SECONDS", type=float, dest="guest_clock_threshold",
                       help="log a guest whose clock is further than this from the host's, and when it is "
                            "back within half of it (0.1)")
    watch.add_argument("--guest-clock-log", metavar="FILE",
                       help="write one CSV row per reading to FILE: time_unix_s,guest_ip,guest_mac,offset_s,"
                            "error_s,source (offset_s: guest minus host); watches at the default interval "
                            "unless told otherwise")


def _add_plugin_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Each built-in plugin's flags for `command`, in a group of its own."""
    for plugin in available_plugins().values():
        if plugin.add_arguments is not None:
            plugin.add_arguments(parser.add_argument_group(f"{plugin.name}: {plugin.summary}"), command)


_GATEWAY_FLAGS = ("gateway_ip", "gateway_mac", "prefix_len", "mtu", "host_alias_ip", "unbound_udp", "kernel_filter")
_ACCESS_FLAGS = ("socket_mode", "socket_group", "user", "max_guests")
_COMMAND_NAMES = {"_run": "run", "_serve": "serve", "_replay": "replay"}


def _config_from_args(args: argparse.Namespace) -> Config:
    """Defaults, then the TOML file, then flags: each later source wins."""
    config = Config.from_toml(args.config) if args.config else Config()
    command = _COMMAND_NAMES.get(getattr(args.command, "__name__", ""), "")
    overrides: dict[str, dict[str, Any]] = {}
    gateway = {name: getattr(args, name) for name in _GATEWAY_FLAGS if getattr(args, name, None) is not None}
    if gateway:
        overrides["gateway"] = gateway
    access = {name: getattr(args, name) for name in _ACCESS_FLAGS if getattr(args, name, None) is not None}
    if access:
        overrides["access"] = access
    guest_clock: dict[str, Any] = {}
    if getattr(args, "guest_clock_interval", None) is not None:
        guest_clock["interval"] = args.guest_clock_interval
    elif getattr(args, "guest_clock_log", None) is not None and not config.guest_clock.enabled:
        guest_clock["interval"] = DEFAULT_WATCH_INTERVAL  # a log of readings asks for readings
    if getattr(args, "guest_clock_threshold", None) is not None:
        guest_clock["threshold"] = args.guest_clock_threshold
    if guest_clock:
        overrides["guest_clock"] = guest_clock
    for plugin in available_plugins().values():
        if plugin.table_from_arguments is not None and command:
            table = dict(plugin.table_from_arguments(args, command, config.settings_for(plugin)))
            if table:
                overrides[plugin.name] = table
    return config.replace(**overrides)
