"""The public API a VM networking helper embeds: sans-IO and trio-level, as the README shows."""

import inspect
import re
import socket
import struct
from pathlib import Path

import trio
from guest_frames import arp_request, ntp_request, udp_to_gateway
from scapy.layers.inet import UDP
from scapy.layers.l2 import Ether

import gateway
from gateway import Config, Forward, build_stack

README = Path(__file__).resolve().parents[3] / "README.md"


def test_public_api_is_curated():
    """Every public name is hostclock's own object, and everything the README and the package's
    docstring tell an embedder to use is public."""
    for name in gateway.__all__:
        obj = getattr(gateway, name)  # the lazily imported edges too
        if name in ("ENTRY_POINT_GROUP", "TRANSPORTS", "Output"):
            continue  # a constant, a table, a type alias: checked below
        assert obj.__module__.startswith("gateway."), (name, obj.__module__)  # not a re-export of a dependency
        assert obj.__name__ == name, (name, obj.__name__)  # no alias under another name
    assert gateway.ENTRY_POINT_GROUP == "hostclock.plugins"
    assert sorted(gateway.TRANSPORTS) == ["--bess", "--qemu-dgram", "--qemu-socket", "--qemu-stream", "--stdio", "--tap",
                                          "--vfkit", "--vmnet"]  # the flags of `hostclock run`
    assert set(gateway.Output.__args__) == {bytes, gateway.Forward}
    documented = set(re.findall(r"\bgateway\.([A-Za-z_]+)\b", README.read_text() + gateway.__doc__))
    documented |= {name.strip() for line in re.findall(r"from gateway import ([\w, ]+)", README.read_text()
                                                        + gateway.__doc__) for name in line.split(",")}
    documented -= {"core", "app", "edges", "replay"}  # subpackages named in prose
    assert documented and documented <= set(gateway.__all__), documented - set(gateway.__all__)
    # what the README's embedding example calls, with the arguments it passes
    assert "task_status" in inspect.signature(gateway.serve).parameters
    assert list(inspect.signature(gateway.make_transport).parameters)[:3] == ["flag", "argument", "gateway"]
    assert isinstance(build_stack(Config()), gateway.Stack)


def test_sans_io_round_trip_with_a_real_responder_socket():
    """Frames in, Forward out, the upstream's datagram back in, a frame for the guest out."""
    stack = build_stack(Config())
    (arp_reply,) = stack.receive_frame(arp_request(), now=1.0)
    assert Ether(arp_reply).op == 2
    (forward,) = stack.receive_frame(udp_to_gateway(ntp_request(transmit=b"T" * 8), sport=5000), now=2.0)
    assert isinstance(forward, Forward) and forward.payload == ntp_request(transmit=b"T" * 8)
    upstream_reply = bytes([0x24, 10, 6, 0xE9]) + bytes(20) + b"T" * 8 + bytes(16)
    frame = stack.receive_upstream(123, forward.flow.id, upstream_reply, now=2.001)
    reply = Ether(frame)
    assert reply[UDP].sport == 123 and reply[UDP].dport == 5000 and bytes(reply[UDP].payload) == upstream_reply
    assert stack.receive_upstream(123, 424242, upstream_reply, now=3.0) is None  # no such flow: dropped


def readme_example() -> str:
    text = README.read_text()
    match = re.search(r"```python\n(# embedding example.*?)```", text, re.S)
    assert match, "README has the embedding example"
    return match.group(1)


async def test_the_readme_embedding_example_runs(nursery, tmp_path):
    """The README's ~20-line embedding answers a guest's NTP request from the embedded responder."""
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    path = str(tmp_path / "vm.sock")
    await nursery.start(namespace["serve_vm"], path)
    with trio.fail_after(10):
        stream = await trio.open_unix_socket(path)
        frame = udp_to_gateway(ntp_request(transmit=b"R" * 8), sport=6000)
        await stream.send_all(struct.pack("!I", len(frame)) + frame)
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack_from("!I", data)[0]:
            data += await stream.receive_some(4096)
    ntp = bytes(Ether(data[4:])[UDP].payload)
    assert ntp[0] & 7 == 4 and ntp[24:32] == b"R" * 8


def test_sans_io_guest_clock_watching_as_the_module_docstring_shows():
    """A helper that owns the frames: link and wall time in with each frame, probes out on the timer,
    readings (guest minus host) out of take_offsets."""
    from scapy.layers.inet import ICMP, IP

    from guest_frames import GATEWAY_IP, GATEWAY_MAC, GUEST_IP, GUEST_MAC

    stack = build_stack(Config().replace(guest_clock={"interval": 10}))
    watcher = stack.guest_clock
    assert isinstance(watcher, gateway.GuestClockWatcher)
    wall = 1_796_126_400 * 10**9
    stack.receive_frame(arp_request(), 0.0, "vm0", wall)
    while watcher.next_timer() is not None and watcher.next_timer() < 5:
        now = watcher.next_timer()
        for link, frame in watcher.on_timer(now, wall + round(now * 1e9)):
            probe = Ether(frame)[ICMP]
            guest_ms = probe.ts_ori - 3000  # the guest is 3 s behind
            reply = (Ether(src=GUEST_MAC, dst=GATEWAY_MAC) / IP(src=GUEST_IP, dst=GATEWAY_IP)
                     / ICMP(type=14, id=probe.id, seq=probe.seq, ts_ori=probe.ts_ori, ts_rx=guest_ms, ts_tx=guest_ms))
            assert stack.receive_frame(bytes(reply), now, link, wall + round(now * 1e9)) == []
    (offset,) = watcher.take_offsets()
    assert isinstance(offset, gateway.GuestClockOffset) and offset.link == "vm0"
    assert abs(offset.offset_s + 3.0) <= offset.error_s and offset.crossing == "out"
