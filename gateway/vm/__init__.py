"""The hostclock guest VM: a Debian kernel + busybox/chronyd initramfs built from
apt's packages (``gateway.vm.image``), booted under QEMU with its only NIC on a
Unix socket to ``hostclock run`` (``gateway.vm.qemu``), running a scenario its
kernel command line selects (``gateway.vm.scenario``).

Used by the VM tests, the drift experiment (``python -m bench.drift``) and the
demo.  ``hostclock run`` never imports it.  The image cache is
``~/.cache/hostclock-vm`` (``$HOSTCLOCK_VM_CACHE`` overrides it).

    from gateway.vm import image, qemu, scenario
    img = image.build(progress=lambda p: print(f"[{p.step}/{p.total}] {p.message}"))
    with qemu.Guest.start(img, qemu.stream_netdev(sock),
                          append=scenario.Scenario(tick=9993, policy="chronyd-tuned").cmdline()) as g:
        g.wait_for(r"HOSTCLOCK-RESULT drift", timeout=120)
        for line in g.lines(timeout=30):
            print(f"{line.t:.3f} {line.text}")
        g.stop(); g.cont()
"""
