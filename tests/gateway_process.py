"""Run the real `hostclock` CLI as a subprocess, as a user would, for integration tests."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent


class GatewayProcess:
    """`hostclock ARGS...` (run from this checkout); waits for its ready line, stops it with SIGINT."""

    def __init__(self, *args: str, ready_timeout: float = 10.0) -> None:
        self.argv = [sys.executable, "-m", "gateway", *args]
        self.ready_timeout = ready_timeout
        self.ready_line = ""
        self.stderr = ""
        self.returncode: int | None = None

    def __enter__(self) -> "GatewayProcess":
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env, cwd=REPO)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                self.ready_line = self.proc.stdout.readline().strip()
                break
        if not self.ready_line:
            self.stop()
            raise RuntimeError(f"{' '.join(self.argv)} did not become ready: exit {self.returncode}, "
                               f"stderr: {self.stderr.strip()}")
        return self

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, self.stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, self.stderr = self.proc.communicate()
        self.returncode = self.proc.returncode
        return self.returncode

    def __exit__(self, *exc) -> None:
        self.stop()


def free_port_candidate() -> int:
    """A loopback UDP port that was free a moment ago (bound to port 0, read back, closed).

    `hostclock serve` refuses port 0, so it must be given a number, which another process
    may take before hostclock binds it: use `serving_on_a_free_port`, which retries.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving_on_a_free_port(*args: str, attempts: int = 5) -> Iterator[tuple[GatewayProcess, int]]:
    """`hostclock serve --listen 127.0.0.1:PORT ARGS...` on a free port; yields (process, port).

    A port taken between the probe and hostclock's bind ("in use") is retried with another.
    """
    for attempt in range(attempts):
        port = free_port_candidate()
        gateway = GatewayProcess("serve", "--listen", f"127.0.0.1:{port}", *args)
        try:
            gateway.__enter__()
        except RuntimeError as e:
            if "in use" in str(e) and attempt + 1 < attempts:
                continue
            raise
        try:
            yield gateway, port
        finally:
            gateway.stop()
        return


def run_cli(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """Run `hostclock ARGS...` to completion."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)
