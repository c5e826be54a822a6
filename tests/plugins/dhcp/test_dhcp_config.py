"""The [dhcp] configuration, its CLI flags, and the runtime binding the DHCP service."""

import pytest

from gateway.app.cli import _build_parser, _config_from_args
from gateway.app.config import Config, ConfigError
from plugins.dhcp.config import DhcpConfig
from gateway.app.runtime import Gateway
from plugins.dhcp.service import DhcpService


def test_vpnkit_like_defaults():
    config = Config().dhcp
    assert config.enabled and config.lease_time == 7200 and config.dns_servers == ()


def test_toml_section(tmp_path):
    path = tmp_path / "hostclock.toml"
    path.write_text('[dhcp]\nlease_time = 600\ndns_servers = ["10.0.0.53", "10.0.0.54"]\n')
    config = Config.from_toml(path).dhcp
    assert config.lease_time == 600 and config.dns_servers == ("10.0.0.53", "10.0.0.54")
    assert hash(config)  # a list from TOML becomes a tuple: the section stays immutable


@pytest.mark.parametrize("kwargs, message", [
    ({"lease_time": 59}, "lease_time"),
    ({"lease_time": 0xFFFFFFFF}, "lease_time"),
    ({"lease_time": 60.5}, "lease_time"),
    ({"lease_time": True}, "lease_time"),
    ({"enabled": "no"}, "true or false"),
    ({"dns_servers": "10.0.0.53"}, "list of IPv4"),
    ({"dns_servers": ["10.0.0.300"]}, "not an IPv4 address"),
    ({"dns_servers": [53]}, "not an IPv4 address"),
    ({"dns_servers": ["10.0.0.1"] * 64}, "at most 63"),
])
def test_bad_settings_say_what_to_fix(kwargs, message):
    with pytest.raises(ConfigError, match=message) as error:
        DhcpConfig(**kwargs)
    assert "\n" not in str(error.value)


def test_unknown_key_in_the_section_is_an_error():
    with pytest.raises(ConfigError, match="unknown key 'range'"):
        Config.from_mapping({"dhcp": {"range": "x"}})


def config_for(*argv):
    return _config_from_args(_build_parser().parse_args(["run", "--tap", "hc0", *argv]))


def test_cli_flags():
    assert config_for().dhcp == DhcpConfig()
    assert config_for("--no-dhcp").dhcp.enabled is False
    assert config_for("--dns", "10.0.0.53", "--dns", "10.0.0.54").dhcp.dns_servers == ("10.0.0.53", "10.0.0.54")
    with pytest.raises(ConfigError):
        config_for("--dns", "dns.example")


def test_flags_override_the_file(tmp_path):
    path = tmp_path / "hostclock.toml"
    path.write_text('[dhcp]\ndns_servers = ["10.0.0.53"]\nlease_time = 900\n')
    config = config_for("--config", str(path), "--dns", "10.0.0.99").dhcp
    assert config.dns_servers == ("10.0.0.99",) and config.lease_time == 900


class NoTransport:
    description = "nothing"


def test_the_runtime_binds_the_dhcp_service_only_when_enabled():
    gateway = Gateway(Config(), NoTransport())
    assert isinstance(gateway.stack.services[67], DhcpService)
    off = Gateway(Config().replace(dhcp={"enabled": False}), NoTransport())
    assert 67 not in off.stack.services
