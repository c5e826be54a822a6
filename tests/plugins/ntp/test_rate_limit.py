"""Per-guest NTP rate limiting, chrony's way (interval, burst, leak), and off by default."""

import pytest

from gateway.app.config import Config
from gateway.core.service import GuestAddress
from plugins.ntp.plugin import PLUGIN
from plugins.ntp.rate_limit import RateLimit
from plugins.ntp.time_service import RATE_LIMITED, TimeService

GATEWAY = bytes([192, 168, 65, 1])
FLOODER = GuestAddress(bytes.fromhex("525400000001"), bytes([192, 168, 65, 3]), 40000)
POLITE = GuestAddress(bytes.fromhex("525400000002"), bytes([192, 168, 65, 4]), 40000)
REQUEST = bytes([0x23, 0, 6, 0xEC]) + bytes(44)


def test_a_burst_then_one_per_interval_and_one_in_four_leaked():
    limit = RateLimit(interval=3, burst=8, leak=2)
    answered = sum(limit.allow(b"guest", t * 0.01) for t in range(1000))  # 100 requests/s for 10 s
    # 8 at once, 1 more per 8 s (10 s: 1), and of the 991 refused by the bucket, every 4th leaks
    assert answered == 8 + 1 + (1000 - 9) // 4
    assert limit.leaked == (1000 - 9) // 4 and limit.refused == 1000 - answered


def test_guests_are_limited_apart_whatever_their_source_ports():
    service = TimeService(rate_limit=RateLimit(interval=3, burst=2, leak=4))
    for port in range(40000, 40100):
        service.handle_datagram(GuestAddress(FLOODER.mac, FLOODER.ip, port), GATEWAY, REQUEST, 1.0)
    assert service.drops[RATE_LIMITED] >= 90
    assert service.handle_datagram(POLITE, GATEWAY, REQUEST, 1.0)  # another guest is untouched


def test_a_polite_guest_is_never_limited():
    service = TimeService(rate_limit=RateLimit())
    for t in range(0, 3600, 16):  # chronyd's default poll, 64 s, and faster: every 16 s
        assert service.handle_datagram(POLITE, GATEWAY, REQUEST, float(t))
    assert service.drops[RATE_LIMITED] == 0


def test_the_clock_stepping_back_breaks_nothing():
    limit = RateLimit(interval=0, burst=1, leak=4)
    assert limit.allow(b"g", 100.0)
    assert not limit.allow(b"g", 50.0)  # stepped back: no refill, no error
    assert limit.allow(b"g", 101.5)


def test_the_table_of_guests_is_bounded():
    limit = RateLimit(max_guests=16)
    for n in range(1000):
        limit.allow(n.to_bytes(10, "big"), 1.0)
    assert len(limit) == 16


def test_off_by_default_and_on_from_the_ntp_table():
    assert Config().ntp.ratelimit is False
    service = PLUGIN.contribute(Config().ntp, Config().gateway).services[0]
    assert service.rate_limit is None
    config = Config.from_mapping({"ntp": {"ratelimit": True, "ratelimit_interval": 2, "ratelimit_burst": 4}})
    limited = PLUGIN.contribute(config.ntp, config.gateway).services[0]
    assert limited.rate_limit.period == 4.0 and limited.rate_limit.burst == 4 and limited.rate_limit.leak_every == 4


@pytest.mark.parametrize("table, message", [({"ratelimit_interval": 13}, "ratelimit_interval"),
                                            ({"ratelimit_burst": 0}, "ratelimit_burst"),
                                            ({"ratelimit_leak": 5}, "ratelimit_leak")])
def test_bad_rate_limit_settings_say_what_to_fix(table, message):
    from gateway.core.config import ConfigError
    with pytest.raises(ConfigError, match=message):
        Config.from_mapping({"ntp": table})
