"""How the views write durations and offsets: in the unit that fits (ns, µs, ms, s)."""

from __future__ import annotations

import sys

__all__ = ["seconds", "signed_seconds", "micro"]


def micro() -> str:
    """'µ' where the real stdout can show it, else 'u' (the live view replaces sys.stdout while it runs)."""
    encoding = (getattr(sys.__stdout__, "encoding", "") or "").lower()
    return "µ" if encoding.replace("-", "").startswith("utf") else "u"


def seconds(value: float | None, *, sign: bool = False) -> str:
    """'12 µs', '3.41 ms', '1.482 s' (with '+' before a positive value if `sign`)."""
    if value is None:
        return "-"
    plus = "+" if sign and value >= 0 else ""
    size = abs(value)
    if size < 1e-3:
        return f"{plus}{value * 1e6:.0f} {micro()}s"
    if size < 1.0:
        return f"{plus}{value * 1e3:.2f} ms"
    return f"{plus}{value:.3f} s"


def signed_seconds(value: float | None) -> str:
    return seconds(value, sign=True)
