"""Unique names for what the demo makes, and the teardown of all of it.

Everything the demo creates on the machine (a network namespace, a TAP device,
a private directory for its sockets, a QEMU process) is registered here as it
is made, with the way to undo it; `close()` undoes them newest first, whatever
happened before (an error, Ctrl-C, SIGTERM), and each undo is tried even when
an earlier one failed. Names carry a random part, so two demos at once never
share a namespace, a TAP or a socket path.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable

__all__ = ["DemoNames", "Resources", "run_ip", "end_with_this_process", "sweep_leftovers"]

log = logging.getLogger("hostclock.demo")

_IFNAMSIZ = 16
PRIVATE_DIR_PREFIX = "hostclock-demo-"
_KILL_GRACE = 5.0


def end_with_this_process() -> None:
    """`preexec_fn` of a child that must not outlive the demo even if it is killed (SIGKILL, a closed
    terminal's SIGHUP): prctl(PR_SET_PDEATHSIG, SIGTERM). The kernel sends it when the thread that
    forked the child exits, so such children are started from the demo's main thread."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class DemoNames:
    """The names of one demo run: `hcdemo-1a2b3c` for the namespace, `hcd1a2b3c` for the TAP."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_hex(3)
        self.namespace = f"hcdemo-{self.token}"
        self.tap = f"hcd{self.token}"
        if len(self.tap) >= _IFNAMSIZ:
            raise ValueError(f"token {self.token!r} too long for an interface name")


class Resources:
    """What this demo made, each with its undo; `close()` undoes all, newest first."""

    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], None]]] = []
        self.problems: list[str] = []
        self._private_dir: str | None = None

    def add(self, what: str, undo: Callable[[], None]) -> None:
        self._undo.append((what, undo))

    def private_dir(self) -> str:
        """A new directory under /tmp (short: Unix socket paths are at most 107 bytes), removed at close.

        It holds the demo's pid, and the name of its namespace once made, so that a later demo
        can remove what one killed outright (SIGKILL) left (`sweep_leftovers`)."""
        path = tempfile.mkdtemp(prefix=PRIVATE_DIR_PREFIX, dir="/tmp")
        self.add(f"directory {path}", lambda: shutil.rmtree(path, ignore_errors=True))
        with open(os.path.join(path, "pid"), "w") as f:
            f.write(str(os.getpid()))
        self._private_dir = path
        return path

    def namespace(self, name: str) -> None:
        """Create network namespace `name` (with `lo` up); deleted at close."""
        if self._private_dir is not None:
            with open(os.path.join(self._private_dir, "namespace"), "w") as f:
                f.write(name)
        run_ip("netns", "add", name)
        self.add(f"network namespace {name}", lambda: _delete_namespace(name))
        run_ip("-n", name, "link", "set", "dev", "lo", "up")

    def process(self, what: str, proc: subprocess.Popen) -> None:
        """A child started in its own session (start_new_session=True): its whole group is ended at close."""
        self.add(what, lambda: _end_process_group(proc))

    def close(self) -> None:
        while self._undo:
            what, undo = self._undo.pop()
            try:
                undo()
            except Exception as e:  # go on with the rest; say what is left
                self.problems.append(f"could not remove {what}: {e}")
                log.warning("could not remove %s: %s", what, e)


def sweep_leftovers() -> list[str]:
    """Remove what demos killed outright left: their private directories (a socket file) and
    namespaces, where the pid they recorded is no longer running. What was removed, for a log line."""
    removed = []
    for name in os.listdir("/tmp"):
        path = os.path.join("/tmp", name)
        if not name.startswith(PRIVATE_DIR_PREFIX) or not os.path.isdir(path):
            continue
        try:
            with open(os.path.join(path, "pid")) as f:
                pid = int(f.read())
        except (OSError, ValueError):
            continue  # not one of ours, or still being made
        if os.path.exists(f"/proc/{pid}"):
            continue
        try:
            with open(os.path.join(path, "namespace")) as f:
                namespace = f.read().strip()
            if namespace.startswith("hcdemo-"):
                _delete_namespace(namespace)
                removed.append(f"namespace {namespace}")
        except (OSError, RuntimeError):
            pass
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def run_ip(*args: str) -> str:
    """`ip ARGS`; its stdout, or RuntimeError with its stderr."""
    try:
        cp = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        raise RuntimeError("ip is missing (apt-get install iproute2)") from None
    if cp.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {cp.stderr.strip() or f'exit {cp.returncode}'}")
    return cp.stdout


def _delete_namespace(name: str) -> None:
    if os.path.exists(f"/run/netns/{name}"):
        run_ip("netns", "delete", name)


def _end_process_group(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=_KILL_GRACE)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=_KILL_GRACE)
