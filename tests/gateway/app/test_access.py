"""Who can get in (§5 of the reliability campaign): socket files owner-only by default, a group granted
on request, the gateway running as another user once its TAP and sockets are open."""

import os
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time

import pytest
from gateway_process import REPO, GatewayProcess, run_cli
from realpeers import GuestNamespace, clients, requires_root, unique_name

from bench.common import ntp_request, udp_frame
from gateway.app.access import AccessConfig
from gateway.app.config import Config, ConfigError
from gateway.edges.transports.unix_socket import bind_unix

NOBODY = 65534
NOGROUP = 65534
GATEWAY = "192.168.65.1"


# -- the configuration ------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"socket_mode": "0999"}, "octal"),
    ({"socket_mode": "1777"}, "octal"),
    ({"socket_mode": ""}, "octal"),
    ({"socket_group": "no-such-group-hc"}, "no such group"),
    ({"user": "no-such-user-hc"}, "no such user"),
    ({"max_guests": 0}, "max_guests"),
])
def test_bad_access_settings_say_what_to_fix(kwargs, message):
    with pytest.raises(ConfigError, match=message) as error:
        AccessConfig(**kwargs)
    assert "\n" not in str(error.value)


def test_access_defaults_are_owner_only_and_documented():
    access = Config().access
    assert access.mode_bits == 0o600 and access.socket_group is None and access.user is None
    assert access.max_guests == 64


def test_unknown_toml_keys_are_errors_in_every_section(tmp_path):
    for section in ("gateway", "ntp", "time", "responder", "dhcp", "access"):
        path = tmp_path / f"{section}.toml"
        path.write_text(f"[{section}]\nno_such_key = 1\n")
        with pytest.raises(ConfigError, match=f"unknown key 'no_such_key' in \\[{section}\\]"):
            Config.from_toml(path)


def test_a_bad_access_flag_stops_with_one_line_and_exit_2():
    cp = run_cli("run", "--qemu-stream", "/nonexistent/hc.sock", "--user", "no-such-user-hc")
    assert cp.returncode == 2 and cp.stderr.strip().count("\n") == 0 and "no such user" in cp.stderr


# -- the socket file's mode -----------------------------------------------------------------------

def test_a_socket_file_is_owner_only_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        sock = bind_unix(str(tmp_path / "s.sock"), socket.SOCK_STREAM)
    finally:
        os.umask(previous)
    try:
        assert stat.S_IMODE(os.stat(tmp_path / "s.sock").st_mode) == 0o600
        assert os.umask(previous) == previous  # the umask was put back
    finally:
        sock.close()


def _connect_as(path: str, uid: int, gid: int) -> str:
    """Try to connect to `path` from a forked child running as uid/gid (no exec: the interpreter
    need not be readable by that user); "ok" or the name of the error."""
    outcomes = {0: "ok", 13: "PermissionError", 111: "ConnectionRefusedError"}
    pid = os.fork()
    if pid == 0:  # the child: only system calls, then _exit
        code = 99
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
            code = 0
        except OSError as e:
            code = e.errno if e.errno in outcomes else 98
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return outcomes.get(os.waitstatus_to_exitcode(status), f"exit {status}")


@pytest.fixture
def shared_dir():
    """A directory any user may enter (as /tmp), for socket files that other users try."""
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="hc-access-") as path:
        os.chmod(path, 0o1777)
        yield path


@requires_root
def test_by_default_only_the_owner_may_connect(shared_dir):
    path = f"{shared_dir}/hc.sock"
    with GatewayProcess("run", "--qemu-stream", path) as gateway:
        mode = os.stat(path).st_mode
        assert stat.S_IMODE(mode) == 0o600, oct(mode)
        assert _connect_as(path, NOBODY, NOGROUP) == "PermissionError"
        assert gateway.stop() == 0


@requires_root
def test_socket_mode_and_group_grant_a_helpers_group(shared_dir):
    path = f"{shared_dir}/hc.sock"
    with GatewayProcess("run", "--qemu-stream", path, "--socket-mode", "0660", "--socket-group", "nogroup") as gateway:
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == NOGROUP
        assert _connect_as(path, 4242, NOGROUP) == "ok"          # a member of the group
        assert _connect_as(path, 4242, 4242) == "PermissionError"  # anyone else
        assert gateway.stop() == 0


# -- running as another user -------------------------------------------------------------------

def _status_ids(pid: int) -> tuple[int, int]:
    uid = gid = -1
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                uid = int(line.split()[2])  # effective
            elif line.startswith("Gid:"):
                gid = int(line.split()[2])
    return uid, gid


def _ntp_over_stream(path: str, sport: int) -> bytes:
    """One NTP exchange over QEMU's stream framing (a new flow, so a new flow socket); the reply's payload."""
    transmit = os.urandom(8)
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        frame = udp_frame(ntp_request(int.from_bytes(transmit, "big")), sport)
        s.sendall(struct.pack("!I", len(frame)) + frame)
        buffer = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            buffer += s.recv(65536)
            while len(buffer) >= 4 and len(buffer) >= 4 + struct.unpack_from("!I", buffer)[0]:
                n = struct.unpack_from("!I", buffer)[0]
                reply, buffer = buffer[4:4 + n], buffer[4 + n:]
                payload = reply[42:]
                if reply[23] == 17 and len(payload) >= 48 and payload[24:32] == transmit:
                    return payload
    raise AssertionError("no NTP reply over the stream")


@requires_root
def test_after_dropping_to_a_user_the_stream_guests_are_still_served(shared_dir):
    path = f"{shared_dir}/hc.sock"
    with GatewayProcess("run", "--qemu-stream", path, "--user", "nobody") as gateway:
        assert _status_ids(gateway.proc.pid) == (NOBODY, NOGROUP)
        assert os.stat(path).st_uid == NOBODY  # handed over, so that it can remove it on exit
        for sport in (40001, 40002, 40003):  # each a new flow socket, opened after the drop
            assert _ntp_over_stream(path, sport)[0] & 7 == 4
        assert gateway.stop() == 0, gateway.stderr
    assert "running as user nobody" in gateway.stderr
    assert not os.path.exists(path)


@requires_root
@clients.requires_clients("ntpdig", "ping")
def test_after_dropping_to_a_user_a_tap_guest_is_still_served():
    tap = unique_name("hct")
    with GatewayProcess("run", "--tap", tap, "--user", "nobody") as gateway, GuestNamespace() as ns:
        ns.adopt_tap(tap)
        assert _status_ids(gateway.proc.pid) == (NOBODY, NOGROUP)
        assert clients.ping(ns, GATEWAY, count=2, timeout=5) == 2
        assert clients.ntpdig(ns, GATEWAY, timeout=10).stratum == 10
        assert clients.ntplib_query(ns, GATEWAY, timeout=5).stratum == 10
        assert gateway.stop() == 0, gateway.stderr
    assert subprocess.run(["ip", "link", "show", tap], capture_output=True).returncode != 0  # removed on exit
