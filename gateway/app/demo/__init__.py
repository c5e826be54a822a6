"""`hostclock demo`: the standalone gateway demo, one command, a guest whose clock you watch.

The demo composes the product's own parts; nothing here is on `hostclock run`'s path (only
`arguments` is imported, to build the parser), and neither `rich` nor `matplotlib` is
imported until `hostclock demo` runs. One job per file:

    arguments.py       the command line of `hostclock demo`
    command.py         the order of things: check the machine, start the gateway and the guest,
                       show it, stop everything, write the output
    errors.py          DemoFailed: one line naming the fix
    preflight.py       what the machine must have (root, ip, QEMU, apt's kernel), one line naming the fix
    resources.py       unique names, the teardown of everything the demo made, and the sweep of
                       what a demo killed outright left
    observed.py        the in-process gateway with the figures the view shows (watcher readings,
                       guests attached, frames on the links, the last reply's delay)
    lease_watch.py     the guest's DHCP lease, read from the gateway's DHCPACKs on the wire
    readings.py        one reading of the guest's clock; DIR/demo.csv (--guest-clock-log's columns)
    phases.py          the demo's phases over time (booting, free-running, synchronised, paused)
    state.py           what the demo knows at a moment, which the views read
    drift.py           the drift's slope over a phase, in ppm
    netns_guest.py     the guest as a network namespace on a TAP, real clients in query mode
    image_build.py     the VM guest's image, prepared in a child process with its progress
    vm_guest.py        the guest as a real VM under QEMU, drifting, then synchronised by chronyd
    summary.py         what both views say, in one wording
    formatting.py      durations in the unit that fits
    live_view.py       the live terminal view (rich), `q` to stop
    plain_view.py      one line per second (--no-live, or stdout not a terminal)
    terminal_chart.py  the offset over time as characters, for the live view
    picture.py         DIR/demo.png (matplotlib, the optional extra `demo`)
"""
