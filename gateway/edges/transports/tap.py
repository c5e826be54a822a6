"""A Linux TAP device: one read() is one frame from the guest side, one write() one frame to it.

The device is created non-persistent (open /dev/net/tun, ioctl TUNSETIFF with
IFF_TAP | IFF_NO_PI), so closing the descriptor removes it, even after it was
moved into another network namespace (`ip link set NAME netns NS`): whatever
sits on the device's far side — a namespace, a bridge, a VM — is the guest.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
from collections import Counter

import trio

from gateway.edges.transports.base import FrameHandler, TransportError

__all__ = ["TapTransport", "open_tap"]

log = logging.getLogger("hostclock.transport.tap")

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
_IFREQ = struct.Struct("16sH22x")  # struct ifreq: ifr_name, ifr_flags, padding to 40 bytes
_MAX_FRAME = 65535 + 14
_READS_PER_WAKEUP = 64  # drain up to this many frames before yielding to other tasks


def open_tap(name: str) -> int:
    """Create TAP device `name` and return its non-blocking descriptor."""
    if not name or len(name.encode()) > 15 or "/" in name or name.strip() != name:
        raise TransportError(f"TAP name {name!r} is not a valid interface name (1-15 characters, no '/' or spaces)")
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TransportError("/dev/net/tun is missing: load the tun module (modprobe tun) or use another transport") from None
    except PermissionError:
        raise TransportError("cannot open /dev/net/tun: creating a TAP device needs root (or CAP_NET_ADMIN)") from None
    try:
        fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(name.encode(), IFF_TAP | IFF_NO_PI))
    except OSError as e:
        os.close(fd)
        if e.errno == errno.EPERM:
            raise TransportError(f"cannot create TAP {name}: needs root (or CAP_NET_ADMIN)") from None
        if e.errno == errno.EBUSY:
            raise TransportError(f"TAP {name} is in use by another process: choose another name") from None
        raise TransportError(f"cannot create TAP {name}: {e.strerror}") from None
    return fd


class TapLink:
    def __init__(self, name: str, fd: int, drops: Counter[str] | None = None) -> None:
        self.description = f"tap {name}"
        self._fd = fd
        #: frames to the guest dropped, by reason (the transport's counter)
        self.drops: Counter[str] = drops if drops is not None else Counter()

    @property
    def is_open(self) -> bool:
        return self._fd >= 0

    def send_frame(self, frame: bytes) -> None:
        try:
            os.write(self._fd, frame)
        except BlockingIOError:
            self.drops["tap: device queue full"] += 1
        except OSError as e:  # EIO while the device is down: nobody is there to receive it
            self.drops[f"tap: write failed ({e.strerror})"] += 1

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            trio.lowlevel.notify_closing(fd)
            os.close(fd)


class TapTransport:
    def __init__(self, name: str) -> None:
        self.name = name
        self.description = f"tap {name}"
        #: frames dropped by the TAP's link, by reason
        self.drops: Counter[str] = Counter()

    async def run(self, on_frame: FrameHandler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        fd = open_tap(self.name)
        link = TapLink(self.name, fd, self.drops)
        log.debug("created TAP %s", self.name)
        try:
            task_status.started()
            while True:
                await trio.lowlevel.wait_readable(fd)
                for _ in range(_READS_PER_WAKEUP):
                    try:
                        frame = os.read(fd, _MAX_FRAME)
                    except BlockingIOError:
                        break
                    except OSError as e:
                        # EBADFD/EIO when the device goes away under us
                        raise TransportError(f"TAP {self.name} failed: {e.strerror}") from None
                    on_frame(frame, link)
        finally:
            link.close()
            log.debug("removed TAP %s", self.name)
