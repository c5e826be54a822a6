"""Why a guest frame was dropped. Bad input is data: every drop is counted by reason."""

from __future__ import annotations

import enum

__all__ = ["Drop"]


class Drop(enum.StrEnum):
    # Ethernet
    TRUNCATED_ETHERNET = "ethernet: frame shorter than its 14-byte header"
    NOT_FOR_US = "ethernet: destination MAC is neither the gateway nor broadcast"
    MULTICAST_MAC = "ethernet: multicast destination MAC"
    BAD_SOURCE_MAC = "ethernet: source MAC is broadcast or multicast"
    VLAN_TAGGED = "ethernet: 802.1Q/802.1ad VLAN tag (no VLANs on the guest link)"
    IPV6 = "ethernet: IPv6 (the gateway speaks IPv4 only)"
    LLC_FRAME = "ethernet: 802.3 length field instead of an EtherType"
    UNKNOWN_ETHERTYPE = "ethernet: EtherType not spoken here"
    # ARP (RFC 826)
    TRUNCATED_ARP = "arp: shorter than 28 bytes"
    ARP_NOT_ETHERNET_IPV4 = "arp: not Ethernet/IPv4 (htype, ptype, hlen or plen)"
    ARP_NOT_FOR_US = "arp: target is not a gateway address"
    ARP_BAD_SENDER = "arp: sender hardware address is broadcast or multicast"
    ARP_SENDER_NOT_SOURCE = "arp: sender hardware address is not the frame's source MAC"
    ARP_NOT_REQUEST = "arp: not a request (replies and gratuitous ARP are ignored)"
    # IPv4 (RFC 791)
    TRUNCATED_IPV4 = "ipv4: shorter than its header"
    BAD_IP_VERSION = "ipv4: version is not 4"
    BAD_IHL = "ipv4: header length below 20 bytes"
    BAD_TOTAL_LENGTH = "ipv4: total length below the header or beyond the frame"
    BAD_IP_CHECKSUM = "ipv4: header checksum"
    FRAGMENT = "ipv4: fragment (no reassembly)"
    IP_NOT_FOR_US = "ipv4: destination is not a gateway address"
    UNICAST_IN_LINK_BROADCAST = ("ipv4: unicast destination in a link-layer broadcast frame "
                                 "(RFC 1122 §3.3.6: silently discarded)")
    BAD_SOURCE_IP = "ipv4: source is not a host of the guest subnet"
    TCP_NOT_SERVED = "ipv4: TCP (no TCP service on the gateway)"
    UNKNOWN_PROTOCOL = "ipv4: protocol not spoken here"
    # ICMP (RFC 792)
    TRUNCATED_ICMP = "icmp: shorter than 8 bytes"
    BAD_ICMP_CHECKSUM = "icmp: checksum"
    ICMP_NOT_ECHO_REQUEST = "icmp: not an echo request"
    ICMP_TIMESTAMP_REPLY_UNWATCHED = "icmp: timestamp reply, and no guest clock watcher sent a probe"
    # UDP (RFC 768)
    TRUNCATED_UDP = "udp: shorter than its 8-byte header"
    BAD_UDP_LENGTH = "udp: length field below 8 or beyond the IP payload"
    BAD_UDP_CHECKSUM = "udp: checksum"
    BROADCAST_NOT_ACCEPTED = "udp: broadcast to a port whose service takes no broadcast"
    PORT_UNREACHABLE = "udp: no service on that port (ICMP port unreachable sent)"
    ICMP_ERROR_NOT_ALLOWED = ("udp: no service on that port, and no ICMP error may answer this datagram "
                              "(RFC 1122 §3.2.2)")
    ICMP_ERROR_RATE_LIMITED = ("udp: no service on that port; ICMP port unreachable not sent, over the "
                               "ICMP error rate limit (RFC 1812 §4.3.2.8)")
    # replies
    REPLY_OVER_MTU = "ipv4: a reply would exceed the MTU (the gateway never fragments)"
    REPLY_BAD_DESTINATION = "udp: a service addressed a reply beyond the guest that asked (not its MAC or a subnet address)"
    SERVICE_BAD_OUTPUT = "gateway: a service returned something other than bytes, UdpReply or (forwarding services) Forward"
