"""The command line of `hostclock demo` (argparse only: building the parser imports nothing else)."""

from __future__ import annotations

import argparse

__all__ = ["add_demo_arguments", "DEFAULT_SYNC_AFTER", "DEFAULT_PAUSE_FOR", "DEFAULT_TICK"]

#: seconds the VM guest runs with no time sync before its chronyd starts
DEFAULT_SYNC_AFTER = 30.0
#: seconds `--pause-at` stops the VM for (what a short host sleep does)
DEFAULT_PAUSE_FOR = 30.0
#: the guest kernel's tick (USER_HZ 100: 10000 is nominal, one unit is 100 ppm): 9993 is about
#: -700 ppm, the drift Docker's VM showed
DEFAULT_TICK = 9993


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number of seconds")
    return value


def _tick(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    # adjtimex(2): the kernel accepts a tick within 10 % of nominal (9000..11000 at USER_HZ 100)
    if not 9000 <= value <= 11000:
        raise argparse.ArgumentTypeError(f"{value}: the kernel accepts a tick of 9000 to 11000 (10000 is nominal)")
    return value


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--guest", choices=("vm", "netns"), default="vm",
                        help="vm (default): a real Linux VM under QEMU whose clock drifts, then is kept in step; "
                             "netns: a network namespace on a TAP with real NTP clients in query mode "
                             "(one host clock, so the offset is ~0; no QEMU needed)")
    parser.add_argument("--duration", metavar="S", type=_seconds,
                        help="stop after S seconds (default: run until q or Ctrl-C)")
    parser.add_argument("--no-live", dest="live", action="store_false",
                        help="print one plain line per second instead of the live view "
                             "(chosen anyway when stdout is not a terminal)")
    parser.add_argument("--out", metavar="DIR",
                        help="where demo.csv and demo.png go (default: a new directory under the current one)")
    vm = parser.add_argument_group("the VM guest")
    vm.add_argument("--rebuild", action="store_true",
                    help="rebuild the cached guest image (kernel, busybox, chronyd) before booting")
    vm.add_argument("--sync-after", metavar="S", type=_seconds, default=DEFAULT_SYNC_AFTER,
                    help=f"seconds the guest runs with no time sync before its chronyd starts "
                         f"(default {DEFAULT_SYNC_AFTER:g})")
    vm.add_argument("--pause-at", metavar="S", type=_seconds,
                    help="stop the VM at S seconds (through the QEMU monitor), as a host sleep does, "
                         "then let it go on and show the recovery")
    vm.add_argument("--pause-for", metavar="S", type=_seconds, default=DEFAULT_PAUSE_FOR,
                    help=f"how long --pause-at stops the VM (default {DEFAULT_PAUSE_FOR:g} s)")
    vm.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                    help="QEMU's accelerator: auto (default) takes KVM if /dev/kvm is there and falls back to TCG "
                         "when the VM shows nothing within a few seconds under it")
    vm.add_argument("--tick", metavar="N", type=_tick, default=DEFAULT_TICK,
                    help=f"the guest kernel's tick, set inside the VM with adjtimex -t (default {DEFAULT_TICK}: "  # clock-safe: help text
                         "about -700 ppm; 10000 is nominal)")
