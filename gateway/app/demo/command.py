"""`hostclock demo`: check the machine, start the gateway in-process and the guest, show it,
stop everything on `q`, Ctrl-C, SIGTERM or `--duration`, then write DIR/demo.csv and DIR/demo.png.

Order of teardown: the guest's tasks and the gateway are cancelled first (the
gateway closes its TAP or socket file), then what the demo made on the machine
(namespace, VM, private directory) is removed, newest first, with the signals
still held so that a second Ctrl-C cannot interrupt it; only then are the
output files finished.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from typing import Any

import trio

from gateway.app.config import Config, ConfigError
from gateway.app.demo.errors import DemoFailed
from gateway.app.demo.observed import ObservedGateway
from gateway.app.demo.preflight import DemoUnavailable, check_netns_demo
from gateway.app.demo.readings import Reading, ReadingsCsv
from gateway.app.demo.resources import DemoNames, Resources, sweep_leftovers
from gateway.app.demo.state import DemoState
from gateway.core.addresses import parse_mac
from gateway.edges.transports import make_transport

__all__ = ["run_demo"]

log = logging.getLogger("hostclock.demo")

#: how often the view is redrawn
REFRESH_S = 1.0


async def run_demo(args: argparse.Namespace, config: Config) -> int:
    live = args.live and sys.stdout.isatty()
    if args.guest == "netns" and args.pause_at is not None:
        raise ConfigError("--pause-at stops a VM: it needs the VM guest (leave out --guest netns)")
    try:
        if args.guest == "netns":
            tools = check_netns_demo()
        else:
            from gateway.app.demo.vm_guest import check_vm_machine

            tools = check_vm_machine(rebuild=args.rebuild)
    except DemoUnavailable as e:
        raise DemoFailed(str(e)) from None
    out_dir = _make_out_dir(args.out)
    for left in sweep_leftovers():
        log.info("removed %s, left by a demo that was killed", left)
    resources = Resources()
    names = DemoNames()
    state = DemoState(guest="starting", duration_s=args.duration)
    readings = ReadingsCsv(os.path.join(out_dir, "demo.csv"))
    view = _make_view(live)
    stopped_by = "the duration elapsed"
    # SIGHUP too: a closed terminal (or tmux kill-session) must tear down like Ctrl-C
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals, _LogsInto(state, live):
        try:
            with view:
                async with trio.open_nursery() as nursery:
                    def stop(why: str) -> None:
                        nonlocal stopped_by
                        stopped_by = why
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(_stop_on_signal, signals, stop)
                    if hasattr(view, "watch_keys"):
                        nursery.start_soon(view.watch_keys, lambda: stop("q pressed"))
                    gateway_and_mac: tuple[Any, bytes | None] = (None, None)
                    nursery.start_soon(_refresh, view, state, lambda: gateway_and_mac)

                    def on_reading(reading: Reading) -> None:
                        state.add(reading)
                        readings.write(reading)

                    workdir = resources.private_dir()
                    if args.guest == "netns":
                        from gateway.app.demo.netns_guest import NetnsGuest

                        gateway = ObservedGateway(config, make_transport("--tap", names.tap, config.gateway),
                                                  on_guest_clock=lambda offset: on_reading(Reading.of_watcher(offset)))
                        gateway_and_mac = (gateway, None)
                        state.event((await nursery.start(gateway.run)).removeprefix("hostclock: "))
                        guest = NetnsGuest(names, resources, workdir, tools, on_reading, state.event)
                        state.guest = guest.description
                        _restart_clock(state)
                        await nursery.start(guest.run)
                        gateway_and_mac = (gateway, parse_mac(guest.mac))
                        state.phases.begin("query-mode clients every second (one host clock: offset ≈ 0)", 0.0)
                    else:
                        from gateway.app.demo.vm_guest import VmGuest

                        guest = VmGuest(args, config, names, resources, workdir, tools, state, on_reading, view)
                        gateway = await nursery.start(guest.run)
                        gateway_and_mac = (gateway, guest.mac_bytes)
                    if args.duration is not None:
                        nursery.cancel_scope.deadline = state.started_monotonic - time.monotonic() \
                            + trio.current_time() + args.duration
        finally:
            state.phases.end(state.elapsed_s())
            resources.close()
            readings.close()
    return _finish(out_dir, readings, state, stopped_by, resources)


def _restart_clock(state: DemoState) -> None:
    """t = 0 of the timeline is when the guest starts."""
    state.started_unix, state.started_monotonic = time.time(), time.monotonic()


async def _stop_on_signal(signals: Any, stop: Any) -> None:
    async for signum in signals:
        stop(f"{signal.Signals(signum).name} received")
        return


async def _refresh(view: Any, state: DemoState, gateway_and_mac: Any) -> None:
    while True:
        gateway, mac = gateway_and_mac()
        if gateway is not None:
            state.figures = gateway.figures(mac)
        view.update(state)
        await trio.sleep(REFRESH_S)


def _make_view(live: bool) -> Any:
    if live:
        from gateway.app.demo.live_view import LiveView

        return LiveView()
    from gateway.app.demo.plain_view import PlainView

    return PlainView()


def _make_out_dir(out: str | None) -> str:
    if out is not None:
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as e:
            raise DemoFailed(f"--out {out}: {e.strerror}") from None
        return out
    stem = time.strftime("hostclock-demo-%Y%m%d-%H%M%S")
    for n in range(1, 100):
        path = stem if n == 1 else f"{stem}-{n}"
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
        except OSError as e:
            raise DemoFailed(f"cannot make {path} in {os.getcwd()}: {e.strerror} (choose --out DIR)") from None
    raise DemoFailed(f"too many {stem}-* directories here: choose --out DIR")


def _finish(out_dir: str, readings: ReadingsCsv, state: DemoState, stopped_by: str, resources: Resources) -> int:
    from gateway.app.demo.picture import write_picture

    print(f"hostclock demo: stopped ({stopped_by}); everything it made is removed"
          + ("" if not resources.problems else f" except: {'; '.join(resources.problems)}"))
    print(f"hostclock demo: {readings.path} ({readings.rows} readings)")
    png = os.path.join(out_dir, "demo.png")
    why_not = write_picture(png, list(state.readings), state.phases.all, started_unix=state.started_unix,
                            title=f"hostclock demo: {state.guest}")
    print(f"hostclock demo: {png}" if why_not is None else f"hostclock demo: no picture: {why_not}")
    return 0 if not resources.problems else 1


class _LogsInto:
    """While the live view runs, log lines go into the view's events, not under its feet on stderr."""

    def __init__(self, state: DemoState, live: bool) -> None:
        self.state, self.live = state, live
        self._saved: list[logging.Handler] = []

    def __enter__(self) -> "_LogsInto":
        if self.live:
            root = logging.getLogger()
            self._saved = root.handlers[:]
            state = self.state

            class ToEvents(logging.Handler):
                def emit(self, record: logging.LogRecord) -> None:
                    state.event(record.getMessage())

            root.handlers = [ToEvents()]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            logging.getLogger().handlers = self._saved
