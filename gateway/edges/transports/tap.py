"""A Linux TAP device: one read() is one frame from the guest side, one write() one frame to it.

The device is created non-persistent (open /dev/net/tun, ioctl TUNSETIFF with
IFF_TAP | IFF_NO_PI), so closing the descriptor removes it, even after it was
moved into another network namespace (`ip link set NAME netns NS`): whatever
sits on the device's far side — a namespace, a bridge, a VM — is the guest.

The device is read by a thread of its own, waiting in the kernel (`poll`, the
GIL released), which reads each frame as soon as the kernel wakes it and notes
the time (`read_ns`, where the gateway's residence time starts); it hands the
frames, in batches of what one wake-up found, to the trio task, which runs the
gateway. A frame read by the trio loop itself would wait for a turn of the
loop first, and that wait, before the residence starts, is the one part of an
exchange the residence-time correction cannot take out (bench/README.md has
the measurements). At most `_BATCHES_IN_FLIGHT` batches wait for the task;
beyond that the thread waits too, and the device's own queue fills and drops,
as a NIC's does. Writes to the guest stay on the trio task.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import struct
import threading
from collections import Counter, deque
from time import monotonic_ns

import trio

from gateway.edges.transports.base import FrameHandler, TransportError

__all__ = ["TapTransport", "open_tap"]

log = logging.getLogger("hostclock.transport.tap")

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
_IFREQ = struct.Struct("16sH22x")  # struct ifreq: ifr_name, ifr_flags, padding to 40 bytes
_MAX_FRAME = 65535 + 14
_READS_PER_WAKEUP = 64  # frames read per wake-up of the reading thread: one batch
#: batches read but not yet handled by the trio task; then the reading thread waits
_BATCHES_IN_FLIGHT = 4
#: seconds shutdown waits for the reading thread (woken through a pipe, it returns at once)
_STOP_WAIT = 2.0


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
        reader = _TapReader(self.name, fd)
        try:
            reader.start()
            task_status.started()
            while True:
                await trio.lowlevel.wait_readable(reader.ready_fd)
                for batch in reader.take_batches():
                    for frame, read_ns in batch:
                        on_frame(frame, link, read_ns)
                if reader.failure is not None:
                    raise TransportError(f"TAP {self.name} failed: {reader.failure}")
        finally:
            with trio.CancelScope(shield=True):  # the cancellation that got us here must not cut this short
                stopped = await reader.stop()
            if stopped:
                link.close()
            else:  # never seen: the thread is woken through a pipe; its descriptor is left to process exit
                log.warning("TAP %s: the reading thread did not stop within %.0f s", self.name, _STOP_WAIT)
            log.debug("removed TAP %s", self.name)


class _TapReader:
    """The thread that reads the TAP device: frames and their read times, in batches, for the trio task."""

    def __init__(self, name: str, fd: int) -> None:
        self._name = name
        self._fd = fd
        self._batches: deque[list[tuple[bytes, int]]] = deque()
        self._slots = threading.Semaphore(_BATCHES_IN_FLIGHT)
        #: the thread writes a byte here after each batch; the trio task waits for it to be readable
        self.ready_fd, self._ready_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stop_r, self._stop_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stopping = False
        #: why reading failed (the device went away), once it has
        self.failure: str | None = None
        self._thread = threading.Thread(target=self._read_frames, name=f"hostclock tap {name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def take_batches(self) -> list[list[tuple[bytes, int]]]:
        """The batches read so far (each frees a slot for the thread)."""
        try:
            while os.read(self.ready_fd, 4096):
                pass
        except BlockingIOError:
            pass
        taken = []
        while self._batches:
            taken.append(self._batches.popleft())
            self._slots.release()
        return taken

    def _read_frames(self) -> None:
        fd = self._fd
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        try:
            while True:
                self._slots.acquire()
                if self._stopping:
                    return
                poller.poll()  # in the kernel, the GIL released, until a frame (or the stop pipe)
                woken_ns = monotonic_ns()  # the first frame was queued by now: its read time
                if self._stopping:
                    return
                batch = []
                for _ in range(_READS_PER_WAKEUP):
                    try:
                        frame = os.read(fd, _MAX_FRAME)
                    except BlockingIOError:
                        break
                    batch.append((frame, woken_ns if not batch else monotonic_ns()))
                self._hand_over(batch)
        except OSError as e:  # EBADFD/EIO when the device goes away under us
            self.failure = e.strerror or str(e)
            self._hand_over([])
        except BaseException as e:  # a bug: the trio task reports it
            self.failure = f"reading thread failed: {e!r}"
            self._hand_over([])

    def _hand_over(self, batch: list[tuple[bytes, int]]) -> None:
        self._batches.append(batch)
        try:
            os.write(self._ready_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: the task is due to wake anyway

    async def stop(self) -> bool:
        """Stop the thread; True once it has returned (then the pipes are closed)."""
        self._stopping = True
        self._slots.release()
        try:
            os.write(self._stop_w, b"\0")
        except OSError:
            pass
        if self._thread.is_alive() or self._thread.ident is not None:
            await trio.to_thread.run_sync(self._thread.join, _STOP_WAIT)
        if self._thread.is_alive():
            return False
        trio.lowlevel.notify_closing(self.ready_fd)
        for fd in (self.ready_fd, self._ready_w, self._stop_r, self._stop_w):
            os.close(fd)
        return True
