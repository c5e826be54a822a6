"""The live terminal view (rich), redrawn about once a second; `q` stops the demo.

The keyboard is read in cbreak mode (one key at a time, no echo, signals kept, so
Ctrl-C still sends SIGINT), and the terminal's mode is put back on exit.
"""

from __future__ import annotations

import os
import sys
import termios
import tty
from collections.abc import Callable

import trio
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from gateway.app.demo.state import DemoState
from gateway.app.demo.summary import clock_rows, gateway_rows, headline
from gateway.app.demo.terminal_chart import chart_lines

__all__ = ["LiveView"]

#: the chart shows at most this many seconds (the newest at the right)
CHART_SPAN_S = 180.0
#: the chart's scale fits the readings of the current phase, at most this many seconds back
SCALE_WINDOW_S = 30.0


class LiveView:
    def __init__(self) -> None:
        self.console = Console()
        self._live = Live(console=self.console, auto_refresh=False, transient=False,
                          redirect_stdout=True, redirect_stderr=True)
        self._saved_tty: list | None = None

    def __enter__(self) -> "LiveView":
        if sys.stdin.isatty():
            fd = sys.stdin.fileno()
            self._saved_tty = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._live.__exit__(None, None, None)
        finally:
            if self._saved_tty is not None:
                termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved_tty)
                self._saved_tty = None

    def update(self, state: DemoState) -> None:
        self._live.update(self.render(state), refresh=True)

    async def watch_keys(self, on_quit: Callable[[], None]) -> None:
        """Call `on_quit` when `q` is pressed (nothing to do when stdin is not a terminal)."""
        if self._saved_tty is None:
            return
        fd = sys.stdin.fileno()
        while True:
            await trio.lowlevel.wait_readable(fd)
            keys = os.read(fd, 64)
            if not keys:
                return  # the terminal went away
            if b"q" in keys.lower():
                on_quit()
                return

    @staticmethod
    def _build_progress(state: DemoState) -> Table:
        """A bar per step of the image build (done ones full), and one for the whole."""
        steps = Table.grid(padding=(0, 1))
        steps.add_column(no_wrap=True)
        steps.add_column(overflow="ellipsis", no_wrap=True)
        total = state.build_steps[-1][1] if state.build_steps else 6
        done = state.build_steps[-1][0] if state.build_steps else 0
        for step, of, message in state.build_steps:
            steps.add_row(ProgressBar(total=1, completed=1, width=12), f"[{step}/{of}] {message}")
        if not state.build_done:
            steps.add_row(ProgressBar(total=1, completed=0, width=12, pulse=True), f"[{done + 1}/{total}] working")
        steps.add_row(ProgressBar(total=total, completed=done, width=12), "the guest image")
        return steps

    def render(self, state: DemoState) -> Group:
        width = max(40, min(self.console.width, 120))
        clock = Table.grid(padding=(0, 2))
        clock.add_column(style="bold cyan", no_wrap=True)
        clock.add_column()
        for label, text in clock_rows(state):
            clock.add_row(label, text)
        points = [(state.since_start(r), r.offset_s) for r in state.readings]
        # the scale: the readings of the phase the latest reading is in, at most 30 s before it (while
        # the VM is stopped there are none new: the scale stays that of the phase before)
        last_t = points[-1][0] if points else 0.0
        phase_start = max((p.start_s for p in state.phases.all if p.start_s <= last_t), default=0.0)
        scale_from = max(phase_start, last_t - SCALE_WINDOW_S)
        chart = Text("\n".join(chart_lines(points, now_s=state.elapsed_s(), width=width - 16, height=9,
                                       span_s=CHART_SPAN_S, scale_from_s=scale_from)))
        gateway = Table.grid(padding=(0, 2))
        gateway.add_column(style="bold green", no_wrap=True)
        gateway.add_column()
        for label, text in gateway_rows(state):
            gateway.add_row(label, text)
        parts = [
            Text.assemble(("hostclock demo", "bold"), f" · guest: {state.guest}"),
            Text(headline(state), style="yellow"),
        ]
        if state.status.startswith("preparing") and not state.build_done:
            parts.append(Panel(self._build_progress(state), title="guest image", title_align="left", width=width))
        parts += [
            Panel(Group(clock, chart), title="guest clock − host clock", title_align="left", width=width),
            Panel(gateway, title="gateway", title_align="left", width=width),
        ]
        if state.events:
            parts.append(Text("\n".join(line for _, line in state.event_lines()), style="dim", no_wrap=True,
                              overflow="ellipsis"))
        parts.append(Text("q or Ctrl-C stops the demo", style="dim"))
        return Group(*parts)
