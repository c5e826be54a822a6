"""Transports: the ways a VM helper hands hostclock a guest's Ethernet frames.

`TRANSPORTS` maps each command-line flag to how it is described and built, so
the CLI and the embedding API share one list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .base import FrameHandler, GuestLink, Transport, TransportError

__all__ = ["TRANSPORTS", "TransportKind", "make_transport", "FrameHandler", "GuestLink", "Transport",
           "TransportError"]


@dataclass(frozen=True)
class TransportKind:
    flag: str  # the CLI flag, e.g. "--tap"
    metavar: str  # what the flag takes, or "" for none
    help: str
    build: Callable[[str], Transport]


def _tap(name: str) -> Transport:
    from .tap import TapTransport
    return TapTransport(name)


def _qemu_stream(path: str) -> Transport:
    from .qemu_stream import QemuStreamTransport
    return QemuStreamTransport(path)


TRANSPORTS: dict[str, TransportKind] = {kind.flag: kind for kind in (
    TransportKind("--tap", "NAME", "create TAP device NAME; its far side (a namespace, bridge or VM) is the guest", _tap),
    TransportKind("--qemu-stream", "PATH",
                  "listen on Unix socket PATH for QEMU -netdev stream,server=off,addr.type=unix,addr.path=PATH "
                  "(u32 big-endian length before each frame)", _qemu_stream),
)}


def make_transport(flag: str, argument: str) -> Transport:
    kind = TRANSPORTS.get(flag)
    if kind is None:
        raise TransportError(f"unknown transport {flag!r}: choose one of {', '.join(TRANSPORTS)}")
    return kind.build(argument)
