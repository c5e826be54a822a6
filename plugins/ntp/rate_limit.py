"""Per-guest rate limiting of NTP requests, chrony's way (`ratelimit interval I burst B leak L`).

Sans-IO: `allow(guest, now)` on the caller's monotonic clock. Each guest (MAC and IPv4
address, whatever its source port: a flooder changes ports) has a bucket that gains one
token every 2^interval seconds, holds at most `burst`, and spends one per request
answered. A request that finds the bucket empty is refused, except every 2^leak-th one
of them, which is answered anyway: chrony leaks a random 1 in 2^leak so that a client
behind a shared address is slowed, not cut off; here the leak is counted, not random, so a
replay is deterministic. chrony's defaults (interval 3 = one reply per 8 s, burst 8,
leak 2) are these defaults, and as in chrony the limit is off unless configured.

With `kod`, a refused request is answered with a Kiss-o'-Death RATE (RFC 5905 §7.4) at
most once per 2^interval seconds per guest (`kiss_due`): a client that honours it backs
off, and a flooder gets one small reply per period, never more than it sent.

At most `max_guests` buckets are kept; past that the least recently seen guest's is
dropped (it starts again with a full bucket), so a flood of spoofed addresses cannot
grow the table without bound.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["RateLimit", "MAX_TRACKED_GUESTS"]

MAX_TRACKED_GUESTS = 4096


class _Bucket:
    __slots__ = ("tokens", "last", "refused", "last_kiss")

    def __init__(self, tokens: float, last: float) -> None:
        self.tokens = tokens
        self.last = last
        self.refused = 0
        self.last_kiss: float | None = None


class RateLimit:
    def __init__(self, *, interval: int = 3, burst: int = 8, leak: int = 2, kod: bool = False,
                 max_guests: int = MAX_TRACKED_GUESTS) -> None:
        if not -4 <= interval <= 12 or not 1 <= burst <= 255 or not 0 <= leak <= 4 or max_guests < 1:
            raise ValueError(f"rate limit: interval {interval} (-4..12), burst {burst} (1..255), leak {leak} (0..4)")
        self.period = 2.0 ** interval
        self.burst = burst
        self.leak_every = 1 << leak
        self.max_guests = max_guests
        #: answer a refused request with a Kiss-o'-Death RATE, once per period per guest
        self.kod = kod
        self._buckets: OrderedDict[bytes, _Bucket] = OrderedDict()
        #: requests refused, and over-limit requests answered anyway (the leak)
        self.refused = 0
        self.leaked = 0

    def allow(self, guest: bytes, now: float) -> bool:
        bucket = self._buckets.get(guest)
        if bucket is None:
            if len(self._buckets) >= self.max_guests:
                self._buckets.popitem(last=False)
            bucket = self._buckets[guest] = _Bucket(float(self.burst), now)
        else:
            self._buckets.move_to_end(guest)
            if now > bucket.last:  # a clock that steps back refills nothing, and breaks nothing
                bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.last) / self.period)
            bucket.last = max(bucket.last, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        bucket.refused += 1
        if bucket.refused % self.leak_every == 0:
            self.leaked += 1
            return True
        self.refused += 1
        return False

    def kiss_due(self, guest: bytes, now: float) -> bool:
        """Just refused `guest` (`allow` returned False): is a Kiss-o'-Death RATE due? At most one per
        period per guest; True also records it as sent."""
        bucket = self._buckets.get(guest)
        if bucket is None:
            return False
        if bucket.last_kiss is not None and bucket.last_kiss <= now < bucket.last_kiss + self.period:
            return False
        bucket.last_kiss = now
        return True

    def __len__(self) -> int:
        return len(self._buckets)
