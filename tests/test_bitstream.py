"""The file format: Python and in-graph implementations agree; bad files are rejected."""
import os
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from tfcae import TfcaeError
from tfcae.io import bitstream

FP = bytes(range(1, 9))


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 255, 256, 257, 511, 512, 513, 4096, 100003])
def test_crc32_tf_matches_zlib_at_chunk_boundaries(n):
  message = os.urandom(n)
  assert int(bitstream.crc32_tf(tf.constant(message))) == zlib.crc32(message)


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=0, max_size=3000))
def test_crc32_tf_matches_zlib(message):
  assert int(bitstream.crc32_tf(tf.constant(message))) == zlib.crc32(message)


def test_crc32_graph_constants_are_small():
  """Every coding function of a SavedModel embeds its own copy of the CRC's GF(2)
  matrices: stored bit-packed they are 12 kB per copy, not 393 kB (the zoo's budget)."""
  graph = tf.function(bitstream.crc32_tf).get_concrete_function(
      tf.TensorSpec([], tf.string)).graph.as_graph_def()
  consts = sum(n.ByteSize() for n in graph.node if n.op == "Const")
  assert 12288 <= consts < 16384


@pytest.mark.parametrize("n", [0, 1, 300, 196608])
def test_crc32_bytes_tf_matches_zlib(n):
  values = np.random.default_rng(n).integers(0, 64, n, dtype=np.uint8)
  assert int(bitstream.crc32_bytes_tf(tf.constant(values))) == zlib.crc32(values.tobytes())


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=3),
       st.integers(1, 2**32 - 1), st.integers(1, 2**32 - 1),
       st.one_of(st.none(), st.integers(0, 2**32 - 1)))
def test_pack_tf_is_byte_identical_to_pack(strings, height, width, index_check):
  expected = bitstream.pack(FP, height, width, strings, index_check)
  got = bitstream.pack_tf(
      tf.constant(FP), tf.constant(height, tf.int64), tf.constant(width, tf.int64),
      [tf.constant(s) for s in strings],
      None if index_check is None else tf.constant(index_check, tf.int64))
  assert got.numpy() == expected
  if max(height, width) > bitstream.MAX_SIDE:  # writable, but no reader takes it
    with pytest.raises(TfcaeError, match="too large"):
      bitstream.parse(expected, FP, max_pixels=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="too large"):
      bitstream.parse_tf(tf.constant(expected), tf.constant(FP), len(strings), max_pixels=0)
    return
  parsed = bitstream.parse(expected, FP, max_pixels=0)
  assert (parsed.height, parsed.width, list(parsed.strings)) == (height, width, strings)
  assert parsed.index_check == index_check and parsed.version == (1 if index_check is None
                                                                  else 2)
  h, w, parts, check = bitstream.parse_tf(tf.constant(expected), tf.constant(FP),
                                          len(strings), max_pixels=0)
  assert [int(h), int(w)] == [height, width]
  assert [p.numpy() for p in parts] == strings
  assert int(check) == (bitstream.NO_INDEX_CHECK if index_check is None else index_check)


@pytest.mark.parametrize("height, width, max_pixels, ok", [
    (17, 33, 17 * 33, True), (17, 33, 17 * 33 - 1, False), (17, 33, 0, True),
    (2**31 - 1, 1, 0, True), (2**31, 1, 0, False), (1, 2**32 - 1, 0, False),
    (9459, 9459, bitstream.DEFAULT_MAX_PIXELS, True),   # 89,472,681 pixels: under Pillow's
    (9460, 9460, bitstream.DEFAULT_MAX_PIXELS, False),  # 89,491,600: over
])
def test_size_limit_in_python_and_in_graph_at_its_edges(height, width, max_pixels, ok):
  data = bitstream.pack(FP, height, width, [b"hello", b"world!"])
  if ok:
    assert bitstream.parse(data, FP, max_pixels=max_pixels).height == height
    h, w, _, _ = bitstream.parse_tf(tf.constant(data), tf.constant(FP), 2, max_pixels)
    assert (int(h), int(w)) == (height, width)
    return
  with pytest.raises(TfcaeError, match="over the limit|too large"):
    bitstream.parse(data, FP, max_pixels=max_pixels)
  with pytest.raises(tf.errors.InvalidArgumentError, match="max_pixels|too large"):
    bitstream.parse_tf(tf.constant(data), tf.constant(FP), 2, max_pixels)


def test_default_size_limit_applies_without_an_argument():
  huge = bitstream.pack(FP, 65535, 65535, [b"hello", b"world!"])
  with pytest.raises(TfcaeError, match="--max_pixels=4294836225"):
    bitstream.parse(huge, FP)
  with pytest.raises(tf.errors.InvalidArgumentError, match="max_pixels"):
    bitstream.parse_tf(tf.constant(huge), tf.constant(FP), 2)

def test_layout_is_as_documented():
  data = bitstream.pack(FP, 512, 768, [b"abc", b"de"])
  assert data[:4] == b"TCAE" and data[4] == 1 and data[5] == 2 and data[6:14] == FP
  assert struct.unpack(">IIII", data[14:30]) == (512, 768, 3, 2)
  assert struct.unpack(">I", data[30:34])[0] == zlib.crc32(data[:30] + data[34:])
  assert data[34:] == b"abcde"
  assert len(data) == bitstream.header_size(2) + 5


def test_version_2_layout_is_as_documented():
  data = bitstream.pack(FP, 512, 768, [b"abc", b"de"], index_check=0xDEADBEEF)
  assert data[4] == 2 and data[5] == 2
  assert struct.unpack(">IIIII", data[14:34]) == (512, 768, 3, 2, 0xDEADBEEF)
  assert struct.unpack(">I", data[34:38])[0] == zlib.crc32(data[:34] + data[38:])
  assert data[38:] == b"abcde" and len(data) == bitstream.header_size(2, version=2) + 5


GOOD = bitstream.pack(FP, 17, 33, [b"hello", b"world!"])
GOOD2 = bitstream.pack(FP, 17, 33, [b"hello", b"world!"], index_check=12345)


def _flip(data, index):
  return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1:]


@pytest.mark.parametrize("data, message", [
    (b"", "empty file"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "bad magic"),
    (GOOD[:3], "bad magic"),
    (GOOD[:10], "truncated"),
    (GOOD[:-1], "truncated"),
    (GOOD + b"x", "corrupted"),
    (_flip(GOOD, 4), "version"),
    (_flip(GOOD, 17), "CRC-32"),        # height
    (_flip(GOOD, 22), "truncated"),     # a string length, made larger
    (_flip(GOOD, 25), "corrupted"),     # a string length, made smaller
    (_flip(GOOD, len(GOOD) - 2), "CRC-32"),  # payload
    (GOOD[:4] + b"\x04" + GOOD[5:], "version 4"),
    (_flip(GOOD2, 31), "CRC-32"),       # the index check
    (GOOD2[:4] + b"\x01" + GOOD2[5:], "corrupted"),  # a version-2 file read as version 1
    (GOOD2[:-1], "truncated"),
])
def test_parse_rejects_bad_files(data, message):
  with pytest.raises(TfcaeError, match=message):
    bitstream.parse(data, FP)


def test_parse_rejects_other_model():
  with pytest.raises(TfcaeError, match="another model"):
    bitstream.parse(GOOD, b"\xff" * 8)


@pytest.mark.parametrize("data", [GOOD[:-1], _flip(GOOD, 17), _flip(GOOD, len(GOOD) - 2),
                                  b"\0" * 60, b"TCAE", GOOD2[:-1], _flip(GOOD2, 31),
                                  GOOD[:4] + b"\x03" + GOOD[5:],
                                  GOOD[:4] + b"\x04" + GOOD[5:],
                                  GOOD2[:4] + b"\x01" + GOOD2[5:],
                                  b"", b"TC", GOOD[:10], b"TCAE" + bytes(range(200, 256))])
def test_parse_tf_rejects_bad_files(data):
  """With one of its own messages (short or non-UTF-8 input used to fail in
  another op, whose message quoted the bytes)."""
  with pytest.raises(tf.errors.InvalidArgumentError, match="tfcae"):
    bitstream.parse_tf(tf.constant(data), tf.constant(FP), 2)


def test_parse_tf_rejects_other_model():
  with pytest.raises(tf.errors.InvalidArgumentError, match="another model"):
    bitstream.parse_tf(tf.constant(GOOD), tf.constant(b"\xff" * 8), 2)
