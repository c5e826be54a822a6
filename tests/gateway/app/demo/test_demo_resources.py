"""Teardown: everything undone, newest first, even after a failure; names unique and short."""

import os
import subprocess
import sys

from gateway.app.demo.resources import DemoNames, Resources


def test_undone_newest_first_and_a_failure_does_not_stop_the_rest():
    done = []
    resources = Resources()
    resources.add("first", lambda: done.append("first"))
    resources.add("broken", lambda: 1 / 0)
    resources.add("last", lambda: done.append("last"))
    resources.close()
    assert done == ["last", "first"]
    assert len(resources.problems) == 1 and "broken" in resources.problems[0]
    resources.close()  # a second close has nothing left to do
    assert done == ["last", "first"]


def test_a_private_directory_is_removed():
    resources = Resources()
    path = resources.private_dir()
    open(os.path.join(path, "socket-like"), "w").close()
    resources.close()
    assert not os.path.exists(path)


def test_a_process_group_is_ended_children_too():
    proc = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                             "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"],
                            start_new_session=True)
    resources = Resources()
    resources.process("a sleeper", proc)
    resources.close()
    assert proc.poll() is not None
    # nothing of its group is left
    left = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert left == []


def test_names_are_distinct_and_fit_an_interface_name():
    names = [DemoNames() for _ in range(50)]
    assert len({n.tap for n in names}) == 50 and len({n.namespace for n in names}) == 50
    assert all(len(n.tap) <= 15 for n in names)


def test_a_killed_demos_directory_is_swept_and_a_live_ones_is_not():
    from gateway.app.demo.resources import sweep_leftovers

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed, running = Resources(), Resources()
    killed_dir, running_dir = killed.private_dir(), running.private_dir()
    with open(os.path.join(killed_dir, "pid"), "w") as f:
        f.write(str(dead.pid))  # as if that process had made it and been killed
    try:
        removed = sweep_leftovers()
        assert killed_dir in removed and not os.path.exists(killed_dir)
        assert os.path.exists(running_dir)  # ours: this process is alive
    finally:
        running.close()
        killed.close()
