"""What the demo knows at a moment, which the views show: readings, phases, the gateway's figures.

The guest and the gateway write into one `DemoState`; the live view and the
plain view only read it, once a second.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from gateway.app.demo.phases import Phases
from gateway.app.demo.readings import Reading

__all__ = ["DemoState"]

#: readings kept for the views and the picture (about a day at a few readings per second)
MAX_READINGS = 200_000
MAX_EVENTS = 6


@dataclass
class DemoState:
    #: "a network namespace on tap hcd1a2b3c" / "a VM under QEMU (KVM)"
    guest: str
    duration_s: float | None
    started_unix: float = field(default_factory=time.time)
    started_monotonic: float = field(default_factory=time.monotonic)
    phases: Phases = field(default_factory=Phases)
    readings: deque[Reading] = field(default_factory=lambda: deque(maxlen=MAX_READINGS))
    #: the latest reading from each source
    latest: dict[str, Reading] = field(default_factory=dict)
    #: the gateway's figures (`ObservedGateway.figures()`), refreshed by the view's tick
    figures: dict[str, Any] = field(default_factory=dict)
    #: the last few log lines (attached, detached, the guest's console milestones)
    #: (number, monotonic time, text): shown against the timeline's t = 0 of the moment, so that what
    #: happened before the guest (re)started shows as negative seconds
    events: deque[tuple[int, float, str]] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    #: how many events there have been (the number of the latest)
    event_count: int = 0
    #: what the demo is doing now, when it is not plain running: "booting the VM", ...
    status: str = ""
    #: the guest image's build so far: (step, total, what was done), and whether it is over
    build_steps: list[tuple[int, int, str]] = field(default_factory=list)
    build_done: bool = False

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_monotonic

    def since_start(self, reading: Reading) -> float:
        return reading.time_unix_s - self.started_unix

    def add(self, reading: Reading) -> None:
        self.readings.append(reading)
        self.latest[reading.source] = reading

    def event(self, line: str) -> None:
        self.event_count += 1
        self.events.append((self.event_count, time.monotonic(), line))

    def event_lines(self) -> list[tuple[int, str]]:
        """(number, '  12.3 s  text') of the events kept, oldest first."""
        return [(number, f"{_not_minus_zero(at - self.started_monotonic):6.1f} s  {text}")
                for number, at, text in self.events]


def _not_minus_zero(seconds: float) -> float:
    return 0.0 if -0.05 < seconds < 0.05 else seconds
