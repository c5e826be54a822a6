"""What a transport is: something that carries a guest's raw Ethernet frames.

A transport owns its sockets or device and runs as a trio task. For every
frame a guest sends it calls ``on_frame(frame, link)``, where `link` is the
`GuestLink` that frame arrived on; the runtime answers through that link (or,
for later replies such as an upstream NTP answer, through the link it learned
the guest's MAC on). One transport may carry several guests at once (one link
per connection), or one (a TAP device).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import trio

__all__ = ["GuestLink", "Transport", "FrameHandler", "TransportError"]


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


FrameHandler = Callable[[bytes, GuestLink], None]


class Transport(Protocol):
    #: for logs and the ready line: "tap hc0", "qemu-stream /run/hc.sock"
    description: str

    async def run(self, on_frame: FrameHandler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; `task_status.started()` once guests can attach.

        Raise `TransportError` before `started()` if the transport cannot start.
        """
        ...
