"""Run the real `hostclock` CLI as a subprocess, as a user would, for integration tests."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def run_cli(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """Run `hostclock ARGS...` to completion."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)
