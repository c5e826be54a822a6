"""A readable, field-level difference between two lists of captured frames (`--expect`).

Frames are compared in order, frame N with frame N. For each pair that
differs, the timestamp difference is shown, then both frames are dissected
with scapy (`Ether(...)`, which decodes ARP, IPv4, ICMP, UDP and NTP) and
compared layer by layer, field by field, each field shown as scapy displays
it. Frames only one side has are listed with scapy's one-line summary.

scapy is imported here only, when a difference has to be explained.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

__all__ = ["diff_frames", "MAX_FRAMES_SHOWN"]

#: differing frames shown before the rest are only counted
MAX_FRAMES_SHOWN = 20
_MAX_VALUE_LEN = 80
_NS_PER_S = 1_000_000_000

Record = tuple[int, bytes]


def diff_frames(expected: Sequence[Record], actual: Sequence[Record]) -> list[str]:
    """Lines describing every difference between `expected` and `actual`; empty if none."""
    differing = [i for i in range(max(len(expected), len(actual)))
                 if i >= len(expected) or i >= len(actual) or expected[i] != actual[i]]
    if not differing:
        return []
    from scapy.layers import inet, inet6, ntp  # noqa: F401  (bind IPv4, IPv6, UDP/123 -> NTP below Ether)
    from scapy.layers.l2 import Ether

    lines = []
    if len(expected) != len(actual):
        lines.append(f"{len(expected)} frames expected, {len(actual)} written")
    for i in differing[:MAX_FRAMES_SHOWN]:
        number = i + 1
        if i >= len(actual):
            lines.append(f"frame {number}: missing; expected {_describe(Ether, expected[i])}")
            continue
        if i >= len(expected):
            lines.append(f"frame {number}: extra; written {_describe(Ether, actual[i])}")
            continue
        (want_ts, want), (got_ts, got) = expected[i], actual[i]
        if want_ts != got_ts:
            lines.append(f"frame {number}: timestamp: expected {_format_ts(want_ts)}, "
                         f"written {_format_ts(got_ts)} ({got_ts - want_ts:+d} ns)")
        if want != got:
            fields = list(_field_differences(Ether(want), Ether(got)))
            if not fields:  # same dissection, different bytes (e.g. undissected trailing bytes)
                offset = next((k for k, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
                fields = [f"bytes differ from offset {offset} ({len(want)} bytes expected, {len(got)} written)"]
            lines += [f"frame {number}: {line}" for line in fields]
    if len(differing) > MAX_FRAMES_SHOWN:
        lines.append(f"... and {len(differing) - MAX_FRAMES_SHOWN} more differing frames")
    return lines


def _field_differences(want, got) -> Iterator[str]:
    """'Layer.field: expected X, written Y' for every field that differs, layer by layer."""
    from scapy.packet import NoPayload

    depth = 0
    while not (isinstance(want, NoPayload) and isinstance(got, NoPayload)):
        if type(want) is not type(got):
            yield f"layer {depth + 1}: expected {_layer_name(want)}, written {_layer_name(got)}"
            return
        for field in want.fields_desc:
            a, b = want.getfieldval(field.name), got.getfieldval(field.name)
            if a != b:
                shown_a, shown_b = field.i2repr(want, a), field.i2repr(got, b)
                if shown_a == shown_b:  # a display too coarse to tell them apart (NTP times: whole seconds)
                    shown_a, shown_b = f"{shown_a} ({field.i2h(want, a)})", f"{shown_b} ({field.i2h(got, b)})"
                yield f"{want.name}.{field.name}: expected {_shorten(shown_a)}, written {_shorten(shown_b)}"
        want, got = want.payload, got.payload
        depth += 1


def _layer_name(layer) -> str:
    from scapy.packet import NoPayload

    return "nothing" if isinstance(layer, NoPayload) else layer.name


def _describe(ether, record: Record) -> str:
    ts, frame = record
    return f"{_format_ts(ts)} {ether(frame).summary()}"


def _format_ts(ts_ns: int) -> str:
    seconds, nanoseconds = divmod(ts_ns, _NS_PER_S)
    return f"{seconds}.{nanoseconds:09d}"


def _shorten(text: str) -> str:
    text = str(text)
    return text if len(text) <= _MAX_VALUE_LEN else text[:_MAX_VALUE_LEN - 3] + "..."
