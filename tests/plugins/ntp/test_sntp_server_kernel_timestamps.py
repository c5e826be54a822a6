"""The receive timestamp is the kernel's (SO_TIMESTAMPNS): when the datagram reached the socket,
not when the serving thread got round to reading it.

The serving thread is held back before it reads; a request is sent and waits in the socket's
queue for HOLD seconds; then the thread goes on. The reply's receive timestamp must be the
time of arrival (within the send), its transmit timestamp the time of the answer (after the
hold). A receive time read in userspace, after recvmsg, would sit after the hold as well.

Linux turns receive timestamping on for the whole machine lazily: the first socket that asks
for it schedules the switch, and a datagram that arrives before the switch has happened is
stamped when it is read instead (net_enable_timestamp's deferred static key). So the test keeps
a socket of its own asking for timestamps, and lets one datagram through it, before it starts:
what it then measures is the server's, not the machine's first moments of timestamping.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import trio

from plugins.ntp.config import NtpConfig
from plugins.ntp.kernel_state import KernelTimeState, LeapPending
from plugins.ntp.server import SO_TIMESTAMPNS, SntpServer
from plugins.ntp.timestamps import ntp_to_unix_ns

SYNCED = KernelTimeState(synchronised=True, leap=LeapPending.NONE, maxerror_us=1000, esterror_us=10)
HOLD_NS = 300_000_000
#: how much later than the send the kernel may stamp the arrival (loopback: microseconds; this
#: allows a busy machine's scheduling, and stays far below the hold)
ARRIVAL_SLACK_NS = 50_000_000
REQUEST = bytes([0x23, 0, 6, 0xEC]) + bytes(36) + bytes.fromhex("0102030405060708")


@contextmanager
def machine_timestamping_on():
    """A socket asking for receive timestamps, open for the test, with one datagram through it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.bind(("127.0.0.1", 0))
        for _ in range(50):  # bounded: the kernel's deferred switch takes microseconds to milliseconds
            sock.sendto(b"x", sock.getsockname())
            sent_ns = time.time_ns()
            time.sleep(0.01)
            _, ancillary, _, _ = sock.recvmsg(16, socket.CMSG_SPACE(16))
            stamps = [data for level, kind, data in ancillary if kind == SO_TIMESTAMPNS and len(data) >= 16]
            if stamps:
                seconds, nanoseconds = int.from_bytes(stamps[0][:8], "little"), int.from_bytes(stamps[0][8:16], "little")
                if seconds * 1_000_000_000 + nanoseconds < sent_ns + 5_000_000:  # stamped on arrival
                    break
        yield


async def test_a_request_queued_while_the_thread_is_held_carries_its_arrival_time(monkeypatch):
    release = threading.Event()
    original = SntpServer._drain

    def held(self, sock):
        assert release.wait(10), "never released"
        return original(self, sock)

    monkeypatch.setattr(SntpServer, "_drain", held)
    server = SntpServer(NtpConfig(), read_kernel_state=lambda: SYNCED)  # the host clock: read, never set
    with machine_timestamping_on(), trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.run)
            with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as client:
                await client.connect(address)
                before_send = time.time_ns()
                await client.send(REQUEST)
                after_send = time.time_ns()
                await trio.sleep(HOLD_NS / 1e9)  # the request waits in the socket's receive queue
                released = time.time_ns()
                release.set()
                reply = await client.recv(2048)
                answered = time.time_ns()
            nursery.cancel_scope.cancel()
    receive_ns = ntp_to_unix_ns(int.from_bytes(reply[32:40], "big"), before_send)
    transmit_ns = ntp_to_unix_ns(int.from_bytes(reply[40:48], "big"), before_send)
    assert before_send <= receive_ns <= after_send + ARRIVAL_SLACK_NS, (before_send, receive_ns, after_send)
    assert released <= transmit_ns <= answered, (released, transmit_ns, answered)
    assert transmit_ns - receive_ns >= HOLD_NS - ARRIVAL_SLACK_NS  # the queueing shows, as it happened
