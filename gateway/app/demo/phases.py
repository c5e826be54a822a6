"""The demo's phases over time: which one it is in now, and when each began and ended.

Times are seconds since the demo started (its monotonic clock), as in the
picture's x axis.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Phase", "Phases"]


@dataclass(slots=True)
class Phase:
    name: str
    start_s: float
    end_s: float | None = None


class Phases:
    def __init__(self) -> None:
        self.all: list[Phase] = []

    def begin(self, name: str, at_s: float) -> None:
        """Phase `name` starts at `at_s`; the current one (if any) ends there."""
        if self.all and self.all[-1].end_s is None:
            self.all[-1].end_s = at_s
        self.all.append(Phase(name, at_s))

    def end(self, at_s: float) -> None:
        if self.all and self.all[-1].end_s is None:
            self.all[-1].end_s = at_s

    @property
    def current(self) -> str:
        return self.all[-1].name if self.all and self.all[-1].end_s is None else ""
