"""plugins.dhcp.service: the DHCP server's answers (RFC 2131 §4.3), addressing (§4.1), drops, and properties."""

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP

from gateway.core.addresses import BROADCAST_MAC
from gateway.core.config import GatewayConfig
from plugins.dhcp.config import DhcpConfig
from gateway.core.service import GuestAddress, UdpReply, UdpService
from plugins.dhcp.drops import DhcpDrop
from plugins.dhcp.packet import DhcpMessage, parse_message
from plugins.dhcp.service import DhcpService

MAC = bytes.fromhex("525400123456")
OTHER_MAC = bytes.fromhex("525400abcdef")
GATEWAY = "192.168.65.1"
UNSPECIFIED = bytes(4)
BROADCAST_IP = b"\xff" * 4
FROM_NEW_CLIENT = GuestAddress(MAC, UNSPECIFIED, 68)


def packed(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def dhcp(options, *, chaddr=MAC, xid=0x1234ABCD, **fields) -> bytes:
    """A client message built by scapy; `options` in scapy's DHCP notation, 'end' appended."""
    return bytes(BOOTP(chaddr=chaddr, xid=xid, **fields) / DHCP(options=[*options, "end"]))


def decoded(reply: UdpReply) -> tuple[BOOTP, dict]:
    """The reply as scapy reads it, and its options as a dict."""
    bootp = BOOTP(reply.payload)
    options = {o[0]: o[1] if len(o) == 2 else o[1:] for o in bootp[DHCP].options if isinstance(o, tuple)}
    return bootp, options


def option_codes(reply: UdpReply) -> list[int]:
    return list(parse_message(reply.payload).options)


@pytest.fixture
def service():
    return DhcpService(GatewayConfig())


def one(replies):
    assert len(replies) == 1, replies
    return replies[0]


def discover(service, *, now=0.0, source=FROM_NEW_CLIENT, **kwargs) -> UdpReply:
    options = kwargs.pop("options", [])
    return one(service.handle_datagram(source, packed(GATEWAY), dhcp([("message-type", "discover"), *options],
                                                                       **kwargs), now))


def request(service, options, *, now=1.0, source=FROM_NEW_CLIENT, local_ip=GATEWAY, **fields) -> list[UdpReply]:
    return service.handle_datagram(source, packed(local_ip), dhcp([("message-type", "request"), *options], **fields),
                                   now)


def test_it_is_a_udp_service_on_port_67_taking_broadcasts(service):
    assert isinstance(service, UdpService)
    assert service.port == 67 and service.accepts_broadcast


# -- DISCOVER -> OFFER (§4.3.1) ----------------------------------------------------------------------

def test_offer_carries_the_lease_and_vpnkits_parameters(service):
    reply = discover(service)
    bootp, options = decoded(reply)
    assert bootp.op == 2 and bootp.xid == 0x1234ABCD and bootp.chaddr[:6] == MAC
    assert bootp.ciaddr == "0.0.0.0" and bootp.siaddr == "0.0.0.0" and bootp.giaddr == "0.0.0.0"
    assert ipaddress.IPv4Address(bootp.yiaddr) in ipaddress.IPv4Network("192.168.65.0/24")
    assert bootp.yiaddr not in ("192.168.65.0", "192.168.65.1", "192.168.65.2", "192.168.65.255")
    assert options == {
        "message-type": 2, "server_id": GATEWAY, "lease_time": 7200, "renewal_time": 3600,
        "rebinding_time": 6300, "subnet_mask": "255.255.255.0", "router": GATEWAY,
        "broadcast_address": "192.168.65.255", "NTP_server": GATEWAY, "interface-mtu": 1500,
    }
    assert len(reply.payload) == 300  # padded to the BOOTP minimum
    assert service.sent == {"DHCPOFFER": 1}


def test_offer_is_unicast_to_yiaddr_and_chaddr_without_the_broadcast_bit(service):
    reply = discover(service)
    assert reply.dst_ip == packed(BOOTP(reply.payload).yiaddr) and reply.dst_mac == MAC


def test_offer_is_broadcast_when_the_client_sets_the_broadcast_bit(service):
    reply = discover(service, flags=0x8000)
    assert (reply.dst_ip, reply.dst_mac) == (BROADCAST_IP, BROADCAST_MAC)
    assert BOOTP(reply.payload).flags == 0x8000  # 'flags' from the client (Table 3)


@pytest.mark.parametrize("message_type", ["discover", "request", "decline", "release", "inform"])
def test_a_request_whose_chaddr_is_not_the_sender_is_dropped(service, message_type):
    """No relay agent on the guest link (giaddr is refused): a client asks only for its own MAC."""
    fields = {"ciaddr": "192.168.65.40"} if message_type in ("release", "inform") else {}
    options = [("requested_addr", "192.168.65.40")] if message_type in ("request", "decline") else []
    assert service.handle_datagram(GuestAddress(OTHER_MAC, UNSPECIFIED, 68), packed(GATEWAY),
                                   dhcp([("message-type", message_type), *options], **fields), 0.0) == []
    assert service.drops == {DhcpDrop.CHADDR_NOT_SENDER: 1}
    assert len(service.leases) == 0 and not service.sent


def test_requested_parameters_come_first_in_the_clients_order(service):
    reply = discover(service, options=[("param_req_list", [42, 26, 3, 15, 1])])
    assert option_codes(reply) == [53, 54, 51, 58, 59, 42, 26, 3, 1, 28]


def test_client_identifier_is_returned_unaltered_rfc6842(service):
    reply = discover(service, options=[("client_id", b"\xff\x00\x01\x02duid")])
    assert parse_message(reply.payload).options[61] == b"\xff\x00\x01\x02duid"
    assert option_codes(reply)[:3] == [53, 54, 61]


def test_dns_is_sent_only_when_configured():
    asked = [("param_req_list", [6, 1, 3])]
    assert 6 not in option_codes(discover(DhcpService(GatewayConfig()), options=asked))
    configured = DhcpService(GatewayConfig(), DhcpConfig(dns_servers=("198.51.100.53", "198.51.100.54")))
    reply = discover(configured, options=asked)
    assert decoded(reply)[1]["name_server"] == ("198.51.100.53", "198.51.100.54")
    assert parse_message(reply.payload).options[6] == packed("198.51.100.53") + packed("198.51.100.54")
    assert option_codes(reply)[5] == 6


def test_lease_time_and_mtu_come_from_the_configuration():
    service = DhcpService(GatewayConfig(mtu=9000), DhcpConfig(lease_time=600))
    options = decoded(discover(service))[1]
    assert (options["lease_time"], options["renewal_time"], options["rebinding_time"]) == (600, 300, 525)
    assert options["interface-mtu"] == 9000


def test_the_same_mac_gets_the_same_address_after_a_restart():
    first = BOOTP(discover(DhcpService(GatewayConfig())).payload).yiaddr
    assert BOOTP(discover(DhcpService(GatewayConfig()), now=999.0).payload).yiaddr == first


def test_option_50_is_honoured_when_free(service):
    reply = discover(service, options=[("requested_addr", "192.168.65.77")])
    assert BOOTP(reply.payload).yiaddr == "192.168.65.77"


# -- size limits: option 57 and the MTU (RFC 2132 §9.10, RFC 2131 §2) ------------------------------

MANY_DNS = DhcpConfig(dns_servers=tuple(f"198.51.100.{n}" for n in range(1, 64)))  # a 252-octet option 6


def test_without_option_57_a_reply_fits_576_octets_and_drops_what_does_not_fit():
    reply = discover(DhcpService(GatewayConfig(), MANY_DNS), options=[("param_req_list", [6, 42, 1, 3])])
    assert 28 + len(reply.payload) <= 576
    codes = option_codes(reply)
    assert codes[:9] == [53, 54, 51, 58, 59, 6, 42, 1, 3]  # requested first, all of them fit
    assert 26 not in codes                                   # the unrequested MTU option did not


def test_a_larger_option_57_lets_everything_in():
    reply = discover(DhcpService(GatewayConfig(), MANY_DNS),
                     options=[("param_req_list", [6]), ("max_dhcp_size", 1500)])
    assert set(option_codes(reply)) >= {6, 1, 3, 28, 42, 26}
    assert 28 + len(reply.payload) > 576


@pytest.mark.parametrize("max_size", [0, 100, 575])
def test_an_option_57_below_576_counts_as_576(max_size):
    reply = discover(DhcpService(GatewayConfig(), MANY_DNS), options=[("max_dhcp_size", max_size)])
    assert 28 + len(reply.payload) <= 576 and 42 in option_codes(reply)


def test_option_57_never_beats_the_mtu():
    reply = discover(DhcpService(GatewayConfig(mtu=576), MANY_DNS),
                     options=[("param_req_list", [6]), ("max_dhcp_size", 9000)])
    assert 28 + len(reply.payload) <= 576


# -- REQUEST -> ACK / NAK (§4.3.2) -----------------------------------------------------------------

def offered_address(service) -> str:
    return BOOTP(discover(service).payload).yiaddr


def test_selecting_request_gets_an_ack_for_the_offered_address(service):
    address = offered_address(service)
    reply = one(request(service, [("server_id", GATEWAY), ("requested_addr", address),
                                  ("param_req_list", [1, 3, 42])]))
    bootp, options = decoded(reply)
    assert options["message-type"] == 5 and bootp.yiaddr == address
    assert options["NTP_server"] == GATEWAY and options["router"] == GATEWAY and options["lease_time"] == 7200
    assert (reply.dst_ip, reply.dst_mac) == (packed(address), MAC)
    assert service.leases.lease_of(b"\x01" + MAC).bound


def test_init_reboot_after_a_gateway_restart_is_acked_authoritatively():
    address = offered_address(DhcpService(GatewayConfig()))
    restarted = DhcpService(GatewayConfig())
    reply = one(request(restarted, [("requested_addr", address)]))
    assert decoded(reply)[1]["message-type"] == 5 and BOOTP(reply.payload).yiaddr == address


def test_init_reboot_on_the_wrong_network_is_naked_by_broadcast(service):
    reply = one(request(service, [("requested_addr", "203.0.113.15")]))
    bootp, options = decoded(reply)
    assert options["message-type"] == 6 and options["server_id"] == GATEWAY
    assert bootp.yiaddr == "0.0.0.0" and bootp.ciaddr == "0.0.0.0"
    assert "lease_time" not in options and "router" not in options
    assert (reply.dst_ip, reply.dst_mac) == (BROADCAST_IP, BROADCAST_MAC)
    assert service.sent["DHCPNAK"] == 1


def test_a_request_for_someone_elses_address_is_naked(service):
    address = offered_address(service)
    thief = GuestAddress(OTHER_MAC, UNSPECIFIED, 68)
    reply = one(request(service, [("server_id", GATEWAY), ("requested_addr", address)], source=thief,
                        chaddr=OTHER_MAC))
    assert decoded(reply)[1]["message-type"] == 6


def test_a_request_selecting_another_server_declines_our_offer_silently(service):
    address = offered_address(service)
    assert request(service, [("server_id", "192.168.65.99"), ("requested_addr", address)]) == []
    assert service.drops == {DhcpDrop.OTHER_SERVER_SELECTED: 1}
    assert not service.leases.lease_of(b"\x01" + MAC).is_active(1.0)  # the offer is free again


def test_renewing_is_unicast_from_the_leased_address_and_acked_to_ciaddr(service):
    address = offered_address(service)
    request(service, [("server_id", GATEWAY), ("requested_addr", address)])
    renewing = GuestAddress(MAC, packed(address), 68)
    reply = one(request(service, [], source=renewing, ciaddr=address, now=3600.0))
    bootp, options = decoded(reply)
    assert options["message-type"] == 5 and bootp.ciaddr == address and bootp.yiaddr == address
    assert (reply.dst_ip, reply.dst_mac) == (packed(address), MAC)
    assert service.leases.lease_of(b"\x01" + MAC).expires == 3600.0 + 7200


def test_rebinding_after_a_restart_is_acked(service):
    reply = one(request(service, [], source=GuestAddress(MAC, packed("192.168.65.50"), 68),
                        ciaddr="192.168.65.50", flags=0x8000))
    assert decoded(reply)[1]["message-type"] == 5
    assert reply.dst_ip == packed("192.168.65.50")  # ciaddr wins over the broadcast bit (§4.1)


def test_a_request_naming_no_address_is_dropped(service):
    assert request(service, [("server_id", GATEWAY)]) == []
    assert service.drops == {DhcpDrop.REQUEST_WITHOUT_ADDRESS: 1}


# -- DECLINE, RELEASE, INFORM (§4.3.3 - §4.3.5) ------------------------------------------------------

def send(service, message_type, options=(), *, source=FROM_NEW_CLIENT, now=2.0, **fields):
    return service.handle_datagram(source, packed(GATEWAY), dhcp([("message-type", message_type), *options],
                                                                   **fields), now)


def test_decline_makes_the_next_offer_another_address(service):
    address = offered_address(service)
    assert send(service, "decline", [("server_id", GATEWAY), ("requested_addr", address)]) == []
    assert BOOTP(discover(service, now=3.0).payload).yiaddr != address
    assert not service.drops
    # found by the fuzzer (bench/fuzz/corpus/dhcp_service/crash-976b6c5d85d6b3cc-decline-uncounted):
    # a DECLINE acted on was neither answered nor dropped, counted nowhere
    assert service.taken == {"DHCPDECLINE": 1}


def test_decline_of_an_address_never_offered_is_dropped(service):
    assert send(service, "decline", [("requested_addr", "192.168.65.77")]) == []
    assert service.drops == {DhcpDrop.DECLINE_UNKNOWN: 1}


def test_release_frees_the_address_for_others(service):
    address = offered_address(service)
    request(service, [("server_id", GATEWAY), ("requested_addr", address)])
    assert send(service, "release", [("server_id", GATEWAY)], ciaddr=address,
                source=GuestAddress(MAC, packed(address), 68)) == []
    assert service.taken == {"DHCPRELEASE": 1} and not service.drops
    other = GuestAddress(OTHER_MAC, UNSPECIFIED, 68)
    reply = one(request(service, [("requested_addr", address)], source=other, chaddr=OTHER_MAC, now=3.0))
    assert decoded(reply)[1]["message-type"] == 5


@pytest.mark.parametrize("options, fields, reason", [
    ([("server_id", GATEWAY)], {"ciaddr": "192.168.65.77"}, DhcpDrop.RELEASE_UNKNOWN),
    ([("server_id", "203.0.113.9")], {"ciaddr": "192.168.65.77"}, DhcpDrop.NOT_OUR_SERVER_ID),
])
def test_release_that_is_not_ours_to_take_is_dropped(service, options, fields, reason):
    assert send(service, "release", options, **fields) == []
    assert service.drops == {reason: 1}


def test_inform_gets_parameters_but_no_lease(service):
    source = GuestAddress(MAC, packed("192.168.65.40"), 68)
    reply = one(send(service, "inform", [("param_req_list", [42])], source=source, ciaddr="192.168.65.40"))
    bootp, options = decoded(reply)
    assert options["message-type"] == 5 and options["NTP_server"] == GATEWAY
    assert not {"lease_time", "renewal_time", "rebinding_time"} & set(options)
    assert bootp.yiaddr == "0.0.0.0" and bootp.ciaddr == "192.168.65.40"
    assert (reply.dst_ip, reply.dst_mac) == (packed("192.168.65.40"), MAC)
    assert service.leases.lease_of(b"\x01" + MAC) is None  # nothing allocated


def test_inform_from_outside_the_subnet_is_dropped(service):
    assert send(service, "inform", ciaddr="198.51.100.5") == []
    assert send(service, "inform") == []  # no ciaddr and from 0.0.0.0
    assert service.drops == {DhcpDrop.INFORM_OFF_SUBNET: 2}


# -- drops --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("payload, reason", [
    (b"\x01" * 100, DhcpDrop.TRUNCATED),
    (dhcp([("message-type", "discover")])[:236] + b"\x00\x00\x00\x00\x35\x01\x01\xff", DhcpDrop.BAD_MAGIC_COOKIE),
    (dhcp([("message-type", "discover")], op=2), DhcpDrop.NOT_BOOTREQUEST),
    (dhcp([("message-type", "discover")], htype=6), DhcpDrop.NOT_ETHERNET),
    (dhcp([("message-type", "discover")], hlen=16), DhcpDrop.NOT_ETHERNET),
    (dhcp([("message-type", "discover")], giaddr="198.51.100.1"), DhcpDrop.RELAYED),
    (dhcp([("message-type", "offer")]), DhcpDrop.SERVER_MESSAGE_TYPE),
    (dhcp([("message-type", "ack")]), DhcpDrop.SERVER_MESSAGE_TYPE),
    (dhcp([("param_req_list", [1])]), DhcpDrop.MISSING_MESSAGE_TYPE),
    # a plain BOOTP request with an RFC 1497 vendor field: the cookie, end, padding
    (bytes(BOOTP(chaddr=MAC))[:236] + b"\x63\x82\x53\x63\xff" + bytes(59), DhcpDrop.MISSING_MESSAGE_TYPE),
])
def test_bad_input_is_dropped_and_counted(service, payload, reason):
    assert service.handle_datagram(FROM_NEW_CLIENT, packed(GATEWAY), payload, 0.0) == []
    assert service.drops == {reason: 1}
    assert not service.sent


def test_a_full_pool_offers_nothing():
    service = DhcpService(GatewayConfig(gateway_ip="198.51.100.1", prefix_len=30))  # .1 gateway, .2 alias slot
    for n in range(2):
        mac = bytes([2, 0, 0, 0, 0, n])
        assert service.handle_datagram(GuestAddress(mac, UNSPECIFIED, 68), packed("198.51.100.1"),
                                       dhcp([("message-type", "discover")], chaddr=mac), 0.0) == []
    assert service.drops == {DhcpDrop.NO_ADDRESS_AVAILABLE: 2}


def test_reserve_steers_a_mac_to_its_preferred_address(service):
    assert service.reserve(MAC, packed("192.168.65.3"))
    assert BOOTP(discover(service).payload).yiaddr == "192.168.65.3"
    assert not service.reserve(OTHER_MAC, packed("192.168.65.3"))


# -- properties ----------------------------------------------------------------------------------------

def assert_well_formed(reply: UdpReply, request_options: dict | None = None) -> None:
    """A reply is a BOOTREPLY that our parser and scapy both read, within the size limits."""
    assert type(reply) is UdpReply
    message = parse_message(reply.payload)
    assert isinstance(message, DhcpMessage), message
    assert message.op == 2 and message.htype == 1 and message.hlen == 6
    assert message.message_type in (2, 5, 6)
    assert message.options[54] == packed(GATEWAY)
    assert 300 <= len(reply.payload) <= 576 - 28 or (request_options and 57 in request_options)
    assert 28 + len(reply.payload) <= 1500
    assert BOOTP(reply.payload).op == 2
    assert reply.dst_mac in (MAC, BROADCAST_MAC)
    address = ipaddress.IPv4Address(reply.dst_ip)
    assert reply.dst_ip == BROADCAST_IP or address in ipaddress.IPv4Network("192.168.65.0/24")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=700))
def test_any_payload_never_raises(payload):
    service = DhcpService(GatewayConfig())
    for reply in service.handle_datagram(FROM_NEW_CLIENT, packed(GATEWAY), payload, 0.0):
        assert_well_formed(reply)


OPTION_VALUES = st.one_of(
    st.binary(max_size=6),
    st.sampled_from([packed(a) for a in ("192.168.65.1", "192.168.65.9", "192.168.65.255", "198.51.100.1",
                                         "0.0.0.0", "192.168.65.2")]),
    st.binary(min_size=2, max_size=2),
)
RANDOM_OPTIONS = st.lists(st.tuples(st.sampled_from([1, 3, 6, 12, 50, 50, 51, 54, 55, 57, 61, 99]), OPTION_VALUES),
                          max_size=8)


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(message_type=st.one_of(st.sampled_from([1, 3, 4, 7, 8]), st.integers(0, 10)), options=RANDOM_OPTIONS,
       ciaddr=st.sampled_from(["0.0.0.0", "192.168.65.9", "198.51.100.1", "192.168.65.1"]),
       flags=st.sampled_from([0, 0x8000, 0x0001]), htype=st.sampled_from([1, 1, 1, 6]),
       source_ip=st.sampled_from(["0.0.0.0", "192.168.65.9"]), same_mac=st.booleans(),
       cut=st.one_of(st.just(0), st.integers(1, 40)))
def test_any_dhcp_shaped_message_never_raises_and_any_reply_is_well_formed(
        message_type, options, ciaddr, flags, htype, source_ip, same_mac, cut):
    """Messages close to valid ones reach every branch of the server, repeatedly, on one service."""
    service = DhcpService(GatewayConfig())
    raw_options = b"".join(bytes((code, len(value))) + value for code, value in options)
    body = bytes(BOOTP(chaddr=MAC, xid=7, flags=flags, htype=htype, ciaddr=ciaddr))[:236] + b"\x63\x82\x53\x63"
    payload = body + bytes((53, 1, message_type)) + raw_options + b"\xff"
    if cut:
        payload = payload[:-cut]
    source = GuestAddress(MAC if same_mac else OTHER_MAC, packed(source_ip), 68)
    for now in (0.0, 1.0, 10000.0):
        for reply in service.handle_datagram(source, packed(GATEWAY), payload, now):
            assert_well_formed(reply, dict(options))
    assert sum(service.drops.values()) + sum(service.sent.values()) >= 3 or message_type in (4, 7)


# -- one guest cannot take the pool (RFC 2131 §7) ---------------------------------------------------------

def test_300_discovers_from_one_mac_with_other_chaddrs_take_nothing(service):
    """The reviewer's flood: one source MAC, 300 chaddrs. Before, each got an OFFER and the /24 ran dry."""
    for n in range(300):
        chaddr = bytes([2, 0, 0, 0, n >> 8, n & 0xFF])
        assert service.handle_datagram(FROM_NEW_CLIENT, packed(GATEWAY),
                                       dhcp([("message-type", "discover")], chaddr=chaddr), 0.0) == []
    assert service.drops == {DhcpDrop.CHADDR_NOT_SENDER: 300}
    assert len(service.leases) == 0
    newcomer = GuestAddress(OTHER_MAC, UNSPECIFIED, 68)
    assert decoded(discover(service, source=newcomer, chaddr=OTHER_MAC))[1]["message-type"] == 2


def flood_with_client_ids(service, message_type, count=300, now=0.0):
    replies = []
    for n in range(count):
        options = [("client_id", b"\xff" + n.to_bytes(4, "big"))]
        if message_type == "request":
            options.append(("requested_addr", f"192.168.65.{3 + n % 250}"))
        replies += service.handle_datagram(FROM_NEW_CLIENT, packed(GATEWAY),
                                           dhcp([("message-type", message_type), *options]), now)
    return replies


def active_addresses(service, now, identities=300):
    """How many of the flood's identities hold an active address (offered or bound)."""
    leases = [service.leases.lease_of(b"\xff" + n.to_bytes(4, "big")) for n in range(identities)]
    return sum(1 for lease in leases if lease is not None and lease.is_active(now))


@pytest.mark.parametrize("message_type", ["discover", "request"])
def test_one_mac_under_many_client_identifiers_holds_at_most_four_addresses(service, message_type):
    from plugins.dhcp.service import MAX_CLIENTS_PER_MAC
    assert MAX_CLIENTS_PER_MAC == 4
    replies = flood_with_client_ids(service, message_type)
    assert len(replies) == 300  # each identity is answered (and the MAC's oldest address withdrawn)
    assert active_addresses(service, 0.5) == MAX_CLIENTS_PER_MAC
    assert service.withdrawn == 300 - MAX_CLIENTS_PER_MAC
    # the newest identity keeps what it was given
    last = parse_message(replies[-1].payload)
    assert service.leases.lease_of(b"\xff" + (299).to_bytes(4, "big")).ip == last.yiaddr
    # another guest is served from a pool that is not exhausted
    newcomer = GuestAddress(OTHER_MAC, UNSPECIFIED, 68)
    assert decoded(discover(service, source=newcomer, chaddr=OTHER_MAC, now=0.5))[1]["message-type"] == 2


def test_a_few_identities_on_one_mac_keep_their_addresses(service):
    """An initramfs client and the system's, each with its own identifier: no withdrawal below the cap."""
    replies = flood_with_client_ids(service, "discover", count=4)
    assert len({parse_message(r.payload).yiaddr for r in replies}) == 4
    assert service.withdrawn == 0 and active_addresses(service, 0.5) == 4
    again = flood_with_client_ids(service, "discover", count=4, now=1.0)  # the same four ask again
    assert [parse_message(r.payload).yiaddr for r in again] == [parse_message(r.payload).yiaddr for r in replies]
    assert service.withdrawn == 0


def test_a_withdrawn_offer_no_longer_holds_its_address(service):
    first = parse_message(flood_with_client_ids(service, "discover", count=1)[0].payload).yiaddr
    flood_with_client_ids(service, "discover", count=5)  # identities 0..4: identity 0 is the oldest
    assert not service.leases.lease_of(b"\xff" + (0).to_bytes(4, "big")).is_active(0.5)
    other = GuestAddress(OTHER_MAC, UNSPECIFIED, 68)
    reply = one(request(service, [("requested_addr", ipaddress.IPv4Address(first).compressed)], source=other,
                        chaddr=OTHER_MAC, now=0.5))
    assert decoded(reply)[1]["message-type"] == 5  # the withdrawn address went to someone else


# -- one rule for "a guest host" with the stack ----------------------------------------------------------------

@pytest.mark.parametrize("address", ["192.168.65.0", "192.168.65.1", "192.168.65.2", "192.168.65.3",
                                     "192.168.65.128", "192.168.65.254", "192.168.65.255", "198.51.100.1"])
def test_the_dhcp_server_and_the_stack_agree_on_what_a_guest_address_is(address):
    """INFORM (RFC 2131 §4.3.5) is answered exactly for the sources the stack accepts from a guest."""
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    from gateway.core.stack import Stack
    config = GatewayConfig(host_alias_ip="192.168.65.2")
    service = DhcpService(config)
    ping = bytes(Ether(dst="f6:16:36:bc:f9:c6", src="52:54:00:12:34:56") / IP(src=address, dst=GATEWAY) / ICMP())
    stack_accepts = bool(Stack(config).receive_frame(ping, now=0.0))
    answered = bool(send(service, "inform", source=GuestAddress(MAC, packed(address), 68), ciaddr=address))
    assert answered == stack_accepts
    assert stack_accepts == (address in ("192.168.65.3", "192.168.65.128", "192.168.65.254"))


def test_the_per_mac_bookkeeping_stays_bounded():
    """MACs whose addresses have all lapsed are forgotten once more MACs are known than leases can exist."""
    service = DhcpService(GatewayConfig(), max_records=8)
    for n in range(40):
        mac = bytes([2, 0, 0, 0, 1, n])
        discover(service, source=GuestAddress(mac, UNSPECIFIED, 68), chaddr=mac, now=100.0 * n)  # offers last 60 s
    assert len(service._clients_by_mac) <= 8 + 1


def test_with_report_guest_clock_a_bound_lease_is_also_news_of_the_guest(service):
    from gateway.core.guest_clock import GuestClockReporter, GuestSeen

    assert isinstance(service, GuestClockReporter) and not service.report_guest_clock
    service.report_guest_clock = True
    address = offered_address(service)
    ack, seen = request(service, [("server_id", GATEWAY), ("requested_addr", address)])
    assert decoded(ack)[1]["message-type"] == 5  # DHCPACK
    assert seen == GuestSeen(MAC, packed(address))
