"""Real-peer test harness: namespaces, TAP devices, real NTP clients, a real chronyd server.

Typical integration test (the gateway is ``hostclock run --tap NAME``)::

    from realpeers import GuestNamespace, clients, requires_root, unique_name

    @requires_root
    @clients.requires_clients("ntpdig", "chronyd")
    def test_guest_gets_host_time():
        tap = unique_name("hctap")
        with GuestNamespace() as ns, subprocess.Popen(
                ["hostclock", "run", "--tap", tap], stdout=subprocess.PIPE, text=True) as gw:
            gw.stdout.readline()                     # ready
            ns.adopt_tap(tap)                        # guest 192.168.65.3/24
            r = clients.ntpdig(ns, "192.168.65.1", timeout=5)
            assert r.within_its_error_bound()   # one clock: |offset| <= delay / 2
            gw.terminate()

Import as ``realpeers`` (pytest puts tests/ on sys.path; tests/ has no __init__.py).
"""

from . import chrony_server, clients, netns
from .chrony_server import ChronyServer
from .clients import ClientError, ClientResult, missing_tools, requires_clients
from .netns import (GuestNamespace, guest_ns, make_tap, read_frame, require_root,
                    requires_root, root_skip_reason, unique_name)

__all__ = [
    "ChronyServer", "ClientError", "ClientResult", "GuestNamespace", "chrony_server",
    "clients", "guest_ns", "make_tap", "missing_tools", "netns", "read_frame",
    "require_root", "requires_clients", "requires_root", "root_skip_reason", "unique_name",
]
