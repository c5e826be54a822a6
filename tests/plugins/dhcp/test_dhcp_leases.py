"""plugins.dhcp.leases: the pool, expiry on `now`, stable addresses, reservations, declines."""

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.dhcp.leases import LeasePool, client_key

NETWORK = ipaddress.IPv4Network("192.168.65.0/24")
GATEWAY = bytes([192, 168, 65, 1])
ALIAS = bytes([192, 168, 65, 2])
LEASE = 7200.0


def ip(last: int, net: str = "192.168.65") -> bytes:
    return ipaddress.IPv4Address(f"{net}.{last}").packed


def mac(n: int) -> bytes:
    return bytes([0x52, 0x54, 0, 0, n >> 8, n & 0xFF])


def key(n: int) -> bytes:
    return client_key(None, mac(n))


def pool(network=NETWORK, excluded=(GATEWAY, ALIAS), **kwargs) -> LeasePool:
    kwargs.setdefault("lease_time", LEASE)
    return LeasePool(network, excluded, **kwargs)


def test_the_key_is_the_client_identifier_or_0x01_and_the_mac():
    assert client_key(None, mac(1)) == b"\x01" + mac(1)
    assert client_key(b"", mac(1)) == b"\x01" + mac(1)
    assert client_key(b"\xffduid", mac(1)) == b"\xffduid"


def test_the_same_client_gets_the_same_address_from_a_fresh_pool():
    """Stable across gateway restarts: nothing on disk, the address follows from the key."""
    first = pool().offer(key(1), mac(1), None, now=0.0)
    again = pool().offer(key(1), mac(1), None, now=5000.0)
    assert first.ip == again.ip == pool().home_address(key(1))
    # the home address is a fixed function of the key (BLAKE2b); pinned so a change is noticed
    assert first.ip == ip(202)  # for 52:54:00:00:00:01 in 192.168.65.0/24


def test_addresses_are_never_network_broadcast_gateway_or_alias_and_are_distinct():
    p = pool()
    given_out = [p.offer(key(n), mac(n), None, now=0.0).ip for n in range(252)]
    assert {ipaddress.IPv4Address(a) for a in given_out} == {NETWORK[n] for n in range(3, 255)}  # .3 - .254
    assert p.offer(key(999), mac(999), None, now=1.0) is None  # all held by live offers


def test_an_offer_is_held_briefly_then_goes_to_someone_else():
    tiny = pool(ipaddress.IPv4Network("10.0.0.0/29"), excluded=(ip(1, "10.0.0"),), offer_time=30)
    held = [tiny.offer(key(n), mac(n), None, now=0.0).ip for n in range(5)]  # .2 - .6
    assert tiny.offer(key(99), mac(99), None, now=29.0) is None
    late = tiny.offer(key(99), mac(99), None, now=30.0)
    assert late is not None and late.ip in held


def test_probing_prefers_never_used_addresses_over_ended_leases():
    p = pool()
    home = p.home_address(key(1))
    p.offer(key(2), mac(2), home, now=0.0)  # someone else took key 1's home (it was free and asked for)
    p.release(key(2), home, now=1.0)
    assert p.offer(key(1), mac(1), None, now=2.0).ip != home  # key 2's record is kept for key 2
    assert p.offer(key(2), mac(2), None, now=3.0).ip == home   # ... which gets its previous address


def test_requested_address_is_honoured_when_free():
    p = pool()
    assert p.offer(key(1), mac(1), ip(77), now=0.0).ip == ip(77)
    assert p.offer(key(2), mac(2), ip(77), now=0.0).ip != ip(77)  # held for key 1 now
    assert p.offer(key(3), mac(3), GATEWAY, now=0.0).ip != GATEWAY
    assert p.offer(key(4), mac(4), ip(9, "10.1.1"), now=0.0).ip in {NETWORK[n].packed for n in range(3, 255)}
    assert p.offer(key(5), mac(5), b"\x01\x02", now=0.0) is not None  # a malformed option 50 is just ignored


def test_a_current_lease_wins_over_the_requested_address():
    p = pool()
    bound = p.bind(key(1), mac(1), ip(40), now=0.0)
    assert p.offer(key(1), mac(1), ip(41), now=10.0) == bound  # same lease, untouched


def test_bind_grants_free_or_own_addresses_and_refuses_others():
    p = pool()
    lease = p.bind(key(1), mac(1), ip(50), now=0.0)
    assert lease.bound and lease.expires == LEASE and lease.ip == ip(50)
    assert p.bind(key(2), mac(2), ip(50), now=100.0) is None          # held by key 1
    assert p.bind(key(1), mac(1), ip(50), now=100.0).expires == 100.0 + LEASE  # renewal
    assert p.bind(key(2), mac(2), ip(50), now=100.0 + LEASE) is not None    # key 1's lease ended
    for wrong in (GATEWAY, ALIAS, ip(0), ip(255), ip(5, "10.0.0"), b"", b"\xc0\xa8\x41"):
        assert p.bind(key(3), mac(3), wrong, now=0.0) is None


def test_one_address_per_client():
    p = pool()
    p.bind(key(1), mac(1), ip(50), now=0.0)
    p.bind(key(1), mac(1), ip(60), now=1.0)
    assert p.lease_of(key(1)).ip == ip(60)
    assert p.bind(key(2), mac(2), ip(50), now=2.0) is not None  # the old address is free again
    assert len(p) == 2


def test_release_frees_the_address_but_remembers_the_client():
    p = pool()
    p.bind(key(1), mac(1), ip(50), now=0.0)
    assert not p.release(key(2), ip(50), now=1.0)   # not key 2's
    assert not p.release(key(1), ip(51), now=1.0)   # not that address
    assert p.release(key(1), ip(50), now=1.0)
    assert not p.lease_of(key(1)).is_active(1.0)
    assert p.offer(key(1), mac(1), None, now=2.0).ip == ip(50)


def test_decline_keeps_the_address_out_of_the_pool_for_a_lease_time():
    p = pool()
    offered = p.offer(key(1), mac(1), None, now=0.0)
    assert not p.decline(key(2), offered.ip, now=1.0)  # only the client it was offered to
    assert p.decline(key(1), offered.ip, now=1.0)
    assert p.lease_of(key(1)) is None
    assert p.offer(key(1), mac(1), None, now=2.0).ip != offered.ip
    assert p.bind(key(3), mac(3), offered.ip, now=2.0) is None
    assert p.bind(key(3), mac(3), offered.ip, now=1.0 + LEASE) is not None


def test_a_reservation_gives_that_mac_that_address_and_nobody_else():
    p = pool()
    assert p.reserve(mac(1), ip(3))
    assert p.offer(key(1), mac(1), ip(99), now=0.0).ip == ip(3)
    assert p.bind(key(2), mac(2), ip(3), now=0.0) is None
    assert p.offer(key(2), mac(2), ip(3), now=0.0).ip != ip(3)
    # with a DUID client identifier the reservation still follows the MAC
    fresh = pool()
    fresh.reserve(mac(1), ip(3))
    assert fresh.offer(b"\xff" + b"duid", mac(1), None, now=0.0).ip == ip(3)


def test_a_reserved_mac_asking_for_another_free_address_is_refused_towards_its_own():
    p = pool()
    p.reserve(mac(1), ip(3))
    assert p.bind(key(1), mac(1), ip(80), now=0.0) is None  # NAK: its reserved .3 is free
    p.bind(key(9), mac(9), ip(3), now=0.0)                   # impossible: reserved
    assert p.bind(key(1), mac(1), ip(3), now=0.0) is not None


def test_reserve_refuses_what_it_cannot_hold():
    p = pool()
    assert not p.reserve(mac(1), GATEWAY)
    assert not p.reserve(mac(1), ip(9, "10.0.0"))
    assert p.reserve(mac(1), ip(10))
    assert not p.reserve(mac(2), ip(10))              # reserved for mac 1
    p.bind(key(3), mac(3), ip(20), now=0.0)
    assert not p.reserve(mac(4), ip(20))              # held by mac 3 (no `now`: any record counts)
    assert not p.reserve(mac(4), ip(20), now=10.0)    # held actively
    assert p.reserve(mac(4), ip(20), now=LEASE + 1)   # ... no longer
    assert p.reserve(mac(1), ip(11))                  # a new reservation replaces the old
    assert p.reserve(mac(2), ip(10))


def test_unreserve_gives_the_address_back_to_the_pool():
    p = pool()
    assert p.reserve(mac(1), ip(10))
    assert p.offer(key(2), mac(2), ip(10), now=0.0).ip != ip(10)  # reserved for mac 1
    assert p.unreserve(mac(1)) and not p.unreserve(mac(1))
    assert p.reserve(mac(2), ip(10))                              # free to reserve for another
    assert p.unreserve(mac(2))
    assert p.offer(key(3), mac(3), ip(10), now=0.0).ip == ip(10)   # and to lease to anyone


def test_records_are_bounded_and_ended_leases_make_room():
    p = pool(max_records=4)
    for n in range(4):
        assert p.bind(key(n), mac(n), ip(10 + n), now=0.0) is not None
    assert p.offer(key(9), mac(9), None, now=1.0) is None      # four live leases: no room
    assert p.offer(key(9), mac(9), None, now=LEASE + 1) is not None
    assert len(p) <= 4


def test_a_pool_needs_room():
    with pytest.raises(ValueError):
        LeasePool(ipaddress.IPv4Network("10.0.0.0/31"), lease_time=60)
    with pytest.raises(ValueError):
        LeasePool(NETWORK, lease_time=0)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(["offer", "bind", "release", "decline"]),
                          st.integers(0, 7), st.integers(0, 15), st.floats(0, 100)), max_size=60))
def test_no_address_is_ever_held_by_two_clients(operations):
    """Whatever the sequence, live leases never share an address and stay in the pool."""
    p = pool(ipaddress.IPv4Network("10.0.0.0/28"), excluded=(ip(1, "10.0.0"),), lease_time=30.0, offer_time=5.0)
    now = 0.0
    for verb, client, host, step in operations:
        now += step
        address = ip(host, "10.0.0")
        if verb == "offer":
            p.offer(key(client), mac(client), address, now)
        elif verb == "bind":
            p.bind(key(client), mac(client), address, now)
        elif verb == "release":
            p.release(key(client), address, now)
        else:
            p.decline(key(client), address, now)
        live = [p.lease_of(key(c)) for c in range(8)]
        live = [lease for lease in live if lease is not None and lease.is_active(now)]
        assert len({lease.ip for lease in live}) == len(live)
        assert all(p.contains(lease.ip) for lease in live)
