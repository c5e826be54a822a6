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

Given the stack's kernel filter (`filter_in_kernel`, `gateway.core.kernel_filter`),
the device runs it on every frame before queueing it (`TUNATTACHFILTER`): a guest
flooding frames the stack would only drop then fills neither the queue nor the
reading thread, and its well-formed requests still get through. The kernel counts
what the filter drops, and what a full queue drops, as the device's TX drops; at
stop the transport adds them to its drops when the device is still in the
gateway's network namespace (moved into another, `ip -n NS -s link show NAME`
there has them).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import select
import socket
import struct
import threading
from collections import Counter, deque
from collections.abc import Sequence
from time import monotonic_ns

import trio

from gateway.core.kernel_filter import Instruction
from gateway.edges.transports.base import FrameHandler, TransportError

__all__ = ["TapTransport", "open_tap", "attach_filter", "KERNEL_DROPS"]

log = logging.getLogger("hostclock.transport.tap")

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
_IFREQ = struct.Struct("16sH22x")  # struct ifreq: ifr_name, ifr_flags, padding to 40 bytes
_IFREQ_INDEX = struct.Struct("16si20x")  # struct ifreq: ifr_name, ifr_ifindex
SIOCGIFINDEX = 0x8933
#: struct sock_filter (code, jt, jf, k) and struct sock_fprog (len, filter pointer)
_SOCK_FILTER = struct.Struct("@HBBI")
_SOCK_FPROG = struct.Struct("@HP")
#: _IOW('T', 213, struct sock_fprog) in <linux/if_tun.h>
TUNATTACHFILTER = (1 << 30) | (_SOCK_FPROG.size << 16) | (ord("T") << 8) | 213
KERNEL_DROPS = "tap: dropped by the kernel before the gateway read them (its filter, or a full queue)"
_MAX_FRAME = 65535 + 14
_READS_PER_WAKEUP = 256  # frames read per wake-up of the reading thread: one batch
#: batches read but not yet handled by the trio task; then the reading thread waits
_BATCHES_IN_FLIGHT = 8
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


def attach_filter(fd: int, program: Sequence[Instruction]) -> None:
    """Have the kernel run classic BPF `program` on every frame before it queues it on TAP `fd`.

    Raises OSError if the kernel refuses it (EINVAL: an invalid program)."""
    code = ctypes.create_string_buffer(b"".join(_SOCK_FILTER.pack(i.code, i.jt, i.jf, i.k) for i in program))
    fcntl.ioctl(fd, TUNATTACHFILTER, _SOCK_FPROG.pack(len(program), ctypes.addressof(code)))  # the kernel copies it


def _ifindex(name: str) -> int | None:
    """The interface index of `name` in this network namespace, or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            reply = fcntl.ioctl(sock.fileno(), SIOCGIFINDEX, _IFREQ_INDEX.pack(name.encode(), 0))
    except OSError:
        return None
    return _IFREQ_INDEX.unpack(reply)[1]


def _tx_dropped(name: str, ifindex: int | None) -> int | None:
    """The device's TX drops (frames from its far side the kernel dropped), if it is still ours and here."""
    base = f"/sys/class/net/{name}"
    try:
        with open(f"{base}/ifindex") as f:
            if ifindex is None or int(f.read()) != ifindex:
                return None
        with open(f"{base}/statistics/tx_dropped") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


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
        self._filter: tuple[Instruction, ...] | None = None
        #: whether the kernel filter is attached (once `run` opened the device)
        self.filtering = False

    def filter_in_kernel(self, program: Sequence[Instruction]) -> None:
        self._filter = tuple(program)

    async def run(self, on_frame: FrameHandler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        fd = open_tap(self.name)
        link = TapLink(self.name, fd, self.drops)
        log.debug("created TAP %s", self.name)
        ifindex = _ifindex(self.name)
        dropped_at_start = _tx_dropped(self.name, ifindex)
        if self._filter is not None:
            try:
                attach_filter(fd, self._filter)
                self.filtering = True
            except OSError as e:  # never seen on Linux >= 2.6.32: serve unfiltered, and say so once
                log.warning("TAP %s: the kernel refused the frame filter (%s); every frame reaches the gateway",
                            self.name, e.strerror or e)
        reader = _TapReader(self.name, fd)
        try:
            reader.start()
            task_status.started()
            while True:
                await trio.lowlevel.wait_readable(reader.ready_fd)
                for turn, batch in enumerate(reader.take_batches()):
                    if turn:
                        await trio.lowlevel.checkpoint()  # between batches, the other tasks' turn (upstream replies)
                    for frame, read_ns in batch:
                        on_frame(frame, link, read_ns)
                if reader.failure is not None:
                    raise TransportError(f"TAP {self.name} failed: {reader.failure}")
        finally:
            with trio.CancelScope(shield=True):  # the cancellation that got us here must not cut this short
                stopped = await reader.stop()
            dropped = _tx_dropped(self.name, ifindex)
            if dropped is not None and dropped_at_start is not None and dropped > dropped_at_start:
                self.drops[KERNEL_DROPS] += dropped - dropped_at_start
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
