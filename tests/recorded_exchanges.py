"""The live NTP exchanges a capture recorded, read with scapy (never with hostclock's own reader).

`hostclock run --pcap` records the guest's link with its own clock reads: the request when
the gateway read it, the reply when it wrote it. A recorded reply carries the live
responder's receive and transmit timestamps, so each recorded exchange is one measurement of
the served clock against the recording clock (here: the same host clock), over the gateway's
inner legs (gateway -> responder -> gateway):

    t1 = the request's capture time,  t2, t3 = the reply's receive and transmit timestamps,
    t4 = the reply's capture time;   offset = ((t2 - t1) + (t3 - t4)) / 2 (RFC 5905 §8)

With one clock t1 <= t2 <= t3 <= t4 must hold and |offset| is bounded by how asymmetric the
two legs were; a served clock that is off by X shows as X.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

from scapy.layers.inet import IP, UDP
from scapy.utils import PcapReader

GATEWAY_IP = "192.168.65.1"
_NTP_UNIX = 2_208_988_800


def _ntp_ns(stamp: bytes) -> int:
    value = int.from_bytes(stamp, "big")
    seconds, fraction = divmod(value, 2**32)
    return (seconds - _NTP_UNIX) * 1_000_000_000 + (fraction * 1_000_000_000 >> 32)


@dataclasses.dataclass(frozen=True)
class RecordedExchange:
    t1: int  # ns, Unix
    t2: int
    t3: int
    t4: int

    @property
    def offset_s(self) -> float:
        return ((self.t2 - self.t1) + (self.t3 - self.t4)) / 2e9

    @property
    def delay_s(self) -> float:
        return ((self.t4 - self.t1) - (self.t3 - self.t2)) / 1e9

    @property
    def causal(self) -> bool:
        return self.t1 <= self.t2 <= self.t3 <= self.t4


def recorded_exchanges(path) -> list[RecordedExchange]:
    """Every NTP request to the gateway in the capture that has a recorded mode-4 reply echoing it."""
    requests: dict[bytes, int] = {}
    exchanges = []
    with PcapReader(str(path)) as packets:
        for packet in packets:
            if IP not in packet or UDP not in packet:
                continue
            captured_ns = int(Fraction(str(packet.time)) * 1_000_000_000)
            payload = bytes(packet[UDP].payload)
            if len(payload) < 48:
                continue
            mode = payload[0] & 7
            if packet[IP].dst == GATEWAY_IP and packet[UDP].dport == 123 and mode == 3:
                requests[payload[40:48]] = captured_ns
            elif packet[IP].src == GATEWAY_IP and packet[UDP].sport == 123 and mode == 4:
                sent_ns = requests.pop(payload[24:32], None)
                if sent_ns is not None:
                    exchanges.append(RecordedExchange(sent_ns, _ntp_ns(payload[32:40]),
                                                      _ntp_ns(payload[40:48]), captured_ns))
    return exchanges
