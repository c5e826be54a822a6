"""Log lines written by a thread of their own, so that a stderr nobody reads never stops the gateway.

A log record is written by the thread that logs it, and a write to a pipe whose
reader has stopped reading blocks once the pipe is full (64 KiB on Linux). The
gateway logs from its trio task, so a supervisor that never reads the gateway's
stderr, or a terminal paused with Ctrl-S, would stop every guest's traffic after
a few hundred lines: a storm of connections on `--qemu-socket`, each attached and
detached with a line, did exactly that (the loop sat in the log handler's write
until the reader drained the pipe at shutdown). Here records are queued for a
writing thread; the queue holds at most `MAX_QUEUED` records, and one that finds
it full is dropped and counted, and the next line that gets through says how
many were dropped. Nothing is lost while stderr is read.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from typing import TextIO

__all__ = ["start_log_output", "MAX_QUEUED"]

MAX_QUEUED = 10_000
#: seconds the exit waits for the writing thread to write what is queued
_FLUSH_WAIT = 2.0


class _Enqueue(logging.Handler):
    """The handler loggers call: formats the record and queues it, never blocking."""

    def __init__(self, records: queue.Queue[logging.LogRecord | None]) -> None:
        super().__init__()
        self.records = records
        #: records dropped since the last one that got through (the queue was full)
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.dropped:
                self.records.put_nowait(logging.makeLogRecord({
                    "name": "hostclock", "levelno": logging.WARNING, "levelname": "WARNING",
                    "msg": f"{self.dropped} log line(s) dropped: stderr was not being read"}))
                self.dropped = 0
            record.msg, record.args = self.format(record), None  # formatted now: the arguments may change
            record.exc_info = record.exc_text = None  # the traceback is in the message now
            self.records.put_nowait(record)
        except queue.Full:
            self.dropped += 1


class LogOutput:
    """The queue and the thread that writes it to `stream`; `stop()` writes what is left (bounded wait)."""

    def __init__(self, stream: TextIO, fmt: str, level: int) -> None:
        self._records: queue.Queue[logging.LogRecord | None] = queue.Queue(MAX_QUEUED)
        self._writer = logging.StreamHandler(stream)
        self._writer.setFormatter(logging.Formatter(fmt))
        self.handler = _Enqueue(self._records)
        self.handler.setLevel(level)
        self._thread = threading.Thread(target=self._write, name="hostclock log output", daemon=True)

    def _write(self) -> None:
        while True:
            record = self._records.get()
            if record is None:
                return
            self._writer.handle(record)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        try:
            self._records.put(None, timeout=_FLUSH_WAIT)
        except queue.Full:
            return  # stderr is not being read: what is queued is left to the process's exit
        self._thread.join(_FLUSH_WAIT)


def start_log_output(level: int, fmt: str, stream: TextIO | None = None) -> LogOutput | None:
    """Send the root logger's records at `level` and above through a `LogOutput` to `stream` (stderr).

    As `logging.basicConfig`: if the root logger has handlers already (an embedding program's, a
    test runner's), they are left as they are and only the level is set; then None is returned."""
    root = logging.getLogger()
    root.setLevel(level)
    if root.handlers:
        return None
    output = LogOutput(stream if stream is not None else sys.stderr, fmt, level)
    root.addHandler(output.handler)
    output.start()
    return output
