"""Transports: the ways a VM helper hands hostclock a guest's Ethernet frames.

`TRANSPORTS` maps each command-line flag to how it is described and built, so
the CLI and the embedding API share one list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.core.config import GatewayConfig
from gateway.edges.transports.base import FrameHandler, GuestLink, IdentifiesGuests, Transport, TransportError

__all__ = ["TRANSPORTS", "TransportKind", "make_transport", "FrameHandler", "GuestLink", "Transport",
           "TransportError", "IdentifiesGuests"]


@dataclass(frozen=True)
class TransportKind:
    flag: str  # the CLI flag, e.g. "--tap"
    metavar: str  # what the flag takes, or "" for none (then the argument is "")
    help: str
    build: Callable[[str, GatewayConfig], Transport]
    #: the transport's frames travel on stdout, so the ready line goes to stderr
    uses_stdout: bool = False


def _tap(name: str, gateway: GatewayConfig) -> Transport:
    from gateway.edges.transports.tap import TapTransport
    return TapTransport(name)


def _qemu_stream(path: str, gateway: GatewayConfig) -> Transport:
    from gateway.edges.transports.qemu_stream import QemuStreamTransport
    return QemuStreamTransport(path)


def _qemu_socket(address: str, gateway: GatewayConfig) -> Transport:
    from gateway.edges.transports.qemu_socket import QemuSocketTransport
    return QemuSocketTransport(address)


def _qemu_dgram(path: str, gateway: GatewayConfig) -> Transport:
    from gateway.edges.transports.qemu_dgram import QemuDgramTransport
    return QemuDgramTransport(path)


def _vmnet(path: str, gateway: GatewayConfig) -> Transport:
    from gateway.edges.transports.vmnet import VmnetTransport
    return VmnetTransport(path, mtu=gateway.mtu)


def _bess(path: str, gateway: GatewayConfig) -> Transport:
    from gateway.edges.transports.bess import BessTransport
    return BessTransport(path)


def _vfkit(path: str, gateway: GatewayConfig) -> Transport:
    from gateway.edges.transports.vfkit import VfkitTransport
    return VfkitTransport(path)


def _stdio(argument: str, gateway: GatewayConfig) -> Transport:
    from gateway.edges.transports.stdio import StdioTransport
    return StdioTransport()


TRANSPORTS: dict[str, TransportKind] = {kind.flag: kind for kind in (
    TransportKind("--tap", "NAME", "create TAP device NAME; its far side (a namespace, bridge or VM) is the guest", _tap),
    TransportKind("--qemu-stream", "PATH",
                  "listen on Unix socket PATH for QEMU -netdev stream,server=off,addr.type=unix,addr.path=PATH "
                  "(u32 big-endian length before each frame)", _qemu_stream),
    TransportKind("--qemu-socket", "127.0.0.1:PORT",
                  "listen on loopback TCP port PORT for QEMU -netdev socket,connect=127.0.0.1:PORT (or -netdev "
                  "stream,server=off,addr.type=inet,...); u32 big-endian length before each frame; loopback only",
                  _qemu_socket),
    TransportKind("--qemu-dgram", "PATH",
                  "bind Unix datagram socket PATH for QEMU -netdev dgram,local.type=unix,local.path=A,"
                  "remote.type=unix,remote.path=PATH (one frame per datagram; replies go to A)", _qemu_dgram),
    TransportKind("--vmnet", "PATH",
                  "listen on Unix socket PATH for hyperkit/vpnkit vmnet clients (handshake, then u16 "
                  "little-endian length before each frame); the guest's MAC follows from its UUID", _vmnet),
    TransportKind("--bess", "PATH",
                  "listen on Unix SOCK_SEQPACKET socket PATH, one frame per packet (gvisor-tap-vsock bess)", _bess),
    TransportKind("--vfkit", "PATH",
                  "bind Unix datagram socket PATH for vfkit virtio-net,unixSocketPath=PATH "
                  "(one frame per datagram)", _vfkit),
    TransportKind("--stdio", "",
                  "frames on stdin/stdout, u16 little-endian length before each (for a parent process "
                  "that spawns hostclock); logs and the ready line go to stderr", _stdio, uses_stdout=True),
)}


def make_transport(flag: str, argument: str, gateway: GatewayConfig | None = None) -> Transport:
    """Build the transport for a CLI `flag` and its argument; `gateway` gives the link's MTU."""
    kind = TRANSPORTS.get(flag)
    if kind is None:
        raise TransportError(f"unknown transport {flag!r}: choose one of {', '.join(TRANSPORTS)}")
    return kind.build(argument, gateway if gateway is not None else GatewayConfig())
