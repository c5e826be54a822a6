"""Plugins are found through the entry-point group `hostclock.plugins`: a real (temporary) installed distribution."""

import sys
import textwrap
from collections import Counter

import pytest
from guest_frames import udp_to_gateway
from scapy.layers.inet import UDP
from scapy.layers.l2 import Ether

from gateway import Config, ConfigError, build_stack
from gateway.app.plugin_registry import ENTRY_POINT_GROUP, available_plugins, create_services


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A third-party distribution on sys.path with an `echo` plugin on UDP/7 and a broken one."""
    (tmp_path / "hc_echo_plugin.py").write_text(textwrap.dedent("""
        from collections import Counter

        class Echo:
            port = 7
            accepts_broadcast = False
            def __init__(self):
                self.drops = Counter()
            def handle_datagram(self, source, local_ip, payload, now):
                return [b"echo:" + payload]

        def create(config):
            return Echo()

        def not_a_service(config):
            return object()
    """))
    dist = tmp_path / "hc_echo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hc-echo-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\necho = hc_echo_plugin:create\nbroken = hc_echo_plugin:not_a_service\n"
        "missing = hc_no_such_module:create\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("hc_echo_plugin", None)


def test_builtin_dhcp_is_listed_and_on_by_default():
    plugins = available_plugins()
    assert plugins["dhcp"].builtin and plugins["dhcp"].target == "plugins.dhcp.service:create"
    assert [s.port for s in create_services(Config())] == [67]
    assert create_services(Config().replace(dhcp={"enabled": False})) == []


def test_third_party_plugin_is_discovered_but_runs_only_when_named(installed_plugin):
    plugins = available_plugins()
    assert plugins["echo"].target == "hc_echo_plugin:create" and not plugins["echo"].builtin
    assert 7 not in build_stack(Config()).services
    stack = build_stack(Config(), plugins=["echo"])
    (reply,) = stack.receive_frame(udp_to_gateway(b"hi", dport=7, sport=999), now=0.0)
    assert Ether(reply)[UDP].load == b"echo:hi"


@pytest.mark.parametrize("name, message", [
    ("nope", "unknown plugin 'nope': installed plugins are"),
    ("broken", "which is not a UdpService"),
    ("missing", "cannot be loaded"),
])
def test_plugin_problems_are_configuration_errors(installed_plugin, name, message):
    with pytest.raises(ConfigError, match=message):
        create_services(Config(), [name])


def test_cli_lists_plugins(installed_plugin):
    from gateway.app.cli import main
    import contextlib, io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["plugins"]) == 0
    assert "dhcp" in out.getvalue() and "echo" in out.getvalue() and "--plugin" in out.getvalue()
