"""Address allocation for the DHCP server: the pool, leases that expire on `now`, a stable address per client.

Sans-IO: time is the `now` the caller passes (the runtime's monotonic clock).

* The pool is every host address of the guest subnet except the excluded ones
  (the gateway and the host alias); network and broadcast addresses are never in it.
* Stable: a client's home address is a keyed hash (BLAKE2b) of its key into the
  subnet, and from there the first address that is free, by linear probing. The
  same client gets the same address across gateway restarts, with no state on disk.
* The key is the client identifier (option 61), or ``0x01 + chaddr`` without one,
  which is what an Ethernet client identifier contains anyway (RFC 2132 §9.14),
  so a client gets one address whether or not it sends option 61. RFC 2131 §4.2:
  "If the client does not provide a 'client identifier' option, the server MUST
  use the contents of the 'chaddr' field to identify the client."
* A record stays after its lease expires or is released, so a returning client
  gets its previous address (RFC 2131 §4.3.1); it is reused for another client only
  when no never-used address is left, or to make room (at most `max_records`).
* `reserve(mac, ip)` holds an address for one MAC (a transport that knows a
  guest's preferred address, such as vmnet's, calls it); `unreserve(mac)` lets
  it go when that guest detaches. (Not `release`: that is DHCPRELEASE's, of a lease.)
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, replace

__all__ = ["Lease", "LeasePool", "client_key"]

_HASH_PERSON = b"hostclock-dhcp"  # BLAKE2b personalisation: this hash is ours alone


def client_key(client_id: bytes | None, mac: bytes) -> bytes:
    """How a client is known: its client identifier (option 61), else 0x01 + its MAC."""
    return client_id if client_id else b"\x01" + mac


@dataclass(frozen=True, slots=True)
class Lease:
    """An address held for a client until `expires` (in the caller's `now` units)."""

    client: bytes
    mac: bytes
    ip: bytes
    expires: float
    #: False while the address is only offered (held briefly for the client's REQUEST)
    bound: bool

    def is_active(self, now: float) -> bool:
        return now < self.expires


class LeasePool:
    """The guest subnet's addresses and who holds which."""

    def __init__(self, network: ipaddress.IPv4Network, excluded: Iterable[bytes] = (), *,
                 lease_time: float, offer_time: float = 60.0, max_records: int = 4096) -> None:
        if network.num_addresses < 4:
            raise ValueError(f"{network} has no room for a pool (use a /30 or larger)")
        if lease_time <= 0 or offer_time <= 0 or max_records < 1:
            raise ValueError("lease_time, offer_time and max_records must be positive")
        self.network = network
        self.lease_time = lease_time
        #: how long an offered address is held for the REQUEST that should follow
        self.offer_time = min(offer_time, lease_time)
        #: how long a declined address is kept out of the pool
        self.decline_time = lease_time
        self.max_records = max_records
        self._first = int(network.network_address) + 1
        self._size = network.num_addresses - 2
        self._excluded = frozenset(_as_int(ip) for ip in excluded)
        self._by_client: dict[bytes, Lease] = {}
        self._by_ip: dict[int, Lease] = {}
        self._declined: dict[int, float] = {}  # address -> until
        self._reserved_ip_by_mac: dict[bytes, int] = {}
        self._reserved_mac_by_ip: dict[int, bytes] = {}

    def __len__(self) -> int:
        """How many addresses have a record (active or not)."""
        return len(self._by_ip)

    # -- queries ---------------------------------------------------------------------

    def contains(self, ip: bytes) -> bool:
        """Whether `ip` is a pool address (a subnet host, not excluded)."""
        return self._in_pool(_as_int(ip))

    def lease_of(self, client: bytes) -> Lease | None:
        """The client's record, active or expired, or None."""
        return self._by_client.get(client)

    def home_address(self, client: bytes) -> bytes:
        """Where probing for `client` starts: the hash of its key into the subnet."""
        return (self._first + self._home(client)).to_bytes(4, "big")

    # -- the DHCP verbs ----------------------------------------------------------------

    def offer(self, client: bytes, mac: bytes, requested: bytes | None, now: float) -> Lease | None:
        """An address to offer (DISCOVER, RFC 2131 §4.3.1), held for `offer_time`; None if the pool is full.

        In order: the address reserved for `mac`; the client's current or previous
        address; the requested address (option 50); the first free address from home.
        """
        n = self._choose(client, mac, requested, now)
        if n is None:
            return None
        current = self._by_client.get(client)
        if current is not None and current.bound and current.is_active(now) and _as_int(current.ip) == n:
            return current  # a DISCOVER during a binding (the client rebooted): the same lease
        return self._record(client, mac, n, now + self.offer_time, False, now)

    def bind(self, client: bytes, mac: bytes, ip: bytes, now: float) -> Lease | None:
        """Bind `ip` to the client for `lease_time` (REQUEST, RFC 2131 §4.3.2); None to refuse (NAK)."""
        n = _as_int(ip)
        if not self._available(n, client, mac, now):
            return None
        reserved = self._reserved_ip_by_mac.get(mac)
        if reserved is not None and reserved != n and self._available(reserved, client, mac, now):
            return None  # refused, so that the client's next DISCOVER finds its reserved address
        return self._record(client, mac, n, now + self.lease_time, True, now)

    def release(self, client: bytes, ip: bytes, now: float) -> bool:
        """The client gives `ip` back (RELEASE, RFC 2131 §4.3.4); False if it does not hold it.

        "The server marks the network address as not allocated. The server SHOULD
        retain a record of the client's initialization parameters for possible reuse."
        """
        lease = self._by_client.get(client)
        if lease is None or lease.ip != ip:
            return False
        released = replace(lease, expires=min(lease.expires, now), bound=False)
        self._by_client[client] = self._by_ip[_as_int(ip)] = released
        return True

    def decline(self, client: bytes, ip: bytes, now: float) -> bool:
        """The client found `ip` in use (DECLINE, RFC 2131 §4.3.3); False if it was not offered to it.

        "The server MUST mark the network address as not available": it is kept out
        of the pool for `decline_time`, and the client loses its record, so that its
        next DISCOVER probes on to another address.
        """
        lease = self._by_client.get(client)
        if lease is None or lease.ip != ip:
            return False
        n = _as_int(ip)
        del self._by_client[client]
        del self._by_ip[n]
        if len(self._declined) >= self.max_records:
            for stale in [a for a, until in self._declined.items() if until <= now] or [next(iter(self._declined))]:
                del self._declined[stale]
        self._declined[n] = now + self.decline_time
        return True

    def reserve(self, mac: bytes, ip: bytes, now: float | None = None) -> bool:
        """Hold `ip` for the client with `mac` from now on; False if it cannot be (not in the pool,
        reserved for another MAC, or held by another MAC: actively, or at all when `now` is None).

        A MAC has at most one reservation: a new one replaces the old.
        """
        n = _as_int(ip)
        if not self._in_pool(n):
            return False
        owner = self._reserved_mac_by_ip.get(n)
        if owner is not None and owner != mac:
            return False
        holder = self._by_ip.get(n)
        if holder is not None and holder.mac != mac and (now is None or holder.is_active(now)):
            return False
        previous = self._reserved_ip_by_mac.pop(mac, None)
        if previous is not None:
            del self._reserved_mac_by_ip[previous]
        self._reserved_ip_by_mac[mac] = n
        self._reserved_mac_by_ip[n] = mac
        return True

    def unreserve(self, mac: bytes) -> bool:
        """Let the address reserved for `mac` go (its guest detached); False if it had none.

        A lease the MAC's client holds on it is untouched: it runs its course, and as any
        returning client's, its record makes the address the client's first choice again.
        """
        n = self._reserved_ip_by_mac.pop(mac, None)
        if n is None:
            return False
        del self._reserved_mac_by_ip[n]
        return True

    # -- allocation ----------------------------------------------------------------------

    def _in_pool(self, n: int) -> bool:
        return 0 <= n - self._first < self._size and n not in self._excluded

    def _available(self, n: int, client: bytes, mac: bytes, now: float) -> bool:
        """Whether address `n` may be given to this client now."""
        if not self._in_pool(n):
            return False
        until = self._declined.get(n)
        if until is not None:
            if now < until:
                return False
            del self._declined[n]
        owner = self._reserved_mac_by_ip.get(n)
        if owner is not None and owner != mac:
            return False
        holder = self._by_ip.get(n)
        return holder is None or holder.client == client or not holder.is_active(now)

    def _choose(self, client: bytes, mac: bytes, requested: bytes | None, now: float) -> int | None:
        for preferred in (self._reserved_ip_by_mac.get(mac),
                          _as_int(lease.ip) if (lease := self._by_client.get(client)) else None,
                          _as_int(requested) if requested is not None else None):
            if preferred is not None and self._available(preferred, client, mac, now):
                return preferred
        # Linear probing from home: the first address nobody ever held, else the first
        # one whose holder's lease has ended.
        start = self._home(client)
        reusable = None
        for i in range(self._size):
            n = self._first + (start + i) % self._size
            if self._available(n, client, mac, now):
                if n not in self._by_ip:
                    return n
                if reusable is None:
                    reusable = n
        return reusable

    def _home(self, client: bytes) -> int:
        digest = hashlib.blake2b(client, digest_size=8, person=_HASH_PERSON).digest()
        return int.from_bytes(digest, "big") % self._size

    def _record(self, client: bytes, mac: bytes, n: int, expires: float, bound: bool, now: float) -> Lease | None:
        """Make `n` the client's one record; None if the table is full of active leases."""
        old = self._by_client.pop(client, None)
        if old is not None:
            del self._by_ip[_as_int(old.ip)]
        holder = self._by_ip.pop(n, None)
        if holder is not None:
            del self._by_client[holder.client]  # an ended lease of another client, reused
        if len(self._by_ip) >= self.max_records:
            for stale in [lease for lease in self._by_ip.values() if not lease.is_active(now)]:
                del self._by_ip[_as_int(stale.ip)]
                del self._by_client[stale.client]
            if len(self._by_ip) >= self.max_records:
                return None
        lease = Lease(client, mac, n.to_bytes(4, "big"), expires, bound)
        self._by_client[client] = self._by_ip[n] = lease
        return lease


def _as_int(ip: bytes) -> int:
    """A 4-byte address as an integer; -1 (in no pool) for anything else."""
    return int.from_bytes(ip, "big") if len(ip) == 4 else -1
