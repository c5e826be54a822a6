"""The SNTP responder: serves the host clock on loopback (RFC 4330 §6, RFC 5905 server mode)."""

from plugins.ntp.drops import SntpDrop
from plugins.ntp.host_clock import measure_precision, now_ns, read_kernel_time_state
from plugins.ntp.kernel_state import KernelTimeState, LeapPending, kernel_state_from_timex
from plugins.ntp.packet import HEADER, HEADER_LEN
from plugins.ntp.responder import Responder, ServerState, parse_refid
from plugins.ntp.server import SntpServer
from plugins.ntp.timestamps import NTP_UNIX_OFFSET, ntp_to_unix_ns, unix_ns_to_ntp

__all__ = [
    "SntpDrop", "measure_precision", "now_ns", "read_kernel_time_state", "KernelTimeState",
    "LeapPending", "kernel_state_from_timex", "HEADER", "HEADER_LEN", "Responder", "ServerState",
    "parse_refid", "SntpServer", "NTP_UNIX_OFFSET", "ntp_to_unix_ns", "unix_ns_to_ntp",
]
