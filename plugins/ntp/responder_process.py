"""The embedded SNTP responder in a process of its own (`[ntp] responder = "process"`, the default).

In the gateway's process the responder's thread shares one GIL with the trio
loop that runs the gateway: while a guest floods frames or requests, every
reply waits for that loop to let go (docs/reliability.md has the figures). So
the responder runs as `python -m plugins.ntp.responder_child`, which binds the
loopback socket (a port in use stops the gateway's start-up with one line) and
serves it with the same `SntpServer` loop. A responder process that dies is
started again at once on the same address, at most MAX_RESTARTS times within
RESTART_WINDOW seconds; once more and `run` raises `ServingFailed` (exit 1, one
line), never a gateway that answers nothing. The child's counters (`answered`,
`drops`) arrive on its stdout, within about half a second of changing while
requests arrive, and when it exits.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import trio

from gateway.core.failures import ServingFailed
from plugins.ntp.config import NtpConfig
from plugins.ntp.responder_child import FAILED_FOR_GOOD, config_to_json
from plugins.ntp.server import MAX_RESTARTS, RESTART_WINDOW

__all__ = ["ResponderProcess", "START_TIMEOUT", "STOP_WAIT"]

log = logging.getLogger("hostclock.sntp")

#: seconds a responder process may take to say it serves
START_TIMEOUT = 20.0
#: seconds a responder process has to exit after SIGTERM before it is killed
STOP_WAIT = 2.0
#: the directory that holds the `plugins` package, for the child's import path
_SOURCE_ROOT = str(Path(__file__).resolve().parent.parent.parent)


class ResponderProcess:
    """Runs the SNTP responder for `config` in a child process, on a socket bound here.

    `user`: the account the child switches to once started (the gateway's `--user`)."""

    def __init__(self, config: NtpConfig, *, user: str | None = None) -> None:
        self.config = config
        self.user = user
        #: replies sent and datagrams dropped, by reason, over every child so far
        self.answered = 0
        self.drops: Counter[str] = Counter()
        #: times a child exited unexpectedly and was started again
        self.restarts = 0
        self.bound_address: tuple[str, int] | None = None
        #: the serving child's pid (None while none serves), for tests and fault injection
        self.pid: int | None = None
        self._earlier_answered = 0
        self._earlier_drops: Counter[str] = Counter()

    async def run(self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
        config = self.config
        failures: list[float] = []
        status = task_status
        while True:
            returncode = await self._serve_in_child(config, status)
            status = trio.TASK_STATUS_IGNORED
            # the next child binds the same address: the gateway forwards to it
            config = dataclasses.replace(self.config, listen=f"{self.bound_address[0]}:{self.bound_address[1]}")
            at = time.monotonic()
            failures = [t for t in failures if at - t < RESTART_WINDOW] + [at]
            where = f"SNTP responder on {self.bound_address[0]}:{self.bound_address[1]}"
            if returncode == FAILED_FOR_GOOD:  # its serving loop failed for good; it said why (its own restarts spent)
                raise ServingFailed(f"{where}: its serving loop failed {MAX_RESTARTS + 1} times within "
                                    f"{RESTART_WINDOW:.0f} s; stopping rather than answer nothing")
            if len(failures) > MAX_RESTARTS:
                raise ServingFailed(f"{where}: its process exited {len(failures)} times within "
                                    f"{RESTART_WINDOW:.0f} s (last: {_exit_phrase(returncode)}); "
                                    "stopping rather than answer nothing")
            self.restarts += 1
            log.warning("%s: its process exited (%s); started it again (%d of at most %d within %.0f s)",
                        where, _exit_phrase(returncode), len(failures), MAX_RESTARTS, RESTART_WINDOW)

    async def _serve_in_child(self, config: NtpConfig, task_status: trio.TaskStatus) -> int:
        """Start a child serving `config`, report started once it serves, and return its exit status
        when it exits; when cancelled, stop it (SIGTERM, then SIGKILL after STOP_WAIT)."""
        argv = [sys.executable, "-m", "plugins.ntp.responder_child", "--config", config_to_json(config)]
        if self.user:
            argv += ["--user", self.user]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (_SOURCE_ROOT, os.environ.get("PYTHONPATH")) if p))
        # stdin: a pipe held open and never written; its end tells the child the gateway has gone
        proc = await trio.lowlevel.open_process(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        lines = _Lines(proc.stdout)
        try:
            with trio.move_on_after(START_TIMEOUT):
                first = await lines.next()
            said = _json_object(first)
            if "ready" not in said:
                if proc.returncode is None:
                    proc.kill()
                returncode = await proc.wait()
                starting = self.bound_address is None
                if "error" in said and starting:  # a port in use, say: start-up stops with it
                    raise OSError(f"SNTP responder cannot bind {config.listen}: {said['error']}")
                if "error" in said:  # its address was taken meanwhile: the gateway forwards there
                    raise ServingFailed(f"SNTP responder cannot bind {config.listen} again: {said['error']}; "
                                        "stopping rather than answer nothing")
                if starting:
                    raise ServingFailed(f"SNTP responder process did not start ({_exit_phrase(returncode)}"
                                        + (f", said {first!r}" if first else "") + ")")
                return returncode  # a restart that died before it served: one more failure
            host, port = said["ready"]
            self.bound_address = (str(host), int(port))
            self.pid = proc.pid
            task_status.started(self.bound_address)
            while (line := await lines.next()) is not None:
                self._take_counters(line)
            return await proc.wait()
        finally:
            with trio.CancelScope(shield=True):
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                    with trio.move_on_after(STOP_WAIT):
                        while (line := await lines.next()) is not None:
                            self._take_counters(line)
                        await proc.wait()
                    if proc.returncode is None:
                        log.warning("SNTP responder process %d did not stop within %.0f s; killed it",
                                    proc.pid, STOP_WAIT)
                        proc.kill()
                        await proc.wait()
                self._earlier_answered = self.answered
                self._earlier_drops = Counter(self.drops)
                self.pid = None
                for stream in (proc.stdin, proc.stdout):
                    if stream is not None:
                        await stream.aclose()

    def _take_counters(self, line: str) -> None:
        try:
            figures = _json_object(line)
            answered, drops = int(figures["answered"]), {str(k): int(v) for k, v in figures["drops"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("SNTP responder process said %r, not its counters", line[:200])
            return
        self.answered = self._earlier_answered + answered
        self.drops.clear()
        self.drops.update(self._earlier_drops)
        self.drops.update(drops)


def _json_object(line: str | None) -> dict[str, Any]:
    try:
        value = json.loads(line) if line else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class _Lines:
    """The lines of a child's stdout; `next()` is None at its end."""

    def __init__(self, stream: trio.abc.ReceiveStream | None) -> None:
        self._stream = stream
        self._buffer = b""

    async def next(self) -> str | None:
        while b"\n" not in self._buffer:
            data = await self._stream.receive_some(65536) if self._stream is not None else b""
            if not data:
                return None
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode(errors="replace")


def _exit_phrase(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"
