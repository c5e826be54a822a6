"""A guest link over a byte stream (a Unix stream socket or a pipe), with length-prefixed frames.

Reading feeds a sans-IO `FrameDecoder`. A read takes up to 256 KiB (few
system calls for a busy guest), and its frames are handed on at most
`_FRAMES_PER_TURN` at a time, the task yielding to the others in between: a
guest flooding its connection cannot hold the loop for the thousands of frames
one read can carry while another guest's request waits. A peer that stops in the
middle of a frame (half a length prefix, or part of a frame, and then nothing for
`partial_frame_timeout` seconds) is disconnected: no guest's NIC pauses inside a
frame, and such a peer would hold one of the `max_guests` places for ever (a
peer that is silent between frames is an idle guest, and stays). Writing never blocks the caller: a
frame is written at once when the stream takes it (the usual case), and
otherwise queued for a writer task; past `max_queued` bytes, frames are dropped
and counted rather than buffered without bound.
"""

from __future__ import annotations

import logging
import os
import struct
from collections import Counter
from time import monotonic_ns

import trio

from gateway.edges.transports.base import FrameHandler
from gateway.edges.transports.framing import FrameDecoder, FramingError

__all__ = ["StreamLink"]

log = logging.getLogger("hostclock.transport")

_READ_SIZE = 256 * 1024
#: frames handed on before the link's task yields to the other tasks (other guests, upstream replies)
_FRAMES_PER_TURN = 64
_MAX_QUEUED = 1 << 20
#: seconds a peer may leave a frame unfinished before it is disconnected
PARTIAL_FRAME_TIMEOUT = 10.0


class StreamLink:
    """One guest attached over a stream; `read_fd` and `write_fd` may be one socket or two pipe ends."""

    def __init__(self, description: str, read_fd: int, write_fd: int, prefix: struct.Struct, max_frame: int,
                 *, max_queued: int = _MAX_QUEUED, min_frame: int = 0, drops: Counter[str] | None = None,
                 partial_frame_timeout: float = PARTIAL_FRAME_TIMEOUT) -> None:
        self.description = description
        #: frames shorter than this are zero-padded when sent (hyperkit pads to 60, the Ethernet minimum)
        self._min_frame = min_frame
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._prefix = prefix
        self._decoder = FrameDecoder(prefix, max_frame)
        self._partial_frame_timeout = partial_frame_timeout
        self._queue = bytearray()
        self._max_queued = max_queued
        self._queued_wakeup = trio.Event()
        self._open = True
        #: frames to the guest dropped, by reason (the transport's counter, shared by its links)
        self.drops: Counter[str] = drops if drops is not None else Counter()

    @property
    def is_open(self) -> bool:
        return self._open

    def send_frame(self, frame: bytes) -> None:
        if not self._open:
            self.drops["stream: link closed"] += 1
            return
        if len(frame) < self._min_frame:
            frame = frame.ljust(self._min_frame, b"\0")
        data = self._prefix.pack(len(frame)) + frame
        if self._queue:
            self._enqueue(data)
            return
        try:
            written = os.write(self._write_fd, data)
        except BlockingIOError:
            written = 0
        except OSError as e:  # EPIPE/ECONNRESET: the peer is gone; the reader will see EOF
            self.drops[f"stream: write failed ({e.strerror})"] += 1
            return
        if written < len(data):
            self._enqueue(data[written:])

    def _enqueue(self, data: bytes) -> None:
        if len(self._queue) + len(data) > self._max_queued:
            self.drops["stream: peer not reading, send queue full"] += 1
            return
        self._queue += data
        self._queued_wakeup.set()

    async def serve(self, on_frame: FrameHandler, initial: bytes = b"") -> str:
        """Read and dispatch frames until the peer leaves; returns why the link ended."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write_queued)
            try:
                return await self._dispatch(on_frame, initial, monotonic_ns()) or await self._read_loop(on_frame)
            finally:
                self._open = False
                nursery.cancel_scope.cancel()

    async def _dispatch(self, on_frame: FrameHandler, data: bytes, read_ns: int) -> str | None:
        """Decode `data` (read at `read_ns`, monotonic ns) and hand each whole frame to `on_frame`,
        yielding after every `_FRAMES_PER_TURN`."""
        problem = None
        try:
            frames = self._decoder.feed(data)
        except FramingError as e:
            frames = e.frames  # the frames before the bad length are the guest's
            problem = f"protocol error: {e}"
        for start in range(0, len(frames), _FRAMES_PER_TURN):
            if start:
                await trio.lowlevel.checkpoint()
            for frame in frames[start:start + _FRAMES_PER_TURN]:
                on_frame(frame, self, read_ns)
        return problem

    async def _read_loop(self, on_frame: FrameHandler) -> str:
        while True:
            if self._decoder.pending:
                with trio.move_on_after(self._partial_frame_timeout) as waited:
                    await trio.lowlevel.wait_readable(self._read_fd)
                if waited.cancelled_caught:
                    return (f"peer stalled mid-frame ({self._decoder.pending} bytes of a frame, then nothing "
                            f"for {self._partial_frame_timeout:g} s)")
            else:
                await trio.lowlevel.wait_readable(self._read_fd)
            try:
                data = os.read(self._read_fd, _READ_SIZE)
                read_ns = monotonic_ns()
            except BlockingIOError:
                continue
            except OSError as e:
                return f"read failed: {e.strerror}"
            if not data:
                if self._decoder.pending:
                    return f"peer disconnected mid-frame ({self._decoder.pending} bytes of a frame lost)"
                return "peer disconnected"
            problem = await self._dispatch(on_frame, data, read_ns)
            if problem:
                return problem

    async def _write_queued(self) -> None:
        while True:
            if not self._queue:
                self._queued_wakeup = trio.Event()
                await self._queued_wakeup.wait()
                continue
            await trio.lowlevel.wait_writable(self._write_fd)
            try:
                written = os.write(self._write_fd, self._queue)
            except BlockingIOError:
                continue
            except OSError:
                self._queue.clear()
                return
            del self._queue[:written]
