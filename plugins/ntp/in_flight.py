"""A cap on each guest's requests awaiting the upstream, so that one guest cannot fill the server's queue.

The time service forwards every guest's requests to one server socket on the
host. A guest that floods valid requests fills that socket's receive queue, and
the kernel then drops whatever arrives next: another guest's request as often
as the flooder's. A real client has one request outstanding at a time (ntpdig,
chronyd, systemd-timesyncd, busybox: they wait for the reply or a timeout
before the next), a burst of a few at most, and several clients of one guest
(containers behind its address) a handful; a server on loopback answers in
well under a millisecond. So each guest (MAC and IPv4 address, whatever its
source port) may have at most `limit` requests forwarded and not yet answered;
past that its requests are dropped and counted until replies come back. A
request whose reply never comes stops counting after `timeout` seconds.

This is not a rate limit (`plugins.ntp.rate_limit` is, off by default): a guest
is never slowed below what the server can answer, it only cannot queue more
than `limit` requests ahead of everyone else. Sans-IO: the caller's monotonic
`now`. At most `max_guests` guests are tracked (least recently seen first out).
"""

from __future__ import annotations

from collections import OrderedDict, deque

__all__ = ["InFlight", "DEFAULT_LIMIT", "DEFAULT_TIMEOUT", "MAX_TRACKED_GUESTS"]

DEFAULT_LIMIT = 8
#: seconds after which a request with no reply no longer counts (clients time out in about 1 s)
DEFAULT_TIMEOUT = 1.0
MAX_TRACKED_GUESTS = 4096


class InFlight:
    def __init__(self, limit: int = DEFAULT_LIMIT, *, timeout: float = DEFAULT_TIMEOUT,
                 max_guests: int = MAX_TRACKED_GUESTS) -> None:
        if limit < 1 or not timeout > 0 or max_guests < 1:
            raise ValueError(f"in-flight cap: limit {limit} (>= 1), timeout {timeout} (> 0), max_guests {max_guests}")
        self.limit = limit
        self.timeout = timeout
        self.max_guests = max_guests
        #: guest -> when each of its outstanding requests was forwarded, oldest first
        self._sent: OrderedDict[bytes, deque[float]] = OrderedDict()
        #: requests refused because the guest had `limit` outstanding
        self.refused = 0

    def admit(self, guest: bytes, now: float) -> bool:
        """May `guest` have one more request forwarded at `now`? If so, it is counted as outstanding."""
        sent = self._sent.get(guest)
        if sent is None:
            if len(self._sent) >= self.max_guests:
                self._sent.popitem(last=False)
            sent = self._sent[guest] = deque()
        else:
            self._sent.move_to_end(guest)
            expired = now - self.timeout
            while sent and sent[0] <= expired:
                sent.popleft()
        if len(sent) >= self.limit:
            self.refused += 1
            return False
        sent.append(now)
        return True

    def answered(self, guest: bytes) -> None:
        """A reply to one of `guest`'s requests came back: one fewer outstanding (the oldest)."""
        sent = self._sent.get(guest)
        if sent:
            sent.popleft()

    def abandoned(self, guest: bytes) -> None:
        """`guest`'s latest admitted request was never sent upstream after all: not outstanding."""
        sent = self._sent.get(guest)
        if sent:
            sent.pop()

    def outstanding(self, guest: bytes) -> int:
        sent = self._sent.get(guest)
        return len(sent) if sent else 0

    def __len__(self) -> int:
        return len(self._sent)
