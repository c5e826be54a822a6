"""The SNTP server logic, sans-IO: one request's bytes in, one reply's bytes (or nothing) out.

RFC 4330 §6 (SNTP Server Operations; the brief calls it §5, which is the
client side) and RFC 5905's server mode. No clock is read and no socket is
touched: the caller passes the receive timestamp and a callable that reads the
clock, which is called once, as the last step, for the transmit timestamp.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

from gateway.core.addresses import parse_ipv4
from plugins.ntp.config import NtpConfig

from plugins.ntp.drops import SntpDrop
from plugins.ntp.kernel_state import KernelTimeState, LeapPending
from plugins.ntp.packet import (
    HEADER, HEADER_LEN, LI_DELETE_SECOND, LI_INSERT_SECOND, LI_NO_WARNING, LI_UNSYNCHRONISED,
    MODE_BROADCAST, MODE_CLIENT, MODE_CONTROL, MODE_PRIVATE, MODE_RESERVED, MODE_SERVER,
    MODE_SYMMETRIC_ACTIVE, MODE_SYMMETRIC_PASSIVE, ORIGINATE_OFFSET, SUPPORTED_VERSIONS, TIMESTAMP, TRANSMIT_OFFSET, WORD,
)
from plugins.ntp.timestamps import NTP_SHORT_MAX, NTP_TIMESTAMP_MAX, seconds_to_ntp_short

__all__ = ["ServerState", "Responder", "parse_refid", "UNSYNCHRONISED_ROOT_DELAY",
           "UNSYNCHRONISED_ROOT_DISPERSION"]

#: chrony's values while unsynchronised: root delay and root dispersion of 1.0 s (16.16)
UNSYNCHRONISED_ROOT_DELAY = 0x00010000
UNSYNCHRONISED_ROOT_DISPERSION = 0x00010000

_LEAP_INDICATOR = {
    LeapPending.NONE: LI_NO_WARNING,
    LeapPending.INSERT: LI_INSERT_SECOND,
    LeapPending.DELETE: LI_DELETE_SECOND,
}

# RFC 4330 §6: "If the Mode field of the request is 3 (client), the reply is set to 4
# (server). If this field is set to 1 (symmetric active), the reply is set to 2
# (symmetric passive). ... For any other value in the Mode field, the request is discarded."
_REPLY_MODE = {MODE_CLIENT: MODE_SERVER, MODE_SYMMETRIC_ACTIVE: MODE_SYMMETRIC_PASSIVE}
_MODE_DROP = {
    MODE_RESERVED: SntpDrop.MODE_RESERVED,
    MODE_SYMMETRIC_PASSIVE: SntpDrop.MODE_SYMMETRIC_PASSIVE,
    MODE_SERVER: SntpDrop.MODE_SERVER,
    MODE_BROADCAST: SntpDrop.MODE_BROADCAST,
    MODE_CONTROL: SntpDrop.MODE_CONTROL,
    MODE_PRIVATE: SntpDrop.MODE_PRIVATE,
}


def parse_refid(text: str) -> bytes:
    """The 4-byte reference ID: an IPv4 address, or up to 4 ASCII characters padded with NULs.

    RFC 5905 §7.3: for stratum 1 "a four-octet, left-justified, zero-padded
    ASCII string"; above stratum 1 (secondary servers) "the reference
    identifier of the server", an IPv4 address.
    """
    try:
        return parse_ipv4(text)
    except ValueError:
        pass
    if not (1 <= len(text) <= 4 and text.isascii()):
        raise ValueError(f"refid {text!r}: give an IPv4 address or up to 4 ASCII characters")
    return text.encode("ascii").ljust(4, b"\0")


@dataclass(frozen=True, slots=True)
class ServerState:
    """Everything in a reply that does not depend on the request or on the time of the reply.

    Fields hold wire values: root delay and dispersion in the 16.16 short
    format, the reference time as a 64-bit NTP timestamp.
    """

    leap: int
    stratum: int
    refid: bytes
    precision: int
    root_delay: int
    root_dispersion: int
    reference_ntp: int

    def __post_init__(self) -> None:
        if not 0 <= self.leap <= 3:
            raise ValueError(f"leap indicator {self.leap}: must be 0..3")
        if not 0 <= self.stratum <= 255:
            raise ValueError(f"stratum {self.stratum}: must fit in one byte (0..255)")
        if not isinstance(self.refid, bytes) or len(self.refid) != 4:
            raise ValueError(f"refid {self.refid!r}: must be exactly 4 bytes")
        if not -128 <= self.precision <= 127:
            raise ValueError(f"precision {self.precision}: must fit in a signed byte")
        for name in ("root_delay", "root_dispersion"):
            if not 0 <= getattr(self, name) <= NTP_SHORT_MAX:
                raise ValueError(f"{name} {getattr(self, name)}: must be a 32-bit 16.16 value")
        if not 0 <= self.reference_ntp <= NTP_TIMESTAMP_MAX:
            raise ValueError(f"reference_ntp {self.reference_ntp}: must be a 64-bit NTP timestamp")

    @property
    def synchronised(self) -> bool:
        return self.leap != LI_UNSYNCHRONISED

    @classmethod
    def from_config(cls, config: NtpConfig, kernel: KernelTimeState, *,
                    precision: int, reference_ntp: int) -> "ServerState":
        """The state to serve, from the configuration and what the kernel says of the host clock.

        By default the host clock is served as synchronised whatever the
        kernel says (the guest must follow its host even when the host is off
        real time): LI announces the kernel's pending leap second (insert 1,
        delete 2, else 0), stratum and refid come from the configuration, the
        root delay is 0 and the root dispersion is the clock's reading error
        2**precision (the host clock is the reference; RFC 4330 §6 sets both
        to 0 for a primary server, the reading error is what serving it adds).

        With `config.report_unsync` and a kernel that says unsynchronised,
        answer chrony's way: LI=3, stratum 0 on the wire, refid 0, reference
        time 0, root delay and dispersion 1.0 s (RFC 4330 §6: "If the server
        has never synchronized to a reference source, the LI field is set to 3
        ... If the server is not synchronized, the Stratum field is set to
        zero"). Clients that check (ntpdig, chronyd) then refuse the time.

        `reference_ntp` is the reference time, RFC 5905 §7.3 "Time when the
        system clock was last set or corrected". The server passes the time
        this state was last refreshed from the kernel (at most a second old
        while requests arrive): the host clock is the reference, and that is
        the last moment it was confirmed as such.
        """
        if config.report_unsync and not kernel.synchronised:
            return cls(leap=LI_UNSYNCHRONISED, stratum=0, refid=bytes(4), precision=precision,
                       root_delay=UNSYNCHRONISED_ROOT_DELAY,
                       root_dispersion=UNSYNCHRONISED_ROOT_DISPERSION, reference_ntp=0)
        return cls(leap=_LEAP_INDICATOR[kernel.leap], stratum=config.stratum,
                   refid=parse_refid(config.refid), precision=precision, root_delay=0,
                   root_dispersion=seconds_to_ntp_short(2.0 ** precision),
                   reference_ntp=reference_ntp)


class Responder:
    """Turns one SNTP request into its reply; malformed or unanswerable requests are counted in `drops`.

    Choices, each against a rule of RFC 4330 §6 or a real server:

    * Length: at least the 48-byte header and a multiple of 4 bytes. Longer
      requests carry RFC 7822 extension fields or a MAC (68 bytes: key ID +
      MD5; 72: key ID + SHA-1). They are answered with a plain 48-byte
      unauthenticated reply, as busybox and OpenNTPD do (chrony drops a
      68-byte request with key ID 0): there is no key to check here, a client
      that authenticates will refuse the reply itself, and the reply is never
      longer than the request, so nothing is amplified.
    * Mode 3 -> 4 and mode 1 -> 2, as RFC 4330 §6 says. Mode 1 is answered
      because the answer is stateless and the same size as the request (no
      association is mobilised, unlike ntpd's ephemeral passive peers). That
      is when the responder is queried directly (`hostclock serve`, or a host
      process sending to the embedded responder's loopback port), not through
      the gateway: the gateway's time service (plugins/ntp/time_service.py)
      forwards client requests (mode 3) only, because symmetric mode through
      a NAT'd per-flow socket makes no sense, so a guest must name the gateway
      with `server`, not `peer`. Every other mode is dropped, modes 6 and 7
      above all (CVE-2013-5211).
    * Version 1..4 is copied into the reply; anything else is dropped.
    * Poll is copied. The request's transmit timestamp is copied byte for
      byte into the originate field and never interpreted (chronyd sends a
      random one, ntpdig its real time with LI=3).
    """

    __slots__ = ("state", "drops")

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.drops: Counter[str] = Counter()

    def respond(self, request: bytes, receive_ntp: int, read_clock_ntp: Callable[[], int]) -> bytes | None:
        """The 48-byte reply to `request`, or None (the reason counted in `drops`).

        `receive_ntp` is when the request arrived (64-bit NTP timestamp);
        `read_clock_ntp` is called exactly once, after everything else is
        packed, and its value patched in at offset 40 as the transmit timestamp
        (RFC 4330 §6: "the time of day when the message is sent").
        """
        length = len(request)
        if length < HEADER_LEN:
            self.drops[SntpDrop.TOO_SHORT] += 1
            return None
        if length % WORD:
            self.drops[SntpDrop.NOT_WORD_ALIGNED] += 1
            return None
        first = request[0]
        reply_mode = _REPLY_MODE.get(first & 0x7)
        if reply_mode is None:
            self.drops[_MODE_DROP[first & 0x7]] += 1
            return None
        version = (first >> 3) & 0x7
        if version not in SUPPORTED_VERSIONS:
            self.drops[SntpDrop.BAD_VERSION] += 1
            return None
        state = self.state
        reply = bytearray(HEADER_LEN)
        HEADER.pack_into(reply, 0, (state.leap << 6) | (version << 3) | reply_mode, state.stratum,
                         0, state.precision, state.root_delay, state.root_dispersion, state.refid,
                         state.reference_ntp, 0, receive_ntp, 0)
        reply[2] = request[2]  # poll, copied intact
        reply[ORIGINATE_OFFSET:ORIGINATE_OFFSET + 8] = request[TRANSMIT_OFFSET:TRANSMIT_OFFSET + 8]
        TIMESTAMP.pack_into(reply, TRANSMIT_OFFSET, read_clock_ntp())
        return bytes(reply)
