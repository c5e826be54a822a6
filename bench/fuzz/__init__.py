"""Coverage-guided fuzzing of every parser and state machine (atheris, libFuzzer's engine).

    python -m bench.fuzz                       # the campaign: every harness, 1,000,000 runs each
    python -m bench.fuzz --runs 20000 --only stack_frames
    python -m bench.fuzz.runner stack_frames CORPUS_DIR -runs=1000   # one harness, libFuzzer's flags

The harnesses (`bench.fuzz.harnesses`) check properties, not only "no exception".
A crash is saved in `bench/fuzz/corpus/HARNESS/`, and becomes a regression test:
the test suite (tests/test_fuzz_corpus.py) runs every harness over its seeds and
that corpus, and a few seconds of seeded mutations, without atheris.
"""
