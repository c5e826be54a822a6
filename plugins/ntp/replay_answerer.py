"""The SNTP responder answering in-process for `hostclock replay`: deterministic, from the replay clock.

A request that arrives at time t on the replay clock gets receive timestamp
T2 = t and transmit timestamp T3 = t + `PROCESSING_DELAY_NS` (10 µs). The
responder's state is fixed so that a replay is byte-identical run after run:
synchronised, no leap second, precision 2^`REPLAY_PRECISION`, the reference
time refreshed (as the live server does) when a request comes a second or more
after the last refresh.
"""

from __future__ import annotations

from gateway.core.flows import Flow

from plugins.ntp.config import NtpConfig
from plugins.ntp.kernel_state import KernelTimeState, LeapPending
from plugins.ntp.responder import Responder, ServerState
from plugins.ntp.timestamps import unix_ns_to_ntp

__all__ = ["EmbeddedResponder", "PROCESSING_DELAY_NS", "REPLAY_PRECISION"]

#: the embedded responder's transmit timestamp comes this long after its receive timestamp
PROCESSING_DELAY_NS = 10_000
#: the precision the replayed responder announces (about 1 µs), fixed for reproducible output
REPLAY_PRECISION = -20

_NS_PER_S = 1_000_000_000
#: the host clock as the replayed responder serves it: synchronised, no leap second pending
_SYNCHRONISED = KernelTimeState(synchronised=True, leap=LeapPending.NONE, maxerror_us=None, esterror_us=None)


class EmbeddedResponder:
    """The SNTP responder (`plugins.ntp.Responder`) answering in-process from the replay clock."""

    description = "embedded"

    def __init__(self, config: NtpConfig) -> None:
        self._config = config
        self.responder = Responder(self._state(reference_ns=0))
        self.drops = self.responder.drops
        self._refreshed_ns: int | None = None

    def _state(self, reference_ns: int) -> ServerState:
        return ServerState.from_config(self._config, _SYNCHRONISED, precision=REPLAY_PRECISION,
                                       reference_ntp=unix_ns_to_ntp(reference_ns))

    def answer(self, flow: Flow, request: bytes, now_ns: int) -> tuple[bytes | None, int]:
        if self._refreshed_ns is None or not -_NS_PER_S < now_ns - self._refreshed_ns < _NS_PER_S:
            # as the live server: the reference time is when the state was last refreshed
            self.responder.state = self._state(reference_ns=now_ns)
            self._refreshed_ns = now_ns
        transmit_ntp = unix_ns_to_ntp(now_ns + PROCESSING_DELAY_NS)
        reply = self.responder.respond(request, unix_ns_to_ntp(now_ns), lambda: transmit_ntp)
        return reply, PROCESSING_DELAY_NS

    def flows_closed(self, flows: list[Flow]) -> None:
        pass

    def close(self) -> None:
        pass
