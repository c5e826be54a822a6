"""The embedded SNTP responder's own process: `python -m plugins.ntp.responder_child`.

Started by `plugins.ntp.responder_process.ResponderProcess`, never by hand. It
binds the responder's loopback socket (`listen` of the settings it is given) and
serves it with the same `SntpServer` loop as the in-process responder, from its
main thread, so that no other thread of this process holds the GIL while a
request waits.

Its conversation with the gateway, on its stdout, is JSON lines:
``{"ready": [host, port]}`` once it serves (or ``{"error": why}`` and exit
CANNOT_START), then the counters (``{"answered": N, "restarts": N, "drops":
{reason: N}}``) whenever they changed, at most once per `REPORT_EVERY` seconds
and only while requests arrive (an idle responder never wakes), and once more as
it exits. SIGTERM stops it (exit 0); SIGINT is the gateway's to handle (a
terminal's Ctrl-C reaches the whole process group) and is ignored; the gateway's
death stops it too: its stdin is a pipe the gateway holds and never writes, so
its end of file means the gateway has gone, however it exited. (Not
PR_SET_PDEATHSIG: that follows the thread that started the child, and trio
starts processes from a worker thread that ends when idle.) `--user` switches to that account once
the socket is bound, as the gateway does (`--user`): the responder needs no
privilege to serve. It exits FAILED_FOR_GOOD when the serving loop failed for
good (`SntpServer`'s restart limit), having said why.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import pwd
import select
import signal
import socket
import sys
import time
from collections import Counter
from dataclasses import fields
from typing import Any, TextIO

from plugins.ntp.config import NtpConfig
from plugins.ntp.server import SntpServer, bind_responder_socket

__all__ = ["main", "config_to_json", "config_from_json", "REPORT_EVERY", "FAILED_FOR_GOOD", "CANNOT_START"]

#: seconds between two reports of changed counters, at most one per this interval
REPORT_EVERY = 0.5
#: the exit status once the serving loop failed for good (its restarts spent); any other is a crash
FAILED_FOR_GOOD = 3
#: the exit status when it could not bind its socket or switch user (it said why first)
CANNOT_START = 2


class _Stop(BaseException):
    """SIGTERM: not an `Exception`, so the serving loop's restarts let it through."""


def config_to_json(config: NtpConfig) -> str:
    return json.dumps({f.name: getattr(config, f.name) for f in fields(config)})


def config_from_json(text: str) -> NtpConfig:
    return NtpConfig(**json.loads(text))


class _Reporter:
    """Writes the counters as a line when they changed and REPORT_EVERY has passed since the last."""

    def __init__(self, server: SntpServer, out: TextIO) -> None:
        self._server = server
        self._out = out
        self._last: dict[str, Any] | None = None
        self._last_at = 0.0

    def figures(self) -> dict[str, Any]:
        return {"answered": self._server.answered, "restarts": self._server.restarts,
                "drops": dict(Counter(self._server.drops))}

    def due_in(self) -> float | None:
        """Seconds until changed counters are due out, None when nothing changed."""
        if self.figures() == self._last:
            return None
        return max(0.0, self._last_at + REPORT_EVERY - time.monotonic())

    def report(self) -> None:
        figures = self.figures()
        if figures != self._last:
            self._out.write(json.dumps(figures) + "\n")
            self._out.flush()
            self._last, self._last_at = figures, time.monotonic()


def _become(user: str) -> None:
    entry = pwd.getpwnam(user)
    if os.geteuid() == entry.pw_uid:
        return
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)


def _stop(signum: int, frame: Any) -> None:
    raise _Stop


def serve(sock: socket.socket, server: SntpServer, reporter: _Reporter, *, kernel_timestamps: bool) -> Exception:
    """Serve until SIGTERM (or a failure for good, returned). Between batches, changed counters go
    out when due; the wait in the kernel has a timeout only while a report is pending."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    poller.register(sys.stdin.fileno(), select.POLLIN)  # the gateway never writes: readable is its end

    def wait_readable() -> None:
        while True:
            due = reporter.due_in()
            if due == 0.0:
                reporter.report()
                due = None
            events = poller.poll(None if due is None else max(1, math.ceil(due * 1000)))
            if any(fd == sys.stdin.fileno() for fd, _ in events):
                raise _Stop  # the gateway has gone (its end of the pipe closed, however it exited)
            if events:
                return

    return server.serve_in_this_thread(sock, wait_readable, kernel_timestamps=kernel_timestamps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plugins.ntp.responder_child")
    parser.add_argument("--config", required=True, help="the [ntp] settings, as JSON (listen: where to bind)")
    parser.add_argument("--user")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    logging.basicConfig(level=logging.INFO, format="hostclock: %(message)s", stream=sys.stderr)
    config = config_from_json(args.config)
    try:
        sock, kernel_timestamps = bind_responder_socket(config)
        if args.user:
            _become(args.user)
    except OSError as e:  # one line for the gateway to stop start-up with
        sys.stdout.write(json.dumps({"error": str(e.strerror or e)}) + "\n")
        sys.stdout.flush()
        return CANNOT_START
    server = SntpServer(config)
    reporter = _Reporter(server, sys.stdout)
    failure: Exception | None = None
    try:
        host, port = sock.getsockname()
        sys.stdout.write(json.dumps({"ready": [host, port]}) + "\n")
        sys.stdout.flush()
        failure = serve(sock, server, reporter, kernel_timestamps=kernel_timestamps)
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            reporter.report()
        except OSError:  # the gateway is gone
            pass
        sock.close()
    return FAILED_FOR_GOOD if failure is not None else 0


if __name__ == "__main__":
    raise SystemExit(main())
