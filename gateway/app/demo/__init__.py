"""`hostclock demo`: the standalone gateway demo, one command, a guest whose clock you watch.

The demo composes the product's own parts; nothing here is on `hostclock run`'s path, and
neither `rich` nor `matplotlib` is imported until `hostclock demo` runs. One job per file:

    arguments.py    the command line of `hostclock demo`
    command.py      the order of things: check the machine, start the gateway and the guest,
                    show it, stop everything, write the output
    preflight.py    what the machine must have (root, ip, QEMU, ...), one line naming the fix
    resources.py    unique names and the teardown of everything the demo made
    observed.py     the in-process gateway with the figures the view shows
    readings.py     one reading of the guest's clock; the CSV of them (--guest-clock-log's columns)
    phases.py       the demo's phases over time (free-running, synchronised, paused)
    netns_guest.py  the guest as a network namespace on a TAP, real clients in query mode
    vm_guest.py     the guest as a real VM under QEMU, drifting, then synchronised by chronyd
    live_view.py    the live terminal view (rich), `q` to stop
    plain_view.py   one line per second (--no-live, or stdout not a terminal)
    terminal_chart.py  the offset over time as characters, for the live view
    picture.py      DIR/demo.png (matplotlib, the optional extra `demo`)
"""
