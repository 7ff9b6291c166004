"""Hostile files and failing disks: bounded decoding, no hangs, no garbage
accepted where the coder can tell, one-line errors.

Old-graph checks use the committed legacy factorized model (its SavedModel decodes with
TFC's own range decoder, so tfcae.serving.codec's Python checks are what protects it); new-graph
checks use the shared tiny `factorized_dir` model, exported by today's code (its
`decompress` signatures run tfcae.io.safedecode in-graph).
"""
import errno
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_compression.python.ops import gen_ops

from tfcae import TfcaeError
from tfcae.serving.codec import Codec, decompress_file, graph_error_message
from tfcae.io import bitstream, fileio, safedecode

from conftest import REPO, run_tool, sample_image

LEGACY = os.path.join(REPO, "tests", "fixtures", "legacy", "factorized")
CORPUS = os.path.join(REPO, "tests", "fixtures", "fuzz")
STORED = os.path.join(LEGACY, "kodim23_crop.tfcae")


def read(path):
  with open(path, "rb") as f:
    return f.read()


def table(module, kind="batched"):
  return [v for v in module.model_variables
          if kind in v.name and v.name.endswith("/cdf:0")][0].numpy()


def escape_at_base(cdf):
  """Bytes that make the first symbol of row 0 its escape with value == base: TFC's
  gamma loop then reads zeros for ever (tfcae.io.safedecode)."""
  precision = -cdf[0]
  end = list(cdf[1:]).index(1 << precision) + 1
  return struct.pack(">I", int(cdf[end - 1]) << (32 - precision)).rstrip(b"\0")


@pytest.fixture(scope="module")
def legacy():
  return Codec(LEGACY)


@pytest.fixture(scope="module")
def fresh(factorized_dir):
  """(Codec, a file it wrote) of a model exported by today's code."""
  codec = Codec(factorized_dir)
  return codec, codec.compress(sample_image()[:100, :130])


# --- the cause: TFC's overflow decoder ------------------------------------------------
@pytest.mark.slow
def test_tfc_decoder_hangs_on_an_escape_at_base():
  """The evidence for the workaround: TFC 2.14's own decoder does not return on 2 bytes.
  If this starts failing, TFC bounded its gamma loop (safedecode's note can go)."""
  script = (
      "import tensorflow as tf, sys\n"
      "from tensorflow_compression.python.ops import gen_ops\n"
      f"m = tf.saved_model.load({LEGACY!r})\n"
      "cdf = [v for v in m.model_variables if v.name.endswith('/cdf:0')][0]\n"
      "h = gen_ops.create_range_decoder(tf.constant([b'\\xff\\x40']), cdf)\n"
      "gen_ops.entropy_decode_channel(h, [1], tf.int32)\n"
      "print('returned')\n")
  with pytest.raises(subprocess.TimeoutExpired):
    subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=20,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def test_bounded_decoder_stops_where_tfc_hangs(legacy):
  cdf = table(legacy.module)
  payload = escape_at_base(cdf)
  assert payload == b"\xff\x40"
  start = time.monotonic()
  with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
    safedecode.decode(tf.constant(payload), tf.constant(cdf), tf.constant([1, 1, 8]))
  assert time.monotonic() - start < 5


def test_bounded_decoder_gives_tfc_symbols_on_valid_strings(legacy):
  cdf = tf.constant(table(legacy.module))
  (string,) = bitstream.parse(read(STORED)).strings
  handle = gen_ops.create_range_decoder(tf.constant([string]), cdf)
  handle, expected = gen_ops.entropy_decode_channel(handle, [4, 6, 8], tf.int32)
  assert gen_ops.entropy_decode_finalize(handle).numpy().all()
  got = safedecode.decode(tf.constant(string), cdf, tf.constant([4, 6, 8]))
  np.testing.assert_array_equal(got.numpy(), expected.numpy())
  # ... and refuses it extended by a zero byte, which TFC's sanity check lets through
  handle = gen_ops.create_range_decoder(tf.constant([string + b"\0"]), cdf)
  handle, _ = gen_ops.entropy_decode_channel(handle, [4, 6, 8], tf.int32)
  assert gen_ops.entropy_decode_finalize(handle).numpy().all()
  with pytest.raises(tf.errors.InvalidArgumentError, match="not the encoding"):
    safedecode.decode(tf.constant(string + b"\0"), cdf, tf.constant([4, 6, 8]))


@pytest.mark.parametrize("architecture", ["factorized",
                                          pytest.param("hyperprior", marks=pytest.mark.slow)])
def test_new_graph_decodes_old_files_bit_exactly(architecture):
  """The bounded decoder in the Keras model's decompress (what a new export runs) gives
  the legacy file's stored pixels."""
  from tfcae.training.export import load_trained
  folder = os.path.join(os.path.dirname(LEGACY), architecture)
  model = load_trained(folder)
  decoded = model.decompress(tf.constant(read(os.path.join(folder, "kodim23_crop.tfcae"))))
  expected = fileio.load_rgb_image(os.path.join(folder, "kodim23_crop.decoded.png"))
  np.testing.assert_array_equal(decoded.numpy(), expected)


@pytest.mark.slow
def test_old_hyperprior_export_refuses_a_hang_in_its_side_information():
  """An old hyperprior SavedModel: its z string (fixed tables) is decoded boundedly here
  before the SavedModel's own decoder could hang on it."""
  folder = os.path.join(os.path.dirname(LEGACY), "hyperprior")
  codec = Codec(folder)
  assert not codec.bounded
  stream = bitstream.parse(read(os.path.join(folder, "kodim23_crop.tfcae")))
  escape = escape_at_base(table(codec.module, "batched"))
  y, z = stream.strings
  bad = bitstream.pack(stream.fingerprint, stream.height, stream.width,
                       [y, escape + b"\0" * len(z)], stream.index_check)
  start = time.monotonic()
  with pytest.raises(TfcaeError, match="out of range|not the encoding"):
    codec.decompress(bad)
  assert time.monotonic() - start < 10


# --- payload bounds -------------------------------------------------------------------
def test_row_min_bits_in_numpy_and_tensorflow_agree(legacy):
  cdf = table(legacy.module)
  bits = safedecode.row_min_bits(cdf)
  assert len(bits) == 8 and (bits >= 0).all() and bits.max() > 0
  np.testing.assert_allclose(safedecode.row_min_bits_tf(tf.constant(cdf)).numpy(), bits)
  assert safedecode.min_payload_bytes(1000.) == int(
      safedecode.min_payload_bytes(tf.constant(1000., tf.float64)).numpy())


def test_payload_bound_at_its_edge(legacy):
  stream = bitstream.parse(read(STORED))
  (least,) = legacy.min_payload_bytes(stream.height, stream.width)
  assert 0 < least <= len(stream.strings[0])  # the real file is above it

  def with_payload(n):
    return bitstream.pack(stream.fingerprint, stream.height, stream.width, [b"\x5a" * n])

  with pytest.raises(TfcaeError, match="too short.*has %d bytes" % (least - 1)):
    legacy.decompress(with_payload(least - 1))
  try:  # exactly at the bound the length check passes; what follows may refuse it
    legacy.decompress(with_payload(least))
  except TfcaeError as e:
    assert "too short" not in str(e)


# --- size bounds ----------------------------------------------------------------------
def test_default_limit_is_pillows():
  assert bitstream.DEFAULT_MAX_PIXELS == fileio.DEFAULT_MAX_PIXELS == Image.MAX_IMAGE_PIXELS


def test_size_limit_at_its_edge(legacy):
  data = read(STORED)
  pixels = 96 * 64
  expected = legacy.decompress(data)
  np.testing.assert_array_equal(legacy.decompress(data, max_pixels=pixels), expected)
  np.testing.assert_array_equal(legacy.decompress(data, max_pixels=0), expected)
  with pytest.raises(TfcaeError, match=f"over the limit of {pixels - 1} pixels.*--max_pixels"):
    legacy.decompress(data, max_pixels=pixels - 1)


def test_signature_size_limit_at_its_edge(fresh):
  codec, data = fresh
  limited = codec.module.signatures["decompress_limited"]
  image = limited(bitstream=tf.constant(data), max_pixels=tf.constant(100 * 130, tf.int64))
  assert image["image"].shape == (100, 130, 3)
  with pytest.raises(tf.errors.InvalidArgumentError, match="max_pixels"):
    limited(bitstream=tf.constant(data), max_pixels=tf.constant(100 * 130 - 1, tf.int64))
  with pytest.raises(TfcaeError, match="over the limit"):
    codec.decompress(data, max_pixels=100 * 130 - 1)


# --- the corpus: every hostile file refused, none hangs -------------------------------
MAY_DECODE = {"random_payload_96x64.tfcae"}  # a dense code: random bytes are valid strings


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(CORPUS) if f.endswith(".tfcae")))
def test_corpus_file_is_refused_by_the_old_graph_codec(legacy, name):
  start = time.monotonic()
  try:
    legacy.decompress(read(os.path.join(CORPUS, name)))
    assert name in MAY_DECODE, f"{name} decoded"
  except TfcaeError as e:
    assert "\n" not in str(e) and "Graph execution error" not in str(e)
  assert time.monotonic() - start < 10


def test_signature_raises_invalid_argument_on_malformed_input(fresh):
  codec, data = fresh
  decompress = codec.module.signatures["decompress"]
  stream = bitstream.parse(data)
  escape = escape_at_base(table(codec.module))
  rng = np.random.default_rng(18)
  hostile = {
      "empty": b"", "short": b"TC", "magic only": b"TCAE",
      "foreign": b"TCAE" + rng.bytes(60), "v1 garbage": b"TCAE\x01\x01" + rng.bytes(30),
      "not utf-8": bytes(range(128, 256)),
      "escape at base": bitstream.pack(stream.fingerprint, 16, 16, [escape]),
      "escape then zeros": bitstream.pack(stream.fingerprint, stream.height, stream.width,
                                          [escape + b"\0" * len(stream.strings[0])]),
      "empty payload": bitstream.pack(stream.fingerprint, stream.height, stream.width, [b""]),
      "huge": bitstream.pack(stream.fingerprint, 65535, 65535, list(stream.strings)),
      "side 2^31": fuzz_raw(stream, height=2**31),
  }
  for name, bad in hostile.items():
    start = time.monotonic()
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
      decompress(bitstream=tf.constant(bad))
    message = graph_error_message(caught.value)
    assert "tfcae" in message or "max_pixels" in message or "2^31" in message, (name, message)
    with pytest.raises(TfcaeError):
      codec.decompress(bad)
    assert time.monotonic() - start < 10, name


def fuzz_raw(stream, **fields):
  sys.path.insert(0, os.path.join(REPO, "bench"))
  from fuzz_decoder import raw_file
  values = dict(magic=bitstream.MAGIC, version=stream.version, fingerprint=stream.fingerprint,
                height=stream.height, width=stream.width, strings=list(stream.strings))
  values.update(fields)
  return raw_file(**values)


def test_fuzz_harness_finds_no_hang_or_traceback(fresh, tmp_path):
  sys.path.insert(0, os.path.join(REPO, "bench"))
  import fuzz_decoder
  codec, data = fresh
  seed = str(tmp_path / "seed.tfcae")
  with open(seed, "wb") as f:
    f.write(data)
  result = fuzz_decoder.fuzz(codec.model_dir, seed, cases=60, seed=18, signature=True,
                             timeout=20, max_rss_mb=6000)
  assert result["failures"] == [] and not result["stopped_early"]
  assert result["outcomes"]["codec"]["refused"] > 20  # the mutations do reach the checks
  assert result["outcomes"]["codec"] == result["outcomes"]["signature"]


def test_fuzz_harness_on_the_seeded_corpus_with_the_old_graph():
  sys.path.insert(0, os.path.join(REPO, "bench"))
  import fuzz_decoder
  result = fuzz_decoder.fuzz(LEGACY, STORED, cases=60, seed=1, corpus=CORPUS, timeout=20,
                             max_rss_mb=6000)
  assert result["failures"] == [] and not result["stopped_early"]
  assert result["cases"] == 60 + len([f for f in os.listdir(CORPUS) if f.endswith(".tfcae")])


def test_bin_decompress_refuses_the_hang_file_in_one_line(tmp_path):
  out = tmp_path / "out.png"
  out.write_bytes(b"keep me")
  r = run_tool("decompress", f"--model_dir={LEGACY}",
               f"--input={os.path.join(CORPUS, 'hang_escape_96x64.tfcae')}", f"--output={out}",
               timeout=120)
  assert r.returncode == 1
  assert r.stderr.strip().count("\n") == 0 and "out of range" in r.stderr, r.stderr
  assert out.read_bytes() == b"keep me"


# --- messages -------------------------------------------------------------------------
def test_graph_error_message_finds_the_cause():
  def error(message):
    return tf.errors.InvalidArgumentError(None, None, message)

  trace = ("Graph execution error:\n\nDetected at node Substr_1 defined at (most recent call "
           "last):\n<stack traces unavailable>\n{}\n\t [[{{{{node Substr_1}}}}]] "
           "[Op:__inference_restored_function_body_3480]")
  assert graph_error_message(error(trace.format("pos 22 out of range for string b''"))) == (
      "pos 22 out of range for string b''")
  sanity = trace.format("assertion failed: [Sanity check failed.] [Condition x == y]")
  assert "sanity check failed" in graph_error_message(error(sanity))
  assert graph_error_message(error(trace.format("assertion failed: [bad thing]"))) == "bad thing"


# --- the environment ------------------------------------------------------------------
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_unwritable_output_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch, code):
  target = tmp_path / "out.bin"
  target.write_bytes(b"old")

  def failing_fsync(fd):
    raise OSError(code, os.strerror(code))

  monkeypatch.setattr(os, "fsync", failing_fsync)
  with pytest.raises(TfcaeError, match=f"out.bin: cannot write it \\({os.strerror(code)}\\)"):
    fileio.atomic_write_bytes(target, b"new")
  assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


def test_damaged_model_dir_is_one_line(tmp_path):
  broken = tmp_path / "model"
  shutil.copytree(LEGACY, broken)
  pb = broken / "saved_model.pb"
  pb.write_bytes(pb.read_bytes()[:1000])
  with pytest.raises(TfcaeError, match="the SavedModel is damaged"):
    Codec(str(broken))


def png_claiming(path, width, height):
  """A PNG whose header claims width x height (and whose data is one empty IDAT)."""
  def chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body +
            struct.pack(">I", zlib.crc32(kind + body)))
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
            chunk(b"IEND", b""))


def test_decompression_bomb_is_refused_from_its_header(tmp_path):
  bomb = tmp_path / "bomb.png"
  png_claiming(bomb, 100000, 100000)
  with pytest.raises(TfcaeError, match="100000x100000.*over the limit.*--max_pixels=10000000000"):
    fileio.load_rgb_image(str(bomb))
  assert Image.MAX_IMAGE_PIXELS == bitstream.DEFAULT_MAX_PIXELS  # Pillow's limit restored


@pytest.mark.slow
def test_bin_compress_refuses_a_decompression_bomb_in_one_line(tmp_path):
  bomb = tmp_path / "bomb.png"
  png_claiming(bomb, 100000, 100000)
  r = run_tool("compress", f"--model_dir={LEGACY}", f"--input={bomb}",
               f"--output={tmp_path / 'x.tfcae'}")
  assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
  assert "--max_pixels" in r.stderr


@pytest.mark.slow
def test_bin_decompress_to_an_unwritable_place_is_one_line(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_bytes(b"")
  r = run_tool("decompress", f"--model_dir={LEGACY}", f"--input={STORED}",
               f"--output={blocker / 'sub' / 'x.png'}")
  assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
  assert "cannot write it" in r.stderr


def test_decompress_file_keeps_the_existing_output_on_a_hostile_file(legacy, tmp_path):
  out = tmp_path / "out.png"
  out.write_bytes(b"keep me")
  with pytest.raises(TfcaeError):
    decompress_file(legacy, os.path.join(CORPUS, "hang_escape_16x16.tfcae"), str(out))
  assert out.read_bytes() == b"keep me"


def test_training_images_skip_unreadable_files_with_a_warning(tmp_path, capsys):
  from tfcae.data import images as data
  Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(tmp_path / "good.jpg")
  good = (tmp_path / "good.jpg").read_bytes()
  (tmp_path / "corrupt.jpg").write_bytes(good[:len(good) // 2])  # truncated
  (tmp_path / "empty.png").write_bytes(b"")
  files = data.image_files(str(tmp_path), "training images")
  assert [os.path.basename(f) for f in files] == ["good.jpg"]
  warnings = capsys.readouterr().err.strip().splitlines()
  assert len(warnings) == 2
  assert any("corrupt.jpg" in w for w in warnings) and any("empty.png" in w for w in warnings)
  (tmp_path / "good.jpg").unlink()
  with pytest.raises(TfcaeError, match="none of the training images"):
    data.image_files(str(tmp_path), "training images")
