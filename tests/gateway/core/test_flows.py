import pytest

from gateway.core.flows import FlowTable
from gateway.core.service import GuestAddress

MAC = bytes.fromhex("525400123456")
GW = bytes([192, 168, 65, 1])


def guest(port, ip=3):
    return GuestAddress(MAC, bytes([192, 168, 65, ip]), port)


def test_same_endpoint_same_flow_and_refreshed():
    table = FlowTable(idle_timeout=60, max_flows=8)
    first = table.touch(guest(1000), GW, now=0.0)
    again = table.touch(guest(1000), GW, now=30.0)
    assert again is first and first.last_active == 30.0 and len(table) == 1
    assert table.touch(guest(1001), GW, now=30.0) is not first
    assert table.touch(guest(1000, ip=4), GW, now=30.0) is not first  # keyed on (MAC, IP, port)


def test_another_mac_claiming_a_flows_ip_and_port_opens_its_own_flow():
    table = FlowTable(idle_timeout=60, max_flows=8)
    first = table.touch(guest(1000), GW, now=0.0)
    spoofed = GuestAddress(bytes.fromhex("5254000000ee"), first.guest.ip, first.guest.port)
    other = table.touch(spoofed, GW, now=1.0)
    assert other is not first and len(table) == 2
    assert first.guest.mac == MAC and other.guest.mac == spoofed.mac  # the first flow still answers its guest
    table.refresh(first, now=2.0)  # and stays keyed on its own MAC
    assert table.touch(guest(1000), GW, now=3.0) is first


def test_idle_flows_expire_on_the_monotonic_clock():
    table = FlowTable(idle_timeout=60, max_flows=8)
    a = table.touch(guest(1), GW, now=0.0)
    b = table.touch(guest(2), GW, now=10.0)
    assert table.next_expiry() == 60.0
    assert table.expire(now=59.9) == 0
    assert table.expire(now=60.0) == 1
    assert a.closed and not b.closed and table.get(a.id) is None and table.get(b.id) is b
    assert table.take_closed() == [a] and table.take_closed() == []
    assert table.next_expiry() == 70.0
    table.expire(now=1000.0)
    assert table.next_expiry() is None and len(table) == 0


def test_refresh_keeps_a_flow_alive():
    table = FlowTable(idle_timeout=60, max_flows=8)
    a = table.touch(guest(1), GW, now=0.0)
    table.touch(guest(2), GW, now=1.0)
    table.refresh(a, now=50.0)
    table.expire(now=61.0)
    assert not a.closed and len(table) == 1


def test_at_the_limit_the_oldest_quarter_is_evicted():
    table = FlowTable(idle_timeout=60, max_flows=8)
    flows = [table.touch(guest(p), GW, now=float(p)) for p in range(8)]
    table.touch(guest(0), GW, now=8.0)  # flow 0 becomes the most recent
    newest = table.touch(guest(100), GW, now=9.0)
    assert len(table) == 7
    closed = table.take_closed()
    assert closed == flows[1:3]  # the two (8 // 4) least recently active
    assert not flows[0].closed and not newest.closed
    assert table.evicted == 2


def test_table_stays_bounded_under_a_flood():
    table = FlowTable(idle_timeout=60, max_flows=1024)
    for port in range(10_000):
        table.touch(guest(port % 65536, ip=3 + port // 65536), GW, now=port * 1e-3)
        table.take_closed()
    assert len(table) <= 1024 and len(table._by_id) == len(table)


def test_bad_limits_are_refused():
    with pytest.raises(ValueError):
        FlowTable(idle_timeout=0)
    with pytest.raises(ValueError):
        FlowTable(max_flows=1)
