"""Every fuzz harness, briefly, in the default suite: over its seeds and saved corpus (crashes the
campaign found, kept as regression inputs), then a bounded run of seeded mutations.

This runs the harnesses' property functions without atheris, on purpose: atheris is a
native libFuzzer build with wheels for few platforms, the regression value lies in the
saved inputs, and coverage guidance pays off in the long campaign (`python -m bench.fuzz`,
the optional 'fuzz' extra), not in a few seconds of CI.
"""

import importlib
import random
import time
from pathlib import Path

import pytest

from bench.fuzz.harnesses import HARNESSES
from bench.fuzz.mutate import mutate

CORPUS = Path(__file__).resolve().parent.parent / "bench" / "fuzz" / "corpus"
SECONDS = 1.5
MAX_RUNS = 20_000


def saved_inputs(name: str) -> list[Path]:
    folder = CORPUS / name
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize("name", HARNESSES)
def test_the_harness_holds_over_its_seeds_and_saved_corpus(name):
    harness = importlib.import_module(f"bench.fuzz.harnesses.{name}")
    for data in harness.seeds():
        harness.check(data)
    for path in saved_inputs(name):
        harness.check(path.read_bytes())  # a regression input: it broke a property once


@pytest.mark.parametrize("name", HARNESSES)
def test_the_harness_holds_under_brief_mutation(name):
    harness = importlib.import_module(f"bench.fuzz.harnesses.{name}")
    corpus = harness.seeds() + [p.read_bytes() for p in saved_inputs(name)]
    rng = random.Random(f"hostclock-{name}")
    deadline = time.monotonic() + SECONDS
    runs = 0
    while time.monotonic() < deadline and runs < MAX_RUNS:
        data = mutate(rng.choice(corpus), corpus, rng)
        try:
            harness.check(data)
        except Exception as e:
            raise AssertionError(f"{name}: {type(e).__name__}: {e}; input {data.hex()}") from e
        runs += 1
    assert runs > 0


def test_the_corpus_folders_name_real_harnesses():
    assert {p.name for p in CORPUS.iterdir() if p.is_dir()} <= set(HARNESSES)
