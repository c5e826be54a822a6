"""Kiss-o'-Death RATE (RFC 5905 §7.4) for a guest over the rate limit, with `ratelimit_kod`."""

import struct

import pytest
from guest_frames import ntp_request

from gateway.core.service import GuestAddress
from gateway_process import GatewayProcess
from plugins.ntp.packet import HEADER, kiss_of_death
from plugins.ntp.rate_limit import RateLimit
from plugins.ntp.time_service import RATE_LIMITED, TimeService
from realpeers import GuestNamespace, requires_clients, requires_root, unique_name

GUEST = GuestAddress(bytes.fromhex("525400123456"), bytes([192, 168, 65, 3]), 40000)
GW = bytes([192, 168, 65, 1])
TRANSMIT = bytes.fromhex("e9b0c2d41234abcd")


def test_the_kiss_is_a_server_reply_with_stratum_0_refid_rate_and_the_originate_echoed():
    request = ntp_request(version=3, transmit=TRANSMIT)
    kiss = kiss_of_death(request, b"RATE")
    first, stratum, poll, _, _, _, refid, _, originate, receive, transmit = HEADER.unpack(kiss)
    assert (first >> 6, (first >> 3) & 7, first & 7) == (3, 3, 4)  # LI alarm, the request's version, mode 4
    assert (stratum, refid, poll) == (0, b"RATE", request[2])
    assert originate == struct.unpack("!Q", TRANSMIT)[0] and receive == transmit == 0
    assert len(kiss) == 48 <= len(request)


def test_a_guest_over_the_limit_gets_one_kiss_per_interval_then_silence():
    service = TimeService(rate_limit=RateLimit(interval=3, burst=1, leak=4, kod=True))
    assert len(service.handle_datagram(GUEST, GW, ntp_request(), 0.0)) == 1  # the burst: forwarded
    (kiss,) = service.handle_datagram(GUEST, GW, ntp_request(transmit=TRANSMIT), 0.1)
    assert isinstance(kiss, bytes) and kiss[1] == 0 and kiss[12:16] == b"RATE"
    assert service.handle_datagram(GUEST, GW, ntp_request(), 0.2) == []  # within 8 s: dropped
    assert service.drops[RATE_LIMITED] == 1 and service.kiss_of_death_sent == 1
    assert len(service.flows) == 1  # a kiss opens no flow: nothing reaches the upstream
    outputs = service.handle_datagram(GUEST, GW, ntp_request(), 20.0)  # a token back: forwarded again
    assert len(outputs) == 1 and not isinstance(outputs[0], bytes)


def test_without_kod_a_refused_request_gets_nothing():
    service = TimeService(rate_limit=RateLimit(interval=3, burst=1, leak=4))
    service.handle_datagram(GUEST, GW, ntp_request(), 0.0)
    assert service.handle_datagram(GUEST, GW, ntp_request(), 0.1) == []
    assert service.kiss_of_death_sent == 0


@requires_root
@requires_clients("ntpdig")
def test_ntpdig_takes_the_kiss_as_a_kiss(tmp_path):
    config = tmp_path / "hostclock.toml"
    config.write_text("[ntp]\nratelimit = true\nratelimit_interval = 6\nratelimit_burst = 1\n"
                      "ratelimit_leak = 4\nratelimit_kod = true\n")
    tap = unique_name("hct")
    with GatewayProcess("run", "--tap", tap, "--config", str(config)) as gateway, GuestNamespace() as ns:
        ns.adopt_tap(tap)
        first = ns.run(["ntpdig", "-j", "-t", "2", "192.168.65.1"], timeout=10)
        second = ns.run(["ntpdig", "-j", "-t", "2", "192.168.65.1"], timeout=10)
        assert gateway.stop() == 0
    assert first.returncode == 0 and '"stratum":10' in first.stdout.replace(" ", ""), first
    assert second.returncode != 0 and "KOD" in second.stderr, second
