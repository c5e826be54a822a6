"""The command line: bad flags and impossible setups end with one clear line and a non-zero exit."""

import shutil
import signal
import socket
import subprocess

import pytest
from gateway_process import REPO, GatewayProcess, run_cli, serving_on_a_free_port
from realpeers import make_tap, requires_root, unique_name


def assert_one_line_error(result, status, *words):
    assert result.returncode == status, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hostclock: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_help_everywhere():
    for args in ([], ["run"], ["serve"]):
        result = run_cli(*args, "--help")
        assert result.returncode == 0 and "usage: hostclock" in result.stdout


def test_run_needs_a_transport():
    result = run_cli("run")
    assert result.returncode == 2 and "one of the arguments --tap" in result.stderr


@pytest.mark.parametrize("args, words", [
    (["run", "--tap", "x", "--upstream", "192.0.2.10:123"], ["not on loopback", "--allow-remote-upstream"]),
    (["run", "--tap", "x", "--gateway-ip", "192.168.65.999"], ["gateway_ip", "not an IPv4 address"]),
    (["run", "--tap", "x", "--gateway-mac", "zz:16:36:bc:f9:c6"], ["not a MAC address"]),
    (["run", "--tap", "x", "--config", "/nonexistent.toml"], ["cannot read config file"]),
    (["serve", "--listen", "0.0.0.0:123"], ["not on loopback"]),
])
def test_misconfiguration_stops_at_start_up(args, words):
    assert_one_line_error(run_cli(*args), 2, *words)


def test_config_file_and_flags(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[gateway]\nmtu = 1400\n[time]\nupstream = "192.0.2.1:123"\n')
    assert_one_line_error(run_cli("run", "--tap", "x", "--config", str(path)), 2, "--allow-remote-upstream")


def test_socket_path_in_use(tmp_path):
    path = str(tmp_path / "busy.sock")
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    holder.bind(path)
    holder.listen()
    try:
        assert_one_line_error(run_cli("run", "--qemu-stream", path), 1, path, "in use")
    finally:
        holder.close()


def test_socket_path_that_is_not_a_socket(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    assert_one_line_error(run_cli("run", "--qemu-stream", str(path)), 1, "not a socket")


def test_serve_port_busy():
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    try:
        assert_one_line_error(run_cli("serve", "--listen", f"127.0.0.1:{port}"), 1, "in use")
    finally:
        holder.close()


@requires_root
def test_tap_in_use():
    name = unique_name("hcb")
    fd = make_tap(name)
    try:
        assert_one_line_error(run_cli("run", "--tap", name), 1, name, "in use")
    finally:
        import os
        os.close(fd)


@requires_root
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_tap_without_cap_net_admin_says_it_needs_root():
    """As a user without CAP_NET_ADMIN (root with every capability dropped)."""
    result = subprocess.run(["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all",
                             *GatewayProcess("run", "--tap", unique_name("hcp")).argv],
                            capture_output=True, text=True, timeout=20, cwd=REPO)
    assert_one_line_error(result, 1, "needs root (or CAP_NET_ADMIN)")


def test_sigterm_stops_cleanly(tmp_path):
    with GatewayProcess("run", "--qemu-stream", str(tmp_path / "vm.sock")) as gateway:
        gateway.proc.send_signal(signal.SIGTERM)
        assert gateway.proc.wait(timeout=10) == 0
        assert gateway.stop() == 0
    assert "SIGTERM received, shutting down" in gateway.stderr and "Traceback" not in gateway.stderr
    assert not (tmp_path / "vm.sock").exists()


def test_bad_tap_name():
    assert_one_line_error(run_cli("run", "--tap", "a-name-far-too-long-for-linux"), 1, "not a valid interface name")


def test_serve_prints_where_it_listens_and_stops_cleanly_on_sigint():
    with serving_on_a_free_port() as (server, port):
        assert f"127.0.0.1:{port}" in server.ready_line
        assert server.stop() == 0
    assert "Traceback" not in server.stderr
