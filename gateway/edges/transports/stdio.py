"""gvisor-tap-vsock's `stdio` transport: frames on stdin (from the guest) and stdout (to it),
each preceded by a u16 little-endian length: vmnet framing without the handshake.

The parent process that spawned hostclock is the guest's side (it holds the
other ends of the pipes or socket). One guest. Therefore:

* stdout carries frames only. While serving, file descriptor 1 is pointed at
  stderr (frames go out on a private duplicate of the original stdout), so a
  stray print cannot corrupt the stream; the CLI also prints its ready line
  to stderr for this transport (`TransportKind.uses_stdout`).
* The parent closing stdin ends the session: `finished` is set and `run`
  returns; the CLI then shuts down cleanly.
* Any u16 length is accepted (the peer was never told an MTU); a peer leaving
  mid-frame is logged like any other stream.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections import Counter

import trio

from gateway.edges.transports.base import FrameHandler, TransportError
from gateway.edges.transports.framing import VMNET_PREFIX
from gateway.edges.transports.stream_link import StreamLink

__all__ = ["StdioTransport"]

log = logging.getLogger("hostclock.transport.stdio")

_MAX_FRAME = 0xFFFF  # the largest length a u16 prefix can say


class StdioTransport:
    def __init__(self, read_fd: int = 0, write_fd: int = 1) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.description = "stdio" if (read_fd, write_fd) == (0, 1) else f"stdio fds {read_fd}/{write_fd}"
        #: set when the parent closes stdin (or the pipe breaks): the guest has gone for good
        self.finished = trio.Event()
        #: frames dropped by the link, by reason
        self.drops: Counter[str] = Counter()

    async def run(self, on_frame: FrameHandler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        for fd, name in ((self.read_fd, "stdin"), (self.write_fd, "stdout")):
            _check_usable(fd, name)
        write_fd = self.write_fd
        saved_stdout = None
        if write_fd == 1:
            sys.stdout.flush()
            write_fd = os.dup(1)
            saved_stdout = os.dup(1)
            os.dup2(2, 1)  # anything printed from now on goes to stderr, not into the frame stream
        fds = {self.read_fd, write_fd}
        saved_blocking = {fd: os.get_blocking(fd) for fd in fds}
        try:
            for fd in fds:
                os.set_blocking(fd, False)
            link = StreamLink(self.description, self.read_fd, write_fd, VMNET_PREFIX, _MAX_FRAME, drops=self.drops)
            task_status.started()
            log.info("guest attached: %s", self.description)
            reason = await link.serve(on_frame)
            log.log(logging.INFO if reason == "peer disconnected" else logging.WARNING,
                    "guest detached: %s (%s); the session is over", self.description, reason)
            self.finished.set()
        finally:
            for fd, blocking in saved_blocking.items():
                try:
                    os.set_blocking(fd, blocking)  # the parent may share these descriptions
                except OSError:
                    pass
            if saved_stdout is not None:
                os.dup2(saved_stdout, 1)
                os.close(saved_stdout)
                os.close(write_fd)


def _check_usable(fd: int, name: str) -> None:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        raise TransportError(f"--stdio: {name} (fd {fd}) is closed; the parent process must pass the guest's "
                             "frame stream on stdin and stdout") from None
    if os.isatty(fd):
        raise TransportError(f"--stdio: {name} is a terminal; --stdio is for a parent process that pipes "
                             "frames (u16 little-endian length + frame) through stdin and stdout")
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        raise TransportError(f"--stdio: {name} is neither a pipe nor a socket; the parent process must connect "
                             "it to the guest's frame stream")
