import pytest
from hypothesis import given, strategies as st

from gateway.edges.transports.framing import QEMU_PREFIX, VMNET_PREFIX, FrameDecoder, FramingError, encode_frame


def test_qemu_prefix_is_big_endian_u32():
    assert encode_frame(QEMU_PREFIX, b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(VMNET_PREFIX, b"abc") == b"\x03\x00abc"


@given(st.lists(st.binary(max_size=300), max_size=20), st.lists(st.integers(1, 50), min_size=1, max_size=10))
def test_any_split_of_the_stream_yields_the_same_frames(frames, chunk_sizes):
    stream = b"".join(encode_frame(QEMU_PREFIX, f) for f in frames)
    decoder = FrameDecoder(QEMU_PREFIX, max_frame=1000)
    out, position, i = [], 0, 0
    while position < len(stream):
        size = chunk_sizes[i % len(chunk_sizes)]
        out += decoder.feed(stream[position:position + size])
        position += size
        i += 1
    assert out == frames and decoder.pending == 0


def test_partial_frame_is_held_back():
    decoder = FrameDecoder(VMNET_PREFIX, max_frame=100)
    assert decoder.feed(b"\x05\x00ab") == []
    assert decoder.pending == 4
    assert decoder.feed(b"cde\x01") == [b"abcde"]
    assert decoder.pending == 1


def test_oversized_length_is_a_protocol_error():
    decoder = FrameDecoder(QEMU_PREFIX, max_frame=100)
    with pytest.raises(FramingError, match="exceeds"):
        decoder.feed(b"\x00\x00\x00\x65" + b"x" * 101)


def test_frames_before_a_bad_length_are_still_the_guests():
    """Found by the fuzzer (bench/fuzz/corpus/stream_framing/crash-frame-before-bad-length): a good
    frame and a bad length in one read lost the good frame with the connection."""
    good = bytes(range(60))
    decoder = FrameDecoder(QEMU_PREFIX, max_frame=1514)
    with pytest.raises(FramingError) as error:
        decoder.feed(encode_frame(QEMU_PREFIX, good) + b"\x7f\xff\xff\xff")
    assert error.value.frames == [good]
