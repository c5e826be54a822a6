"""Helpers of the demo's end-to-end tests: find the hostclock CLI, read the demo's names from its
output, and list what of a demo is left on the machine (namespace, TAP, processes)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

_NAMES = re.compile(r"network namespace (hcdemo-([0-9a-f]+)) on tap (hcd[0-9a-f]+)")


def hostclock_cli() -> str:
    """The hostclock CLI beside this Python (a venv's), or on PATH."""
    beside = Path(sys.executable).parent / "hostclock"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("hostclock")
    if found is None:
        pytest.fail("the hostclock CLI is not installed (pip install -e .)")
    return found


def cannot_run(reason: str) -> None:
    """Skip, except under CI, where a real-peer test that cannot run fails."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"cannot run under CI: {reason}")
    pytest.skip(reason)


def require_netns_demo() -> None:
    from gateway.app.demo.preflight import DemoUnavailable, check_netns_demo

    try:
        tools = check_netns_demo()
    except DemoUnavailable as e:
        cannot_run(str(e))
    missing = {"ntpdig", "chronyd"} - set(tools)
    if missing:
        cannot_run(f"missing {', '.join(sorted(missing))}")


def demo_names(output: str) -> tuple[str, str, str]:
    """(namespace, token, tap) of the demo whose output this is."""
    match = _NAMES.search(output)
    assert match, f"no guest names in the demo's output:\n{output}"
    return match.group(1), match.group(2), match.group(3)


def leftovers(token: str) -> list[str]:
    """What of demo `token` is still on the machine: its namespace, its TAP, its processes."""
    left = []
    if os.path.exists(f"/run/netns/hcdemo-{token}"):
        left.append(f"namespace hcdemo-{token}")
    if os.path.exists(f"/sys/class/net/hcd{token}"):
        left.append(f"TAP hcd{token}")
    procs = subprocess.run(["pgrep", "-a", "-f", token], capture_output=True, text=True).stdout
    left += [f"process {line}" for line in procs.splitlines() if "pgrep" not in line]
    return left


def sockets_and_dirs_left(before: set[str]) -> set[str]:
    """hostclock-demo-* private directories in /tmp that were not there `before`."""
    return {name for name in os.listdir("/tmp") if name.startswith("hostclock-demo-")} - before


def private_dirs() -> set[str]:
    return {name for name in os.listdir("/tmp") if name.startswith("hostclock-demo-")}
