"""How many guests a listening transport admits at once: the default of `[access] max_guests`.

64 VMs behind one gateway is far past a desktop's use, and it bounds what attached guests
can hold: 64 connections, their send queues (at most 1 MiB each), their descriptors.
Past the limit a listener refuses new connections (`gateway.edges.transports.unix_socket`).
"""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_GUESTS"]

DEFAULT_MAX_GUESTS = 64
