"""Stack fast path: frames/s through the sans-IO stack, against scapy doing the same job.

* NTP: a guest's SNTP request frame in, the time service's `Forward` out (the
  frame is fully checked: IPv4 header checksum, UDP checksum, NTP screening,
  flow lookup). 64 guest flows, round robin.
* ARP: a request for the gateway in, the reply frame out.
* NTP with guest clocks watched: the same NTP frames through a stack with a
  guest clock watcher, each with its link and wall time (the watcher learns
  the guest, the time service states the guest's clock, the watcher checks it
  against the guest's previous request).

Anchor: the same frames dissected with scapy (`Ether(raw)`) and answered with
scapy (the NTP reply frame or the ARP reply built and serialised), in the same
run; for the watched case, the same stack path not watching. Each side gets
the best of several timed rounds, interleaved.
"""

from __future__ import annotations

import time

from .common import GATEWAY_MAC, Figure, arp_request, ntp_request, udp_frame

NAME = "stack_fast_path"
FLOWS = 64


def _frames() -> tuple[list[bytes], bytes]:
    ntp = [udp_frame(ntp_request(0x1000 + i), 40000 + i) for i in range(FLOWS)]
    return ntp, arp_request()


def _stack():
    from gateway.app.config import GatewayConfig
    from gateway.core.flows import FlowTable
    from gateway.core.stack import Stack
    from plugins.ntp.time_service import TimeService

    return Stack(GatewayConfig(), [TimeService(FlowTable())])


def _watching_stack():
    from gateway.app.config import GatewayConfig
    from gateway.core.addresses import parse_ipv4, parse_mac
    from gateway.core.flows import FlowTable
    from gateway.core.guest_clock import GuestClockWatcher
    from gateway.core.stack import Stack
    from plugins.ntp.time_service import TimeService

    config = GatewayConfig()
    watcher = GuestClockWatcher(parse_mac(config.gateway_mac), parse_ipv4(config.gateway_ip), interval=10.0)
    return Stack(config, [TimeService(FlowTable())], guest_clock=watcher)


def _stack_ntp_watched(stack):
    receive = stack.receive_frame
    watcher = stack.guest_clock
    from gateway.core.service import Forward

    def run(frames):
        for frame in frames:
            out = receive(frame, 1.0, "link", 1_796_126_400_000_000_000)
            if type(out[0]) is not Forward:
                raise AssertionError(f"stack returned {out!r}")
        watcher.take_offsets()
    return run


def _rate(fn, frames: list[bytes], seconds: float) -> float:
    """Frames per second of `fn(frame)` over repeated passes through `frames` for about `seconds`."""
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        fn(frames)
        n += len(frames)
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def _stack_ntp(stack):
    receive = stack.receive_frame
    from gateway.core.service import Forward

    def run(frames):
        for frame in frames:
            out = receive(frame, 1.0)
            if type(out[0]) is not Forward:
                raise AssertionError(f"stack returned {out!r}")
    return run


def _stack_arp(stack):
    receive = stack.receive_frame

    def run(frames):
        for frame in frames:
            out = receive(frame, 1.0)
            if len(out[0]) != 60:
                raise AssertionError(f"stack returned {out!r}")
    return run


def _scapy_ntp():
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    gw_mac = ":".join(f"{b:02x}" for b in GATEWAY_MAC)

    def run(frames):
        for frame in frames:
            pkt = Ether(frame)
            ip, udp = pkt[IP], pkt[UDP]
            payload = bytes(udp.payload)
            if udp.dport != 123 or len(payload) < 48 or payload[0] & 7 != 3:
                raise AssertionError("not an NTP request")
            reply = bytes(Ether(dst=pkt.src, src=gw_mac) / IP(src=ip.dst, dst=ip.src)
                          / UDP(sport=123, dport=udp.sport) / Raw(payload))
            if len(reply) != len(frame):
                raise AssertionError("bad reply")
    return run


def _scapy_arp():
    from scapy.layers.l2 import ARP, Ether

    gw_mac = ":".join(f"{b:02x}" for b in GATEWAY_MAC)

    def run(frames):
        for frame in frames:
            pkt = Ether(frame)
            arp = pkt[ARP]
            if arp.op != 1:
                raise AssertionError("not a request")
            reply = bytes(Ether(dst=arp.hwsrc, src=gw_mac)
                          / ARP(op=2, hwsrc=gw_mac, psrc=arp.pdst, hwdst=arp.hwsrc, pdst=arp.psrc))
            if len(reply) < 42:
                raise AssertionError("bad reply")
    return run


def run(quick: bool = False) -> list[Figure]:
    ntp_frames, arp = _frames()
    arp_frames = [arp] * FLOWS
    stack = _stack()
    rounds = 2 if quick else 5
    seconds = 0.2 if quick else 0.6
    scapy_seconds = 0.2 if quick else 0.5
    cases = {
        "ntp": (_stack_ntp(stack), _scapy_ntp(), ntp_frames),
        "arp": (_stack_arp(stack), _scapy_arp(), arp_frames),
    }
    watched = _stack_ntp_watched(_watching_stack())
    watched(ntp_frames)
    best_watched = 0.0
    best = {key: [0.0, 0.0] for key in cases}
    for fn_stack, fn_scapy, frames in cases.values():  # warm up (imports, flow table, caches)
        fn_stack(frames)
        fn_scapy(frames[:4])
    for _ in range(rounds):
        for key, (fn_stack, fn_scapy, frames) in cases.items():
            best[key][0] = max(best[key][0], _rate(fn_stack, frames, seconds))
            best[key][1] = max(best[key][1], _rate(fn_scapy, frames[:8], scapy_seconds))
        best_watched = max(best_watched, _rate(watched, ntp_frames, seconds))
    figures = []
    for key, label, floor in (("ntp", "NTP request -> Forward", 150_000), ("arp", "ARP request -> reply", None)):
        value, anchor = best[key]
        ratio = value / anchor
        target = "≥ 25× scapy" + (f", ≥ {floor // 1000}k frames/s" if floor else "")
        holds = ratio >= 25 and (floor is None or value >= floor)
        figures.append(Figure(NAME, f"stack fast path: {label}", value, "frames/s",
                              anchor=f"scapy dissect + answer ({key})", anchor_value=anchor, ratio=ratio,
                              ratio_note="× scapy", target=target, holds=holds,
                              extra={"rounds": rounds, "flows": FLOWS}))
    unwatched = best["ntp"][0]
    figures.append(Figure(NAME, "stack fast path: NTP request -> Forward, guest clocks watched", best_watched,
                          "frames/s", anchor="the same, not watching", anchor_value=unwatched,
                          ratio=best_watched / unwatched, ratio_note="× not watching",
                          target="≥ 50k frames/s", holds=best_watched >= 50_000,
                          extra={"rounds": rounds, "flows": FLOWS}))
    return figures
