"""hostclock's own cleanup: on SIGINT and on SIGTERM, `hostclock run` removes what it made.

The real CLI runs as a subprocess (tests/gateway_process.py). While it serves, its TAP device
is there (in this namespace) or its socket file is a socket at PATH; after the signal it has
exited with status 0, without a traceback, and the TAP or the file is gone. A guest is connected
where the transport has connections, so the cleanup happens with a link open.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess

import pytest
from gateway_process import GatewayProcess
from realpeers import requires_root, unique_name

SIGNALS = [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]

#: the transports that create a socket file, and how a guest connects to it (None: it does not)
SOCKET_TRANSPORTS = {
    "--qemu-stream": socket.SOCK_STREAM,
    "--vmnet": socket.SOCK_STREAM,
    "--bess": socket.SOCK_SEQPACKET,
    "--qemu-dgram": None,
    "--vfkit": None,
}


def stop_with(gateway: GatewayProcess, signum: int) -> None:
    gateway.proc.send_signal(signum)
    assert gateway.proc.wait(timeout=15) == 0
    assert gateway.stop() == 0
    assert "Traceback" not in gateway.stderr, gateway.stderr
    assert f"{signal.Signals(signum).name} received, shutting down" in gateway.stderr, gateway.stderr


@pytest.mark.parametrize("signum", SIGNALS)
@pytest.mark.parametrize("flag", list(SOCKET_TRANSPORTS))
def test_the_socket_file_is_removed(tmp_path, flag, signum):
    path = tmp_path / "guest.sock"
    with GatewayProcess("run", flag, str(path)) as gateway:
        assert stat.S_ISSOCK(path.lstat().st_mode)
        kind = SOCKET_TRANSPORTS[flag]
        guest = socket.socket(socket.AF_UNIX, kind) if kind is not None else None
        try:
            if guest is not None:
                guest.connect(str(path))
            stop_with(gateway, signum)
        finally:
            if guest is not None:
                guest.close()
    assert not os.path.lexists(path)


def tap_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True, timeout=10).returncode == 0


@requires_root
@pytest.mark.parametrize("signum", SIGNALS)
def test_the_tap_is_removed(signum):
    name = unique_name("hcx")
    with GatewayProcess("run", "--tap", name) as gateway:
        assert tap_exists(name)
        stop_with(gateway, signum)
    assert not tap_exists(name)
