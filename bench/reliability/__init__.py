"""The reliability and security campaign: each item is one module with `run(seconds) -> dict`.

    python -m bench.reliability nothing-leaves     # the gateway in a sealed namespace, 30 s of spraying

The short versions run as tests (tests/reliability); these are the full ones.
Results are printed as JSON; docs/reliability.md holds the figures of a run.
"""
