"""Watching each guest's clock from the gateway, with no agent in the guest (sans-IO).

Two readings of a guest's clock, both "guest clock minus host clock" (negative:
the guest is behind):

* ICMP timestamps (RFC 792, types 13 and 14). Linux answers a timestamp
  request in its kernel, so no program in the guest is needed. The gateway
  sends a request whose originate timestamp T1 is the host's time, the guest
  stamps its receive (T2) and transmit (T3) times, and the reply arrives at
  host time T4; as NTP does (RFC 5905 §8), offset = ((T2 - T1) + (T3 - T4)) / 2
  and delay = (T4 - T1) - (T3 - T2). Timestamps are "32 bits of milliseconds
  since midnight UT" (RFC 792), and Linux truncates its clock to the
  millisecond, so a guest's T2 and T3 stand for the middle of their
  millisecond (+0.5 ms); the watcher keeps T1 and T4 to the nanosecond (the
  originate field carries T1 to the millisecond, and is checked on return).
  Differences are taken modulo a day, so a probe across midnight UT reads as
  well as any other (offsets beyond +/-12 h cannot be told apart). A reply
  whose guest timestamps have the high bit set ("non-standard value": not ms
  since midnight UT) is dropped and counted: it is no reading of the clock.
  Each reading is a round of `probes_per_reading` probes, `probe_spacing`
  apart (10.25 ms: each probe meets the guest's millisecond a quarter later
  than the one before, so the truncation averages out), combined from the
  answers with the shortest round trip (within 1 ms of the best).
  `error_s` is the reading's half-width: half the round trip the guest did
  not spend between T2 and T3 (the path asymmetry can be anything within it)
  plus half a millisecond (the guest's resolution).
* The guest's own NTP requests (`GuestClockReading`, which a UDP service may
  return among its outputs; the stack routes it here). ntpdig, busybox and
  systemd-timesyncd put their clock in the transmit timestamp; chronyd sends
  random bits there. A one-way reading, guest's transmit time minus host's
  arrival time, is used only when it agrees with the guest's previous one:
  within `ntp_agreement` (5 ms) plus `ntp_drift_allowance` (1000 ppm, beyond
  the 500 ppm a Linux kernel slews and Docker's VM's 700 ppm) of the time
  between them, which no random 64-bit value meets. A delay on the way (the
  guest's send path, the link, the gateway's own wake-up) only ever lowers a
  one-way reading, so of the two the higher is taken; the path delay itself is
  not seen, and the reading assumes it within `ntp_transit` (4 ms; ntpdig in a
  namespace on a busy 2-core machine was stamped 0.2-4 ms after its clock read): it is
  centred there, and its error is half of it plus the two readings' spread.
  A busy host that stamps a request's arrival late reads the guest as behind
  by that lateness: ICMP readings, which see their round trip, do not. At
  most one NTP reading per guest per `interval` is made, so a guest that
  floods NTP requests cannot flood the readings (nor a log of them).

Guests are learned from their traffic (`saw_guest`, which the stack calls for
every frame from a guest host) and from DHCP leases (`GuestSeen`). Each guest
is a MAC, an IPv4 address and the link it was seen on (an opaque, hashable key
of the caller's); probes go only to that MAC, at that address, on that link.

Bad input is data. A timestamp reply that is malformed, matches no
outstanding probe, comes from another guest than the probe went to, or comes
after its round closed is dropped and counted in `drops` by reason. A guest
that never answers costs a bounded number of probes: each silent round
doubles the wait before the next one; after `max_silent_rounds` the guest is
given up, until it is seen again after a silence of its own (or takes a new
DHCP lease). A guest that has answered before and falls silent (a VM paused,
as its host slept) is given up the same way, but its next frame wakes the
watcher at once, so the reading after it resumes comes within a second; if
it then stays silent, each further give-up holds it off twice as long
(from `interval` to an hour) before a frame may wake the watcher again. At most `max_guests` guests are watched (the least recently seen
makes room), so spoofed sources cannot grow the table.

Sans-IO: every call takes `now` (monotonic seconds) and, where a reading is
made or a probe stamped, `wall_ns` (the host's Unix time in nanoseconds); the
caller sends what `on_timer` returns and collects readings with
`take_offsets`. Nothing here reads a clock or touches a socket.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from gateway.core import ethernet, icmp, ipv4
from gateway.core.addresses import format_ipv4, format_mac
from gateway.core.service import GuestAddress

__all__ = ["GuestClockWatcher", "GuestClockReading", "GuestSeen", "GuestClockReporter", "GuestClockOffset",
           "GuestClockStatus", "SOURCE_ICMP", "SOURCE_NTP", "DAY_NS"]

SOURCE_ICMP = "icmp"
SOURCE_NTP = "ntp"

_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000
#: one day of nanoseconds: the period of an ICMP timestamp
DAY_NS = icmp.MS_PER_DAY * _NS_PER_MS
_HALF_MS_NS = _NS_PER_MS // 2
#: identifier of the gateway's timestamp requests ("hc")
DEFAULT_IDENTIFIER = 0x6863
#: probes whose round closed, remembered so that their late replies are told from unsolicited ones
_CLOSED_PROBES_KEPT = 1024
#: a host clock that moved by more than this against the monotonic clock during a probe: no reading
_HOST_STEP_TOLERANCE_NS = 2 * _NS_PER_MS
#: the longest a guest that answered once, then never again, is held off between tries (seconds)
_MAX_RESUME_HOLD = 3600.0

# drop reasons (every one a timestamp reply that made no reading)
DROP_SHORT = "guest clock: ICMP timestamp reply shorter than 20 bytes"
DROP_CODE = "guest clock: ICMP timestamp reply with a code other than 0"
DROP_UNSOLICITED = "guest clock: ICMP timestamp reply matching no probe (identifier or sequence number)"
DROP_DUPLICATE = "guest clock: ICMP timestamp reply to a probe already answered"
DROP_LATE = "guest clock: ICMP timestamp reply after its probe's round closed"
DROP_WRONG_GUEST = "guest clock: ICMP timestamp reply from another guest or link than the probe went to"
DROP_ORIGINATE = "guest clock: ICMP timestamp reply whose originate timestamp is not the probe's"
DROP_NON_STANDARD = ("guest clock: ICMP timestamp reply with a non-standard timestamp (high bit set: "
                     "not ms since midnight UT, RFC 792)")
DROP_BEYOND_DAY = "guest clock: ICMP timestamp reply with a timestamp beyond a day of milliseconds"
DROP_TRANSMIT_BEFORE_RECEIVE = "guest clock: ICMP timestamp reply transmitted more than a second before received"
DROP_HOST_STEPPED = "guest clock: ICMP timestamp reply across a step of the host's clock"
DROP_NO_WALL_TIME = "guest clock: ICMP timestamp reply given without the host's time of arrival"

# why a guest's NTP request made no reading
NTP_FIRST = "ntp: a first request (a reading needs two that agree)"
NTP_DISAGREE = "ntp: transmit timestamp disagrees with the previous request's (random bits, or the clock stepped)"
NTP_UNKNOWN_GUEST = "ntp: request from a guest not watched"
NTP_NO_WALL_TIME = "ntp: request given without the host's time of arrival"
NTP_TOO_SOON = "ntp: the guest's clock was read from NTP less than an interval ago"


@dataclass(frozen=True, slots=True)
class GuestClockReading:
    """What a guest's datagram says its clock read when it sent it: a UDP service's output.

    `guest_time_ns` is the guest's clock as Unix nanoseconds, known modulo
    `period_ns` (an NTP timestamp's era, an ICMP timestamp's day): the watcher
    compares it with the host's time of arrival modulo that period, so the
    service needs no clock to place it. The stack hands it to the watcher (or
    discards it when none is watching); it never reaches the guest.
    """

    guest: GuestAddress
    guest_time_ns: int
    period_ns: int
    source: str = SOURCE_NTP


@dataclass(frozen=True, slots=True)
class GuestSeen:
    """A service's news that `mac` holds `ip` (a DHCP lease): the guest is watched from now on.

    The stack hands it to the watcher (or discards it); it never reaches the guest.
    """

    mac: bytes
    ip: bytes


@runtime_checkable
class GuestClockReporter(Protocol):
    """A service that can return `GuestClockReading`s and `GuestSeen`s; it does so only while
    `report_guest_clock` is true, which a stack with a watcher sets when it binds the service
    (so a gateway that watches no clock pays nothing for it)."""

    report_guest_clock: bool


@dataclass(frozen=True, slots=True)
class GuestClockOffset:
    """One reading of a guest's clock: `offset_s` is guest minus host (negative: the guest is behind).

    `error_s` is the half-width of the reading (the true offset is within
    offset_s +/- error_s); `time_unix_s` the host's time of the reading.
    `crossing` is "out" when this reading took the guest's |offset| beyond
    the threshold, "back" when it brought it back within half the threshold
    (hysteresis), else None.
    """

    time_unix_s: float
    guest_ip: str
    guest_mac: str
    offset_s: float
    error_s: float
    source: str
    link: Any = None
    crossing: str | None = None


@dataclass(frozen=True, slots=True)
class GuestClockStatus:
    """A watched guest, as `GuestClockWatcher.guests()` reports it."""

    guest_ip: str
    guest_mac: str
    link: Any
    offset_s: float | None
    error_s: float | None
    source: str | None
    time_unix_s: float | None
    readings: int
    probes_sent: int
    probes_answered: int
    given_up: bool
    out_of_step: bool


class _Guest:
    __slots__ = ("mac", "ip", "link", "ip_text", "mac_text", "last_seen", "due", "in_round", "round_start",
                 "round_sent", "next_probe", "round_deadline", "round_seqs", "answers", "silent_rounds",
                 "given_up", "out_of_step", "last", "readings", "probes_sent", "probes_answered", "ntp_last",
                 "ntp_next", "answered_since_given_up", "given_up_at", "resume_hold")

    def __init__(self, mac: bytes, ip: bytes, link: Hashable, now: float, due: float) -> None:
        self.mac = mac
        self.ip = ip
        self.link = link
        self.ip_text = format_ipv4(ip)
        self.mac_text = format_mac(mac)
        self.last_seen = now
        self.due: float | None = due  # the next round's start, None once given up
        self.in_round = False
        self.round_start = 0.0
        self.round_sent = 0
        self.next_probe = 0.0
        self.round_deadline = 0.0
        self.round_seqs: set[int] = set()
        self.answers: list[tuple[int, int, int, int]] = []  # (offset ns, half-width ns, delay ns, wall ns)
        self.silent_rounds = 0
        self.given_up = False
        self.answered_since_given_up = False
        self.given_up_at = 0.0
        self.resume_hold = 0.0  # how long after a give-up a frame of an answering guest resumes it
        self.out_of_step = False
        self.last: GuestClockOffset | None = None
        self.readings = 0
        self.probes_sent = 0
        self.probes_answered = 0
        self.ntp_last: tuple[int, float] | None = None  # (one-way offset ns, now)
        self.ntp_next = 0.0  # no NTP reading before this (monotonic s)

    def timer(self) -> float | None:
        if self.in_round:
            return min(self.next_probe, self.round_deadline)  # next_probe is inf once all are sent
        return self.due


@dataclass(slots=True)
class _Probe:
    guest: _Guest
    originate_ms: int
    sent_wall_ns: int
    sent_now: float


class GuestClockWatcher:
    """Reads the clock of each guest the gateway has seen. See the module docstring."""

    def __init__(self, gateway_mac: bytes, gateway_ip: bytes, *, interval: float, threshold: float = 0.1,
                 probes_per_reading: int = 4, probe_spacing: float = 0.01025, reply_timeout: float = 1.0,
                 first_probe_delay: float = 0.5, max_silent_rounds: int = 3, max_guests: int = 64,
                 identifier: int = DEFAULT_IDENTIFIER, ntp_agreement: float = 0.005,
                 ntp_drift_allowance: float = 0.001, ntp_transit: float = 0.004, max_offsets_kept: int = 4096) -> None:
        if len(gateway_mac) != 6 or len(gateway_ip) != 4:
            raise ValueError("gateway_mac must be 6 bytes and gateway_ip 4 bytes")
        if not interval > 0:
            raise ValueError(f"interval {interval!r}: probe a guest every so many seconds, above 0")
        if not threshold > 0:
            raise ValueError(f"threshold {threshold!r}: an offset in seconds, above 0")
        if probes_per_reading < 1 or max_silent_rounds < 1 or max_guests < 1:
            raise ValueError("probes_per_reading, max_silent_rounds and max_guests must be at least 1")
        if not (probe_spacing > 0 and reply_timeout > 0 and first_probe_delay >= 0):
            raise ValueError("probe_spacing and reply_timeout must be above 0, first_probe_delay at least 0")
        if not 0 <= identifier <= 0xFFFF:
            raise ValueError(f"identifier {identifier} is not 16 bits")
        self.gateway_mac = gateway_mac
        self.gateway_ip = gateway_ip
        self.interval = float(interval)
        self.threshold = float(threshold)
        self.probes_per_reading = probes_per_reading
        self.probe_spacing = probe_spacing
        self.reply_timeout = reply_timeout
        self.first_probe_delay = first_probe_delay
        self.max_silent_rounds = max_silent_rounds
        self.max_guests = max_guests
        self.identifier = identifier
        self.ntp_agreement_ns = round(ntp_agreement * _NS_PER_S)
        self.ntp_drift_allowance = ntp_drift_allowance
        self.ntp_transit_ns = round(ntp_transit * _NS_PER_S)
        self._guests: dict[tuple[Hashable, bytes, bytes], _Guest] = {}
        self._outstanding: dict[int, _Probe] = {}
        self._closed: OrderedDict[int, str] = OrderedDict()  # seq -> the drop reason of a reply to it now
        self._sequence = 0
        self._offsets: deque[GuestClockOffset] = deque()
        self._max_offsets_kept = max_offsets_kept
        #: set when a guest's timer may now be earlier than the last next_timer(): the caller re-reads it
        self.timer_moved = False
        #: timestamp replies dropped, by reason
        self.drops: Counter[str] = Counter()
        #: guest NTP requests that made no reading, by reason
        self.ntp_unused: Counter[str] = Counter()
        self.probes_sent = 0
        self.probes_answered = 0
        self.readings = 0
        self.guests_evicted = 0
        self.offsets_discarded = 0  # readings no one took before `max_offsets_kept` more came

    # -- guests ---------------------------------------------------------------------------

    def saw_guest(self, mac: bytes, ip: bytes, link: Hashable, now: float, *, lease: bool = False) -> None:
        """A frame from `mac` at `ip` arrived on `link` (or, `lease`, a DHCP lease was given)."""
        key = (link, mac, ip)
        guest = self._guests.get(key)
        if guest is not None:
            if guest.given_up and (lease or now - guest.last_seen > self._silence_to_resume()
                                   or (guest.probes_answered and now - guest.given_up_at >= guest.resume_hold)):
                # seen again after a silence of its own (a guest that was away), a new lease, or a guest
                # that has answered before speaking again (a VM resumed): try again
                guest.given_up = False
                guest.silent_rounds = 0
                guest.due = now + self.first_probe_delay
                self.timer_moved = True
            guest.last_seen = now
            return
        if len(self._guests) >= self.max_guests:
            self._evict_least_recently_seen()
        self._guests[key] = _Guest(mac, ip, link, now, now + self.first_probe_delay)
        self.timer_moved = True

    def _silence_to_resume(self) -> float:
        """How long a given-up guest must have sent nothing before a frame of its wakes the watcher again."""
        return max(60.0, self.interval)

    def _evict_least_recently_seen(self) -> None:
        key = min(self._guests, key=lambda k: self._guests[k].last_seen)
        self._forget(key)
        self.guests_evicted += 1

    def _forget(self, key: tuple[Hashable, bytes, bytes]) -> None:
        guest = self._guests.pop(key)
        for seq in guest.round_seqs:
            self._outstanding.pop(seq, None)
            self._close_probe(seq, DROP_LATE)

    def forget_link(self, link: Hashable) -> None:
        """`link` closed: its guests are no longer watched (probes for them are dropped)."""
        for key in [key for key in self._guests if key[0] == link]:
            self._forget(key)

    def guests(self) -> list[GuestClockStatus]:
        """The guests watched, with their latest reading."""
        return [GuestClockStatus(g.ip_text, g.mac_text, g.link, g.last.offset_s if g.last else None,
                                 g.last.error_s if g.last else None, g.last.source if g.last else None,
                                 g.last.time_unix_s if g.last else None, g.readings, g.probes_sent,
                                 g.probes_answered, g.given_up, g.out_of_step) for g in self._guests.values()]

    # -- timers and probes -------------------------------------------------------------------

    def next_timer(self) -> float | None:
        """When `on_timer` has work (monotonic seconds), or None if nothing is to be probed."""
        earliest = None
        for guest in self._guests.values():
            t = guest.timer()
            if t is not None and (earliest is None or t < earliest):
                earliest = t
        return earliest

    def on_timer(self, now: float, wall_ns: int) -> list[tuple[Hashable, bytes]]:
        """Do what is due at `now`: (link, frame) pairs to send, each a timestamp request for a guest on it.

        `wall_ns` is the host's Unix time in nanoseconds, read just before the frames are sent:
        it becomes their originate timestamp. Calling early is harmless (nothing is due).
        """
        frames: list[tuple[Hashable, bytes]] = []
        for guest in list(self._guests.values()):
            # a guest has at most probes_per_reading + 2 things due at once: the loop is bounded
            for _ in range(self.probes_per_reading + 2):
                t = guest.timer()
                if t is None or t > now:
                    break
                if not guest.in_round:
                    guest.in_round = True
                    guest.round_start = now
                    guest.round_sent = 0
                    guest.next_probe = now
                    guest.round_deadline = now + self.reply_timeout
                    guest.answers = []
                if guest.round_sent < self.probes_per_reading and guest.next_probe <= now:
                    frames.append((guest.link, self._probe(guest, now, wall_ns)))
                    guest.round_sent += 1
                    if guest.round_sent < self.probes_per_reading:
                        guest.next_probe = now + self.probe_spacing
                    else:
                        guest.next_probe = float("inf")
                    guest.round_deadline = now + self.reply_timeout
                elif guest.round_deadline <= now:
                    self._close_round(guest, now)
        return frames

    def _probe(self, guest: _Guest, now: float, wall_ns: int) -> bytes:
        self._sequence = seq = (self._sequence + 1) & 0xFFFF
        stale = self._outstanding.pop(seq, None)  # 65536 probes ago: its round is long closed
        if stale is not None:
            stale.guest.round_seqs.discard(seq)
        self._closed.pop(seq, None)
        originate_ms = (wall_ns // _NS_PER_MS) % icmp.MS_PER_DAY
        self._outstanding[seq] = _Probe(guest, originate_ms, wall_ns, now)
        guest.round_seqs.add(seq)
        guest.probes_sent += 1
        self.probes_sent += 1
        message = icmp.build_timestamp_request(self.identifier, seq, originate_ms)
        return (ethernet.HEADER.pack(guest.mac, self.gateway_mac, ethernet.ETHERTYPE_IPV4)
                + ipv4.build_header(self.gateway_ip, guest.ip, ipv4.PROTO_ICMP, len(message)) + message) \
            + bytes(ethernet.MIN_FRAME_LEN - ethernet.HEADER_LEN - ipv4.HEADER_LEN - len(message))

    def _close_probe(self, seq: int, reason: str) -> None:
        self._closed[seq] = reason
        self._closed.move_to_end(seq)
        while len(self._closed) > _CLOSED_PROBES_KEPT:
            self._closed.popitem(last=False)

    def _close_round(self, guest: _Guest, now: float) -> None:
        for seq in guest.round_seqs:
            self._outstanding.pop(seq, None)
            self._close_probe(seq, DROP_LATE)
        guest.round_seqs = set()
        guest.in_round = False
        answers = guest.answers
        guest.answers = []
        if answers:
            guest.silent_rounds = 0
            best = min(delay for _, _, delay, _ in answers)
            used = [a for a in answers if a[2] <= best + _NS_PER_MS]
            offset_ns = sum(a[0] for a in used) / len(used)
            error_ns = sum(a[1] for a in used) / len(used)
            wall_ns = max(a[3] for a in used)
            self._reading(guest, wall_ns, offset_ns, error_ns, SOURCE_ICMP)
            guest.due = max(guest.round_start + self.interval, now)
            return
        guest.silent_rounds += 1
        if guest.silent_rounds >= self.max_silent_rounds:
            guest.given_up = True
            guest.due = None
            guest.given_up_at = now
            if guest.answered_since_given_up:
                guest.resume_hold = 0.0
            else:
                guest.resume_hold = min(_MAX_RESUME_HOLD, max(self.interval, 2 * guest.resume_hold))
            guest.answered_since_given_up = False
        else:
            guest.due = max(guest.round_start + self.interval * 2 ** guest.silent_rounds, now)

    # -- replies and readings -------------------------------------------------------------------

    def receive_timestamp_reply(self, mac: bytes, ip: bytes, message: bytes, link: Hashable, now: float,
                                wall_ns: int | None) -> None:
        """An ICMP timestamp reply (type 14, checksum already checked) from `mac` at `ip` on `link`,
        arriving at `now` and host time `wall_ns`. A reading, or a drop counted in `drops`."""
        if len(message) < icmp.TIMESTAMP_MESSAGE_LEN:
            self.drops[DROP_SHORT] += 1
            return
        _type, code, _checksum, identifier, seq, originate, receive, transmit = \
            icmp.TIMESTAMP_MESSAGE.unpack_from(message)
        if code != 0:
            self.drops[DROP_CODE] += 1
            return
        probe = self._outstanding.get(seq) if identifier == self.identifier else None
        if probe is None:
            self.drops[self._closed.get(seq, DROP_UNSOLICITED) if identifier == self.identifier
                       else DROP_UNSOLICITED] += 1
            return
        guest = probe.guest
        if guest.mac != mac or guest.ip != ip or guest.link != link:
            self.drops[DROP_WRONG_GUEST] += 1
            return
        if originate != probe.originate_ms:
            self.drops[DROP_ORIGINATE] += 1
            return
        if (receive | transmit) & icmp.NON_STANDARD_TIMESTAMP:
            self.drops[DROP_NON_STANDARD] += 1
            return
        if receive >= icmp.MS_PER_DAY or transmit >= icmp.MS_PER_DAY:
            self.drops[DROP_BEYOND_DAY] += 1
            return
        if wall_ns is None:
            self.drops[DROP_NO_WALL_TIME] += 1
            return
        wall_elapsed = wall_ns - probe.sent_wall_ns
        if abs(wall_elapsed - (now - probe.sent_now) * _NS_PER_S) > _HOST_STEP_TOLERANCE_NS:
            self.drops[DROP_HOST_STEPPED] += 1
            return
        guest_held_ns = _wrap(transmit - receive, icmp.MS_PER_DAY) * _NS_PER_MS
        if guest_held_ns < -1000 * _NS_PER_MS:
            self.drops[DROP_TRANSMIT_BEFORE_RECEIVE] += 1
            return
        # the probe is answered: its sequence number takes no other reply
        del self._outstanding[seq]
        guest.round_seqs.discard(seq)
        self._close_probe(seq, DROP_DUPLICATE)
        guest.probes_answered += 1
        guest.answered_since_given_up = True
        self.probes_answered += 1
        # RFC 5905 §8: theta = ((T2 - T1) + (T3 - T4)) / 2, delta = (T4 - T1) - (T3 - T2); the guest's
        # T2 and T3 are truncated milliseconds, taken at the middle of theirs
        t2 = receive * _NS_PER_MS + _HALF_MS_NS
        t3 = transmit * _NS_PER_MS + _HALF_MS_NS
        theta = (_wrap(t2 - probe.sent_wall_ns, DAY_NS) + _wrap(t3 - wall_ns, DAY_NS)) // 2
        # the guest may have held the probe up to 1 ms less than its truncated stamps say: the
        # delay is counted from the least it could have held it (never understated)
        delay = max(0, wall_elapsed - max(0, guest_held_ns - _NS_PER_MS))
        guest.answers.append((theta, delay // 2 + _HALF_MS_NS, delay, wall_ns))
        if not guest.round_seqs and guest.round_sent >= self.probes_per_reading:
            self._close_round(guest, now)  # every probe of the round answered
            self.timer_moved = True

    def receive_reading(self, reading: GuestClockReading, link: Hashable, now: float, wall_ns: int | None) -> None:
        """A guest's own statement of its clock (an NTP request's transmit timestamp), arriving at host
        time `wall_ns`: a one-way reading when it agrees with the guest's previous one."""
        if wall_ns is None:
            self.ntp_unused[NTP_NO_WALL_TIME] += 1
            return
        guest = self._guests.get((link, reading.guest.mac, reading.guest.ip))
        if guest is None:
            self.ntp_unused[NTP_UNKNOWN_GUEST] += 1
            return
        one_way = _wrap(reading.guest_time_ns - wall_ns, reading.period_ns)
        previous, guest.ntp_last = guest.ntp_last, (one_way, now)
        if previous is None:
            self.ntp_unused[NTP_FIRST] += 1
            return
        previous_one_way, previous_now = previous
        spread = abs(one_way - previous_one_way)
        if spread > self.ntp_agreement_ns + self.ntp_drift_allowance * max(0.0, now - previous_now) * _NS_PER_S:
            self.ntp_unused[NTP_DISAGREE] += 1
            return
        if now < guest.ntp_next:
            self.ntp_unused[NTP_TOO_SOON] += 1
            return
        guest.ntp_next = now + self.interval
        # guest's send time minus host's arrival time = theta - delay, delay >= 0: the higher of the two
        # was the less delayed (what the guest's clock moved between them is within their spread)
        half_transit = self.ntp_transit_ns // 2
        best = max(one_way, previous_one_way)
        self._reading(guest, wall_ns, best + half_transit, half_transit + spread, reading.source)

    def _reading(self, guest: _Guest, wall_ns: int, offset_ns: float, error_ns: float, source: str) -> None:
        offset_s = offset_ns / _NS_PER_S
        crossing = None
        if not guest.out_of_step and abs(offset_s) > self.threshold:
            guest.out_of_step = True
            crossing = "out"
        elif guest.out_of_step and abs(offset_s) <= self.threshold / 2:
            guest.out_of_step = False
            crossing = "back"
        offset = GuestClockOffset(wall_ns / _NS_PER_S, guest.ip_text, guest.mac_text, offset_s,
                                  error_ns / _NS_PER_S, source, guest.link, crossing)
        guest.last = offset
        guest.readings += 1
        self.readings += 1
        if len(self._offsets) >= self._max_offsets_kept:
            self._offsets.popleft()
            self.offsets_discarded += 1
        self._offsets.append(offset)

    def take_offsets(self) -> list[GuestClockOffset]:
        """The readings made since the last call, oldest first."""
        offsets, self._offsets = list(self._offsets), deque()
        return offsets

    @property
    def has_offsets(self) -> bool:
        return bool(self._offsets)

    def counters(self) -> dict[str, Any]:
        """The watcher's figures: probes, readings and each guest's latest reading."""
        guests: dict[str, dict[str, Any]] = {}
        for status in self.guests():
            name = status.guest_ip if status.guest_ip not in guests else f"{status.guest_ip} ({status.guest_mac})"
            guests[name] = {
                "mac": status.guest_mac, "offset_s": status.offset_s, "error_s": status.error_s,
                "source": status.source, "time_unix_s": status.time_unix_s, "readings": status.readings,
                "probes_sent": status.probes_sent, "probes_answered": status.probes_answered,
                "given_up": status.given_up, "out_of_step": status.out_of_step,
            }
        return {
            "interval_s": self.interval,
            "threshold_s": self.threshold,
            "probes_sent": self.probes_sent,
            "probes_answered": self.probes_answered,
            "replies_dropped": sum(self.drops.values()),
            "readings": self.readings,
            "ntp_requests_unused": dict(self.ntp_unused),
            "guests_evicted": self.guests_evicted,
            "guests": guests,
        }


def _wrap(value: int, period: int) -> int:
    """`value` reduced modulo `period` into [-period/2, period/2)."""
    half = period // 2
    return (value + half) % period - half
