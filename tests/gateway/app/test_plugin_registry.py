"""Plugins are found through the entry-point group `hostclock.plugins`: a real (temporary) installed distribution."""

import contextlib
import io
import sys
import textwrap

import pytest
from guest_frames import udp_to_gateway
from scapy.layers.inet import UDP
from scapy.layers.l2 import Ether

from gateway import Config, ConfigError, build_stack
from gateway.app import plugin_registry
from gateway.app.plugin_registry import ENTRY_POINT_GROUP, enabled_plugins, installed_plugins
from gateway.core.plugin import Plugin


def _forget_loaded_plugins():
    plugin_registry.available_plugins.cache_clear()
    plugin_registry.load_plugin.cache_clear()


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A third-party distribution on sys.path: an `echo` plugin on UDP/7 with an [echo] table, and broken ones."""
    (tmp_path / "hc_echo_plugin.py").write_text(textwrap.dedent("""
        from collections import Counter
        from dataclasses import dataclass

        from gateway.core.config import ConfigError
        from gateway.core.plugin import Contribution, Plugin

        @dataclass(frozen=True)
        class EchoSettings:
            greeting: str = "echo:"
            port: int = 7

            def __post_init__(self):
                if not self.greeting:
                    raise ConfigError("echo greeting: give at least one character")

        class Echo:
            accepts_broadcast = False
            def __init__(self, settings):
                self.port = settings.port
                self.greeting = settings.greeting.encode()
                self.drops = Counter()
            def handle_datagram(self, source, local_ip, payload, now):
                return [self.greeting + payload]

        PLUGIN = Plugin(name="echo", settings=EchoSettings,
                        contribute=lambda settings, gateway: Contribution(services=(Echo(settings),)),
                        summary="echoes UDP/7")
        NOT_A_PLUGIN = object()
        WRONG_NAME = Plugin(name="other", contribute=lambda settings, gateway: None)
    """))
    dist = tmp_path / "hc_echo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hc-echo-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\necho = hc_echo_plugin:PLUGIN\nbroken = hc_echo_plugin:NOT_A_PLUGIN\n"
        "misnamed = hc_echo_plugin:WRONG_NAME\nmissing = hc_no_such_module:PLUGIN\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _forget_loaded_plugins()
    yield
    sys.modules.pop("hc_echo_plugin", None)
    _forget_loaded_plugins()


def test_the_builtin_plugins_come_from_hostclocks_own_entry_points_and_are_on_by_default():
    installed = installed_plugins()
    assert installed["ntp"].builtin and installed["ntp"].target == "plugins.ntp.plugin:PLUGIN"
    assert installed["dhcp"].builtin and installed["dhcp"].target == "plugins.dhcp.plugin:PLUGIN"
    assert all(isinstance(p, Plugin) for p in enabled_plugins())
    assert sorted(build_stack(Config()).services) == [67, 123]
    assert sorted(build_stack(Config().replace(dhcp={"enabled": False})).services) == [123]


def test_third_party_plugin_is_discovered_but_runs_only_when_named(installed_plugin):
    entry = installed_plugins()["echo"]
    assert entry.target == "hc_echo_plugin:PLUGIN" and not entry.builtin and entry.distribution == "hc-echo-plugin"
    assert 7 not in build_stack(Config()).services
    stack = build_stack(Config(), plugins=["echo"])
    (reply,) = stack.receive_frame(udp_to_gateway(b"hi", dport=7, sport=999), now=0.0)
    assert Ether(reply)[UDP].load == b"echo:hi"


def test_a_third_party_plugin_has_its_own_toml_table(installed_plugin, tmp_path):
    path = tmp_path / "hostclock.toml"
    path.write_text('[ntp]\nstratum = 4\n[echo]\ngreeting = "pong:"\nport = 4007\n')
    config = Config.from_toml(path)
    assert config.echo.greeting == "pong:" and config.ntp.stratum == 4
    stack = build_stack(config, plugins=["echo"])
    (reply,) = stack.receive_frame(udp_to_gateway(b"hi", dport=4007, sport=999), now=0.0)
    assert Ether(reply)[UDP].load == b"pong:hi"
    path.write_text('[echo]\ngretting = "typo"\n')
    with pytest.raises(ConfigError, match=r"hostclock.toml: unknown key 'gretting' in \[echo\] \(known: greeting, port\)"):
        Config.from_toml(path)
    path.write_text('[echo]\ngreeting = ""\n')
    with pytest.raises(ConfigError, match="echo greeting: give at least one character"):
        Config.from_toml(path)


def test_unknown_tables_are_one_line_errors_naming_the_file(tmp_path):
    path = tmp_path / "hostclock.toml"
    path.write_text("[nosuchplugin]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"hostclock.toml: unknown table \[nosuchplugin\] \(known: gateway, guest_clock, dhcp, ntp"):
        Config.from_toml(path)


def test_the_earlier_time_and_responder_tables_still_configure_the_ntp_plugin(tmp_path):
    path = tmp_path / "hostclock.toml"
    path.write_text('[time]\nupstream = "127.0.0.1:1123"\n[responder]\nstratum = 3\n[ntp]\nstratum = 5\n')
    config = Config.from_toml(path)
    assert config.ntp.upstream == "127.0.0.1:1123" and config.ntp.stratum == 5  # [ntp] wins over [responder]


@pytest.mark.parametrize("name, message", [
    ("nope", "unknown plugin 'nope': installed plugins are"),
    ("broken", "is object, not a gateway.core.plugin.Plugin"),
    ("misnamed", "calls itself 'other'"),
    ("missing", "cannot be loaded"),
])
def test_plugin_problems_are_configuration_errors(installed_plugin, name, message):
    with pytest.raises(ConfigError, match=message):
        build_stack(Config(), plugins=[name])


def test_cli_lists_plugins(installed_plugin):
    from gateway.app.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["plugins"]) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("dhcp") and lines[1].startswith("ntp") and "built in" in lines[1]
    assert any(line.startswith("echo") and "--plugin" in line and "hc-echo-plugin" in line for line in lines)
