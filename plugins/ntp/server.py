"""The SNTP responder on a loopback UDP socket: the trio edge around `Responder`.

* Receive timestamps come from the kernel (SO_TIMESTAMPNS: the time the
  datagram reached the socket, before any queueing in this process), falling
  back to reading the clock right after `recvmsg` if the option is refused.
  An injected `clock` (tests) disables kernel timestamps, so that both
  timestamps of a reply come from the same clock. Linux turns receive
  timestamping on for the machine lazily, when the first socket asks: a
  datagram in the moment before that is stamped when it is read.
* The socket is served by a thread of its own that waits in the kernel (a
  blocking `recvmsg`, the GIL released) and answers each datagram with a
  non-blocking `sendto` (a full send buffer is a counted drop, never a wait).
  So the transmit timestamp is read, and the reply sent, without waiting for a
  turn of the trio loop that also runs the gateway: the gateway's wake-up then
  sits on both legs of an exchange, not only on the request's, which keeps the
  guest's offset centred (bench/README.md has the measurements). The trio task
  only starts the thread and, when cancelled, stops it (an empty datagram wakes
  it; if that is not enough, shutdown(2)). It waits for the thread in a worker
  thread of its own, shielded and bounded (2 x STOP_WAIT), so the trio loop
  that also runs the gateway never blocks, and the socket is closed only once
  the thread has left recvmsg: closing a descriptor another thread is blocked
  on lets the number be reused under it. A thread that does not stop in time
  is logged and left with its socket; it closes the socket itself if it ever
  returns, else process exit does.
* The ServerState is refreshed from the kernel (one adjtimex read) lazily,
  when a request arrives at least a second after the last refresh: no timer,
  no wakeups while idle.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections import Counter
from typing import Callable

import trio

from gateway.core.config import parse_host_port
from gateway.core.failures import ServingFailed
from plugins.ntp.config import NtpConfig

from plugins.ntp.drops import SntpDrop
from plugins.ntp.host_clock import measure_precision, now_ns, read_kernel_time_state
from plugins.ntp.kernel_state import KernelTimeState
from plugins.ntp.responder import Responder, ServerState
from plugins.ntp.timestamps import unix_ns_to_ntp

__all__ = ["SntpServer", "bind_responder_socket", "SO_TIMESTAMPNS", "DRAIN_BATCH", "RECEIVE_BUFFER", "STOP_WAIT", "MAX_RESTARTS",
           "RESTART_WINDOW"]

logger = logging.getLogger("hostclock.sntp")

#: Linux <asm-generic/socket.h>: SO_TIMESTAMPNS (SO_TIMESTAMPNS_OLD, 64-bit time_t on 64-bit
#: platforms); the control message it produces has the same number (SCM_TIMESTAMPNS)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")  # struct timespec on 64-bit Linux: tv_sec, tv_nsec
#: Linux <asm-generic/socket.h>: SO_RXQ_OVFL, the socket's count of datagrams the kernel dropped
#: because its receive queue was full, attached (u32) to each datagram received after the first drop
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
_DROP_COUNT = struct.Struct("=I")
_ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_DROP_COUNT.size)
#: the receive queue asked for (the kernel caps it at net.core.rmem_max): room for a burst while the
#: serving thread waits for the GIL
RECEIVE_QUEUE_BYTES = 1 << 20
#: bigger than any plain request; a datagram that does not fit is counted and dropped
RECEIVE_BUFFER = 2048
#: datagrams handled between checkpoints while draining the queue
DRAIN_BATCH = 256
_NS_PER_S = 1_000_000_000
#: seconds shutdown waits for the serving thread after waking it, and again after shutdown(2)
STOP_WAIT = 1.0
#: the serving thread's loop is restarted after a failure at most this many times within
#: RESTART_WINDOW seconds; one more and the responder (so the gateway) stops, exit 1
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0


class SntpServer:
    """Serves the host clock (or an injected `clock`, Unix ns) over UDP, per `config`.

    `answered` counts replies sent (counted before the send: a reply a client holds is
    always counted already), `drops` (shared with the responder)
    counts everything not answered, by reason; `bound_address` is (host, port)
    once `run` has bound the socket.
    """

    def __init__(self, config: NtpConfig, *, clock: Callable[[], int] | None = None,
                 read_kernel_state: Callable[[], KernelTimeState] = read_kernel_time_state,
                 precision: int | None = None) -> None:
        self.config = config
        self._clock = now_ns if clock is None else clock
        self._kernel_timestamps = clock is None
        self._read_kernel_state = read_kernel_state
        self.precision = measure_precision(self._clock) if precision is None else precision
        self.answered = 0
        #: times the serving thread's loop failed and was started again
        self.restarts = 0
        self._stopping = False
        self._thread_stopped: threading.Event | None = None
        self.bound_address: tuple[str, int] | None = None
        self.kernel_state = read_kernel_state()
        self._refreshed_ns = self._clock()
        self.responder = Responder(self._state_from(self.kernel_state, self._refreshed_ns))
        clock_fn = self._clock
        self._read_clock_ntp = lambda: unix_ns_to_ntp(clock_fn())

    @property
    def thread_running(self) -> bool:
        """Whether the serving thread is still in its loop (started and not yet returned)."""
        return self._thread_stopped is not None and not self._thread_stopped.is_set()

    @property
    def drops(self) -> Counter[str]:
        return self.responder.drops

    @property
    def state(self) -> ServerState:
        return self.responder.state

    def _state_from(self, kernel: KernelTimeState, at_ns: int) -> ServerState:
        return ServerState.from_config(self.config, kernel, precision=self.precision,
                                       reference_ntp=unix_ns_to_ntp(at_ns))

    def _refresh(self, at_ns: int) -> None:
        kernel = self._read_kernel_state()
        if (kernel.synchronised, kernel.leap) != (self.kernel_state.synchronised, self.kernel_state.leap):
            logger.info("host clock now %s per the kernel, leap second pending: %s",
                        "synchronised" if kernel.synchronised else "unsynchronised", kernel.leap)
        self.kernel_state = kernel
        self._refreshed_ns = at_ns
        self.responder.state = self._state_from(kernel, at_ns)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Bind, report (host, port) through `task_status.started`, and serve until cancelled."""
        sock, self._kernel_timestamps = bind_responder_socket(self.config, kernel_timestamps=self._kernel_timestamps)
        serving = False
        try:
            self.bound_address = sock.getsockname()
            self._refresh(self._clock())
            self._log_start()
            task_status.started(self.bound_address)
            serving = True
            await self._serve(sock)  # closes the socket once its thread has stopped
        finally:
            if not serving:
                sock.close()

    def serve_in_this_thread(self, sock: socket.socket, wait_readable: Callable[[], None], *,
                             kernel_timestamps: bool) -> Exception:
        """Serve `sock`, bound already (`bind_responder_socket`), from the calling thread: wait with
        `wait_readable()` until datagrams are queued, answer them all, and again, until an exception
        that is not an `Exception` (a signal's) ends it. The responder's own process
        (`plugins.ntp.responder_child`) runs this. Returns the failure that ended serving for
        good (what `run` raises as `ServingFailed`)."""
        self._kernel_timestamps = kernel_timestamps and self._kernel_timestamps
        self.bound_address = sock.getsockname()
        self._refresh(self._clock())
        self._log_start()
        sock.setblocking(False)
        failure = self._serve_restarting(sock, wait_readable)
        assert failure is not None  # without a stop flag, serving ends only by failing or by a signal
        return failure

    def _log_start(self) -> None:
        host, port = self.bound_address
        state = self.state
        timestamps = "the kernel" if self._kernel_timestamps else "the clock after recvmsg"
        if not self.kernel_state.known:
            clock = "host clock state unknown (adjtimex unavailable), served as synchronised"
        elif self.kernel_state.synchronised:
            clock = "host clock synchronised per the kernel"
        elif state.synchronised:
            clock = "host clock unsynchronised per the kernel, served as synchronised"
        else:
            clock = "host clock unsynchronised per the kernel, answering LI=3 stratum 0 (report_unsync)"
        logger.info("SNTP responder on %s:%d: stratum %d, refid %s, precision 2^%d s, receive timestamps "
                    "from %s; %s", host, port, self.config.stratum, self.config.refid, state.precision,
                    timestamps, clock)

    async def _serve(self, sock: socket.socket) -> None:
        """Serve `sock` from a thread until cancelled; then stop the thread and close `sock`."""
        self._stopping = False
        stopped = threading.Event()
        self._thread_stopped = stopped
        # Whoever finishes last closes the socket: this task if the thread stopped in time,
        # else the thread itself when (if ever) it returns. The lock makes that one decision.
        closing = threading.Lock()
        abandoned = False

        def serve_in_thread() -> Exception | None:
            try:
                sock.setblocking(True)  # receives wait in the kernel, the GIL released; sends never wait
                return self._serve_restarting(sock)
            finally:
                with closing:
                    if abandoned:
                        sock.close()  # before `stopped`: once the thread reads as stopped, its socket is closed
                    stopped.set()

        try:
            failure = await trio.to_thread.run_sync(serve_in_thread, abandon_on_cancel=True)
            # the thread returns only to stop (then this task is being cancelled) or for good
            where = f"SNTP responder on {self.bound_address[0]}:{self.bound_address[1]}"
            raise ServingFailed(f"{where}: the serving thread failed {MAX_RESTARTS + 1} times within "
                                f"{RESTART_WINDOW:.0f} s (last: {type(failure).__name__}: {failure}); "
                                "stopping rather than answer nothing" if failure is not None else
                                f"{where}: the serving thread stopped unexpectedly; stopping rather than answer nothing")
        finally:
            with trio.CancelScope(shield=True):  # the cancellation that got us here must not cut this short
                await self._stop_thread(sock, stopped)
            with closing:
                if stopped.is_set():
                    sock.close()
                else:
                    abandoned = True
                    logger.warning("SNTP responder: the serving thread did not stop within %.1f s; "
                                   "its socket stays open until the thread returns or the process exits",
                                   2 * STOP_WAIT)

    async def _stop_thread(self, sock: socket.socket, stopped: threading.Event) -> None:
        """Wake the serving thread and wait (at most 2 x STOP_WAIT) for it to return, in a worker
        thread, so that the trio loop goes on running meanwhile."""
        self._stopping = True
        if stopped.is_set():
            return
        try:  # an empty datagram wakes the thread's recvmsg; it sees _stopping and returns
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
                waker.sendto(b"", self.bound_address)
        except OSError:
            pass
        if await trio.to_thread.run_sync(stopped.wait, STOP_WAIT):
            return
        try:  # the datagram was lost (a full receive queue): shutdown(2) wakes recvmsg too
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        await trio.to_thread.run_sync(stopped.wait, STOP_WAIT)

    def _serve_restarting(self, sock: socket.socket, wait_readable: Callable[[], None] | None = None) -> Exception | None:
        """The serving thread's loop: on a blocking `sock`, draining until stopping; with
        `wait_readable`, on a non-blocking one, waiting with it and draining what is queued.
        An exception inside it (a bug, or a fault such as a clock that cannot be read) is logged
        (with its traceback the first time), counted in `restarts`, and the loop starts again
        with the same socket; more than MAX_RESTARTS within RESTART_WINDOW seconds returns that
        exception, and the server stops for good. Returns None once stopping."""
        failures: list[float] = []
        while True:
            try:
                if wait_readable is not None:
                    while True:
                        wait_readable()
                        self._drain(sock)
                while not self._drain(sock):
                    pass
                return None
            except Exception as e:
                at = time.monotonic()
                failures = [t for t in failures if at - t < RESTART_WINDOW] + [at]
                if len(failures) > MAX_RESTARTS:
                    logger.error("SNTP responder: the serving thread failed again (%s: %s); giving up",
                                 type(e).__name__, e)
                    return e
                self.restarts += 1
                logger.warning("SNTP responder: the serving thread failed (%s: %s); restarted it (%d of at most "
                               "%d within %.0f s)", type(e).__name__, e, len(failures), MAX_RESTARTS,
                               RESTART_WINDOW, exc_info=self.restarts == 1)

    def _drain(self, sock: socket.socket) -> bool:
        """Answer up to DRAIN_BATCH datagrams; True once the queue is empty or the server is stopping.

        On the serving thread the socket is blocking: each `recvmsg` waits in the
        kernel for the next datagram, so this returns only to stop. Replies are
        sent with MSG_DONTWAIT: a full send buffer is a counted drop, never a wait.
        """
        recvmsg = sock.recvmsg
        sendto = sock.sendto
        respond = self.responder.respond
        read_clock_ntp = self._read_clock_ntp
        drops = self.responder.drops
        kernel_timestamps = self._kernel_timestamps
        for _ in range(DRAIN_BATCH):
            try:
                request, ancillary, flags, address = recvmsg(RECEIVE_BUFFER, _ANCILLARY_SIZE)
            except BlockingIOError:
                return True
            except OSError:
                if self._stopping:
                    return True
                drops[SntpDrop.RECEIVE_ERROR] += 1
                continue
            if self._stopping:
                return True
            if len(ancillary) > 1 or (ancillary and ancillary[0][1] == SO_RXQ_OVFL):
                dropped = _kernel_drop_count(ancillary)
                if dropped is not None:  # the kernel's running total for this socket
                    drops[SntpDrop.KERNEL_QUEUE_FULL] = dropped
            receive_ns = _kernel_receive_ns(ancillary) if kernel_timestamps else None
            if receive_ns is None:
                receive_ns = self._clock()
            if flags & socket.MSG_TRUNC:
                drops[SntpDrop.TRUNCATED] += 1
                continue
            if not -_NS_PER_S < receive_ns - self._refreshed_ns < _NS_PER_S:
                self._refresh(receive_ns)
            reply = respond(request, unix_ns_to_ntp(receive_ns), read_clock_ntp)
            if reply is None:
                continue
            # counted before the send, taken back if it fails: whoever holds the reply (a client,
            # the test that started it) must find it counted already
            self.answered += 1
            try:
                sendto(reply, socket.MSG_DONTWAIT, address)
            except BlockingIOError:
                self.answered -= 1
                drops[SntpDrop.SEND_WOULD_BLOCK] += 1
            except OSError:
                self.answered -= 1
                drops[SntpDrop.SEND_FAILED] += 1
        return False


def bind_responder_socket(config: NtpConfig, *, kernel_timestamps: bool = True) -> tuple[socket.socket, bool]:
    """The responder's UDP socket, bound to `config.listen`, non-blocking, with its options set, and
    whether the kernel stamps receive times on it (asked for only when `kernel_timestamps`).

    Raises OSError naming the address if it cannot be bound."""
    host, port = parse_host_port(config.listen, what="responder listen address")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        for option, value in ((SO_RXQ_OVFL, 1), (socket.SO_RCVBUF, RECEIVE_QUEUE_BYTES)):
            try:  # best effort: what the kernel drops is then counted, and drops less often
                sock.setsockopt(socket.SOL_SOCKET, option, value)
            except OSError:
                pass
        if kernel_timestamps:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            except OSError:
                kernel_timestamps = False
        try:
            sock.bind((host, port))
        except OSError as e:
            raise OSError(e.errno, f"SNTP responder cannot bind {host}:{port}: {e.strerror}") from None
    except BaseException:
        sock.close()
        raise
    return sock, kernel_timestamps


def _kernel_drop_count(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The SO_RXQ_OVFL count (datagrams the kernel dropped on this socket so far), or None."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(data) >= _DROP_COUNT.size:
            return _DROP_COUNT.unpack_from(data)[0]
    return None


def _kernel_receive_ns(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The SCM_TIMESTAMPNS timespec as Unix ns, or None if the kernel attached none."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return seconds * _NS_PER_S + nanoseconds
    return None
