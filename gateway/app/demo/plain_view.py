"""`--no-live` (and stdout not a terminal): one plain line per second, for logs and CI."""

from __future__ import annotations

import sys
from typing import TextIO

from gateway.app.demo.state import DemoState
from gateway.app.demo.summary import clock_rows, gateway_rows, headline

__all__ = ["PlainView"]


class PlainView:
    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self._events_shown = 0
        self._guest_shown = ""

    def __enter__(self) -> "PlainView":
        return self

    def __exit__(self, *exc: object) -> None:
        self.out.flush()

    def update(self, state: DemoState) -> None:
        for number, line in state.event_lines():
            if number > self._events_shown:
                print(f"hostclock demo: {line}", file=self.out)
        self._events_shown = state.event_count
        if state.guest != self._guest_shown:
            print(f"hostclock demo: guest: {state.guest}", file=self.out)
            self._guest_shown = state.guest
        parts = [headline(state)]
        parts += [f"{label} {text}" for label, text in clock_rows(state)]
        parts += [f"{label}: {text}" for label, text in gateway_rows(state)]
        print(" | ".join(parts), file=self.out, flush=True)
