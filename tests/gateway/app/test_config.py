import pytest

from gateway.app.config import Config, ConfigError, GatewayConfig
from plugins.ntp.config import NtpConfig


def test_vpnkit_defaults():
    config = Config()
    assert (config.gateway.gateway_ip, config.gateway.gateway_mac, config.gateway.prefix_len, config.gateway.mtu) == \
        ("192.168.65.1", "f6:16:36:bc:f9:c6", 24, 1500)
    assert config.ntp.flow_idle_timeout == 60.0 and config.ntp.max_flows == 1024
    assert config.ntp.upstream is None  # the embedded responder


def test_immutable():
    with pytest.raises(Exception):
        Config().gateway.mtu = 9000


@pytest.mark.parametrize("kwargs, message", [
    ({"gateway_ip": "192.168.65.300"}, "not an IPv4 address"),
    ({"gateway_mac": "f6:16:36"}, "not a MAC address"),
    ({"gateway_mac": "01:00:5e:00:00:01"}, "multicast"),
    ({"prefix_len": 31}, "prefix"),
    ({"mtu": 100}, "mtu"),
    ({"host_alias_ip": "198.51.100.2"}, "not a host address of 192.168.65.0/24"),
    ({"host_alias_ip": "192.168.65.1"}, "equals gateway_ip"),
    ({"gateway_ip": "192.168.65.255"}, "not a host address"),
    ({"unbound_udp": "reject"}, "unbound_udp"),
])
def test_bad_gateway_settings_say_what_to_fix(kwargs, message):
    with pytest.raises(ConfigError, match=message) as error:
        GatewayConfig(**kwargs)
    assert "\n" not in str(error.value)


def test_upstream_must_be_loopback_unless_allowed():
    with pytest.raises(ConfigError, match="--allow-remote-upstream"):
        NtpConfig(upstream="192.0.2.10:123")
    assert NtpConfig(upstream="192.0.2.10:123", allow_remote_upstream=True).upstream == "192.0.2.10:123"
    assert NtpConfig(upstream="127.0.0.53:123").upstream == "127.0.0.53:123"
    for bad in ("localhost:123", "127.0.0.1", "127.0.0.1:99999", "127.0.0.1:0"):
        with pytest.raises(ConfigError):
            NtpConfig(upstream=bad)


def test_responder_settings():
    with pytest.raises(ConfigError, match="loopback"):
        NtpConfig(listen="0.0.0.0:123")
    with pytest.raises(ConfigError, match="stratum"):
        NtpConfig(stratum=16)
    assert NtpConfig(refid="GPS").refid == "GPS"
    with pytest.raises(ConfigError, match="refid"):
        NtpConfig(refid="TOOLONG")


def test_toml_file(tmp_path):
    path = tmp_path / "hostclock.toml"
    path.write_text('[gateway]\ngateway_ip = "192.0.2.2"\nprefix_len = 24\n[time]\nmax_flows = 64\n')
    config = Config.from_toml(path)
    assert config.gateway.gateway_ip == "192.0.2.2" and config.ntp.max_flows == 64
    assert config.gateway.mtu == 1500


@pytest.mark.parametrize("text, message", [
    ("[gateway]\nmtu = 1500\n[dns]\nx = 1\n", "unknown table \\[dns\\]"),
    ("[gateway]\ngatway_ip = '192.0.2.4'\n", "unknown key 'gatway_ip'"),
    ("[gateway\n", "not valid TOML"),
])
def test_bad_toml_files(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        Config.from_toml(path)


def test_missing_file():
    with pytest.raises(ConfigError, match="cannot read config file"):
        Config.from_toml("/nonexistent/hostclock.toml")


def test_replace_validates():
    assert Config().replace(gateway={"mtu": 9000}).gateway.mtu == 9000
    with pytest.raises(ConfigError):
        Config().replace(gateway={"mtu": 1})


@pytest.mark.parametrize("text", [
    b"[responder]\nrefid = [\"192.1.1\"]\n",  # found by the fuzzer: AttributeError escaped
    b"[time]\nmax_flows = 6.5\n",
    b"[gateway]\nmtu = { value = 1500 }\n",
    b"[dhcp]\ndns_servers = \"192.168.65.1\"\n",
    b"[gateway]\ngateway_ip = 5\n",
    b"[access]\nmax_guests = true\n",
    b"[gateway]\nmtu = 1500 # caf\xe9\n",  # not UTF-8; found by the fuzzer: UnicodeDecodeError escaped
])
def test_a_value_of_the_wrong_kind_is_one_line_naming_it(tmp_path, text):
    path = tmp_path / "hostclock.toml"
    path.write_bytes(text)
    with pytest.raises(ConfigError) as error:
        Config.from_toml(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_an_integer_is_a_number_where_a_number_belongs(tmp_path):
    path = tmp_path / "hostclock.toml"
    path.write_text("[time]\nflow_idle_timeout = 5\n")
    assert Config.from_toml(path).ntp.flow_idle_timeout == 5
