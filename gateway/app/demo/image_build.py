"""Preparing the VM guest's image (gateway.vm.image) in a child process, with its progress.

The build downloads the kernel, busybox and chrony packages with apt-get and
writes an initramfs; it can take a minute the first time and is cached after
(`gateway.vm.image.default_cache_dir()`). It runs in a child process of its own
session so that Ctrl-C or SIGTERM at any moment stops all of it: the child gets
SIGINT (its temporary directories are removed as it unwinds, and apt-get, in
the same process group, stops too), then SIGKILL if it is still there after a
grace period.

Child protocol: one JSON object per line on stdout,
    {"step": 2, "total": 6, "message": "..."}        a step of the build
    {"image": {"kernel": ..., "initrd": ..., "cmdline": ..., "key": ..., "versions": {...}}}
    {"error": "...", "packages_unavailable": true}   the build failed
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import trio

__all__ = ["prepare_image", "ImageUnavailable"]

_GRACE_S = 5.0


class ImageUnavailable(Exception):
    """The guest image cannot be had; `packages_unavailable` when apt cannot give the packages."""

    def __init__(self, message: str, packages_unavailable: bool) -> None:
        super().__init__(message)
        self.packages_unavailable = packages_unavailable


async def prepare_image(*, rebuild: bool, on_progress: Callable[[int, int, str], None]) -> Any:
    """The guest image (a `gateway.vm.image.GuestImage`), built or found in the cache."""
    from gateway.vm.image import GuestImage

    argv = [sys.executable, "-m", "gateway.app.demo.image_build"] + (["--rebuild"] if rebuild else [])
    # stdin is a pipe the parent never writes: the child stops when it reads its end, i.e. when the
    # demo is gone however it went (trio forks in a worker thread, so no parent-death signal here)
    process = await trio.lowlevel.open_process(argv, stdout=-1, stderr=-1, stdin=-1, start_new_session=True)
    result: dict[str, Any] = {}
    errors = bytearray()
    try:
        async with trio.open_nursery() as nursery:
            async def read_stderr() -> None:
                async for chunk in process.stderr:
                    errors.extend(chunk[-4096:])

            nursery.start_soon(read_stderr)
            buffer = b""
            async for chunk in process.stdout:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    message = json.loads(line)
                    if "step" in message:
                        on_progress(message["step"], message["total"], message["message"])
                    else:
                        result = message
            await process.wait()
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                await _stop_group(process)
            await process.stdin.aclose()
    if "image" in result:
        image = result["image"]
        return GuestImage(kernel=_path(image["kernel"]), initrd=_path(image["initrd"]), cmdline=image["cmdline"],
                          key=image["key"], versions=image["versions"])
    if "error" in result:
        raise ImageUnavailable(result["error"], result.get("packages_unavailable", False))
    tail = errors.decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {process.returncode}"]
    raise ImageUnavailable(f"the guest image build stopped: {tail[0]}", False)


def _path(text: str) -> Any:
    from pathlib import Path

    return Path(text)


async def _stop_group(process: trio.Process) -> None:
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        with trio.move_on_after(_GRACE_S):
            await process.wait()
            return


def _stop_when_the_parent_is_gone() -> None:
    """Read stdin until EOF (the parent closed it or died), then interrupt this process group."""
    import threading

    def wait() -> None:
        sys.stdin.buffer.read()
        os.killpg(os.getpgrp(), signal.SIGINT)

    threading.Thread(target=wait, name="parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    """The child: build (or find) the image, reporting each step."""
    import shutil

    from gateway.vm import image

    _stop_when_the_parent_is_gone()

    def say(message: dict[str, Any]) -> None:
        print(json.dumps(message), flush=True)

    # Adapter: gateway.vm.image requires busybox's ntpd applet (for its busybox-ntpd policy), which
    # Debian 12's busybox-static does not have; the demo's guest runs chronyd and never that policy.
    image.REQUIRED_APPLETS = tuple(applet for applet in image.REQUIRED_APPLETS if applet != "ntpd")
    try:
        if "--rebuild" in argv:
            cached = image.find_image()
            if cached is not None:
                shutil.rmtree(cached.kernel.parent, ignore_errors=True)
        built = image.build(progress=lambda p: say({"step": p.step, "total": p.total, "message": p.message}))
    except image.PackagesUnavailable as e:
        say({"error": str(e), "packages_unavailable": True})
        return 1
    except image.BuildError as e:
        say({"error": str(e), "packages_unavailable": False})
        return 1
    except KeyboardInterrupt:
        return 130
    say({"image": built.as_dict()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
