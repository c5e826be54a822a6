"""Lowering the open-file limit for a test, to make a process run out of descriptors on purpose."""

from __future__ import annotations

import os
import resource
from contextlib import contextmanager


@contextmanager
def open_file_limit_with_room_for(n):
    """The soft RLIMIT_NOFILE lowered so that only about `n` more descriptors can be opened; restored after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    open_fds = {int(fd) for fd in os.listdir("/proc/self/fd")}
    limit, free = 0, 0
    while free < n:  # new descriptors take the lowest free numbers: the limit leaves exactly n of them
        if limit not in open_fds:
            free += 1
        limit += 1
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))  # may be below an open descriptor: allowed
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
