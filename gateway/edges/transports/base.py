"""What a transport is: something that carries a guest's raw Ethernet frames.

A transport owns its sockets or device and runs as a trio task. For every
frame a guest sends it calls ``on_frame(frame, link, read_ns)``, where `link` is the
`GuestLink` that frame arrived on and `read_ns` when it was read (``time.monotonic_ns()``
right after the read that delivered it: the start of the gateway's residence time,
`plugins.ntp.residence`); the runtime answers through that link, and
sends a later reply (an upstream NTP answer) through the link its request came
in on. One transport may carry several guests at once (one link per
connection), or one (a TAP device).

Every transport counts what it drops (a frame its guest sent that never
reached `on_frame`, a frame for the guest that could not be sent) in its
`drops`, which its links share, so the runtime reports them with its own.

A transport that knows who its guests are (vmnet: the server assigns each
guest's MAC) also implements `IdentifiesGuests`: the runtime registers hooks
with `add_guest_hooks` before `run`, to hold and release per-guest state (a
vmnet guest's preferred DHCP address).

A transport whose kernel can drop, before it queues them, the frames the stack
would only drop (a TAP, `gateway.core.kernel_filter`) implements
`FiltersInKernel`: the runtime hands it the stack's program before `run`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import trio

from gateway.core.kernel_filter import Instruction

__all__ = ["GuestLink", "Transport", "FrameHandler", "TransportError", "IdentifiesGuests", "FiltersInKernel",
           "GuestAttachedHook", "GuestDetachedHook"]


class TransportError(Exception):
    """A transport cannot start (device or socket unavailable); the message is one line naming the fix."""


class GuestLink(Protocol):
    """One attached guest link."""

    #: for logs: "tap hc0", "qemu-stream /run/hc.sock #3"
    description: str

    @property
    def is_open(self) -> bool: ...

    def send_frame(self, frame: bytes) -> None:
        """Queue one frame to the guest. Never blocks: a congested link drops (and counts) instead."""
        ...


#: on_frame(frame, link, read_ns): an embedder's transport may leave out read_ns (the runtime reads the clock)
FrameHandler = Callable[[bytes, GuestLink, int], None]
#: called with a guest's MAC and its preferred IPv4 address (4 bytes, or None) before the guest is
#: accepted; returns None to accept it, or a reason (one line) to refuse it
GuestAttachedHook = Callable[[bytes, "bytes | None"], "str | None"]
#: called with the MAC of a guest that was accepted, once it has gone (its last link closed)
GuestDetachedHook = Callable[[bytes], None]


class Transport(Protocol):
    #: for logs and the ready line: "tap hc0", "qemu-stream /run/hc.sock"
    description: str
    #: frames dropped by the transport and its links, by reason ("tap: device queue full")
    drops: Counter[str]

    async def run(self, on_frame: FrameHandler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; `task_status.started()` once guests can attach.

        Raise `TransportError` before `started()` if the transport cannot start.
        """
        ...


@runtime_checkable
class IdentifiesGuests(Protocol):
    """A transport that knows each guest's identity (its MAC) as it attaches and detaches."""

    def add_guest_hooks(self, on_attached: GuestAttachedHook | None = None,
                        on_detached: GuestDetachedHook | None = None) -> None:
        """Call `on_attached(mac, preferred_ip)` as each guest attaches (a returned reason refuses
        the guest) and `on_detached(mac)` once an accepted guest is gone. Call before `run`.

        Hooks added earlier run first; when a later one refuses a guest, the `on_detached` of
        those that accepted it is called, so that what they hold for it is released.
        """
        ...


@runtime_checkable
class FiltersInKernel(Protocol):
    """A transport whose kernel runs a classic BPF program on each guest frame before queueing it."""

    def filter_in_kernel(self, program: Sequence[Instruction]) -> None:
        """Attach `program` when `run` opens the device (frames it returns 0 for never reach `on_frame`)."""
        ...
