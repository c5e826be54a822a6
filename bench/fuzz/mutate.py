"""A small seeded mutator (standard library only) for the test suite's brief runs without atheris:
byte flips, insertions, deletions, interesting values and splices of corpus inputs."""

from __future__ import annotations

import random

_INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00", b"\xff\xff", b"\x05\xdc", b"\x00\x30",
                b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff"]


def mutate(data: bytes, corpus: list[bytes], rng: random.Random, max_len: int = 4096) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(6)
        if op == 0 and out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif op == 2:
            out[rng.randrange(len(out) + 1):0] = bytes([rng.randrange(256)])
        elif op == 3 and out:
            start = rng.randrange(len(out))
            del out[start:start + rng.randint(1, 16)]
        elif op == 4:
            value = rng.choice(_INTERESTING)
            at = rng.randrange(len(out) + 1)
            out[at:at + len(value)] = value
        elif corpus:
            other = rng.choice(corpus)
            cut = rng.randrange(len(out) + 1)
            out = out[:cut] + other[rng.randrange(len(other) + 1):]
    return bytes(out[:max_len])
