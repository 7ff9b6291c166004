"""The variable-rate mean-scale hyperprior (tfcae.models.vbr): gain units, continuous
quality, files of format version 3 that carry it, rate control, and the tools around them."""
import json
import os
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf

from conftest import SAMPLE_EVAL, run_tool, shared_model_dir, tiny_config
from tfcae import TfcaeError
from tfcae.io import bitstream
from tfcae.io.fileio import load_rgb_image
from tfcae.models import build_model
from tfcae.models.vbr import interpolate_log_gains
from tfcae.objectives.terms import StepContext, VariableRateDistortion
from tfcae.serving import ratecontrol
from tfcae.serving.codec import Codec
from tfcae.training.config import TrainConfig

RATE_POINTS = 4
IMAGE = os.path.join(SAMPLE_EVAL, "kodim23.png")
FP = b"\x01\x02\x03\x04\x05\x06\x07\x08"


@pytest.fixture(scope="module")
def vbr_dir(tmp_path_factory):
  """A tiny variable-rate model, trained a few steps (every rate point drawn) and exported."""
  return shared_model_dir(tmp_path_factory, "tiny_meanscale_vbr", dict(
      architecture="meanscale-vbr", rate_points=RATE_POINTS, lmbda=0.002, lmbda_max=0.2,
      hyper_filters=8, steps_per_epoch=40, learning_rate=3e-3))


@pytest.fixture(scope="module")
def codec(vbr_dir):
  return Codec(vbr_dir)


@pytest.fixture(scope="module")
def image():
  return load_rgb_image(IMAGE)[:192, :256]


# --- gains -------------------------------------------------------------------------------
def test_gains_interpolate_exponentially_between_rate_points():
  table = tf.math.log(tf.constant([[1., 2.], [4., 8.], [16., 32.]]))
  np.testing.assert_allclose(interpolate_log_gains(table, 1.), [1., 2.], rtol=1e-6)
  np.testing.assert_allclose(interpolate_log_gains(table, 3.), [16., 32.], rtol=1e-6)
  # Halfway: the geometric mean of the neighbours (Cui et al. eq. 9).
  np.testing.assert_allclose(interpolate_log_gains(table, 1.5), [2., 4.], rtol=1e-6)
  np.testing.assert_allclose(interpolate_log_gains(table, [2.25, 0.3, 7.]),
                             [[4. * 2 ** 0.5, 8. * 2 ** 0.5], [1., 2.], [16., 32.]],
                             rtol=1e-6)


def test_a_variable_rate_model_needs_two_rate_points():
  with pytest.raises(ValueError, match="at least 2"):
    build_model({"architecture": "meanscale-vbr", "num_filters": 8, "rate_points": 1})


def test_the_distortion_weights_each_image_with_its_quality_lambda():
  term = VariableRateDistortion(0.001, 0.1, 3)
  np.testing.assert_allclose(term.lmbda(tf.constant([1., 2., 3.])), [0.001, 0.01, 0.1],
                             rtol=1e-5)
  x = tf.zeros([2, 4, 4, 3])
  x_hat = tf.concat([tf.fill([1, 4, 4, 3], 1.), tf.fill([1, 4, 4, 3], 2.)], 0)
  ctx = StepContext(None, x, {"x_hat": x_hat, "quality": tf.constant([1., 3.])}, True)
  loss, logs = term(ctx)
  np.testing.assert_allclose(float(loss), (0.001 * 1. + 0.1 * 4.) / 2., rtol=1e-5)
  np.testing.assert_allclose(float(logs["mse"]), 2.5, rtol=1e-6)
  with pytest.raises(ValueError):
    VariableRateDistortion(0.1, 0.01, 3)
  with pytest.raises(ValueError):
    VariableRateDistortion(0.01, 0.1, 3, metric="ssim")


def test_the_settings_ask_for_a_lambda_range_only_of_variable_rate_models(tmp_path):
  with pytest.raises(ValueError, match="lmbda_max"):
    tiny_config(tmp_path, "meanscale-vbr").validate()
  with pytest.raises(ValueError, match="lmbda_max applies"):
    tiny_config(tmp_path, "factorized", lmbda_max=0.1).validate()
  config = tiny_config(tmp_path, "meanscale-vbr", lmbda_max=0.1, rate_points=5)
  config.validate()
  assert config.architecture_config()["rate_points"] == 5


def test_a_fixed_rate_point_is_one_of_the_model_and_trains_at_its_lambda(tmp_path):
  """--rate_point=k: every image at point k, in training and validation (the fixed-λ arm);
  not an architecture setting, so a copy of a variable-rate run resumes with it."""
  with pytest.raises(ValueError, match="rate_point applies"):
    tiny_config(tmp_path, "factorized", rate_point=2).validate()
  for bad in (-1, 6):
    with pytest.raises(ValueError, match="not a rate point"):
      tiny_config(tmp_path, "meanscale-vbr", lmbda_max=0.1, rate_points=5,
                  rate_point=bad).validate()
  config = tiny_config(tmp_path, "meanscale-vbr", lmbda_max=0.1, rate_points=5, rate_point=3)
  config.validate()
  assert "rate_point" not in config.architecture_config()
  model = build_model(config.architecture_config())
  drawn = model.sample_quality(tf.constant(64), training=True).numpy()
  assert set(drawn) == {1., 2., 3., 4., 5.}  # uniform over the points, P(miss one) < 1e-5
  # Validation spreads a batch over the ladder, whatever its size.
  for batch, expected in ((5, [1, 2, 3, 4, 5]), (10, [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]),
                          (2, [1, 3])):
    np.testing.assert_array_equal(model.sample_quality(tf.constant(batch), False), expected)
  from tfcae.training import loop
  assert loop._compiled_model(config, None).fixed_rate_point == 3  # what bin/train builds
  model.fixed_rate_point = 3
  for training in (True, False):
    np.testing.assert_array_equal(model.sample_quality(tf.constant(4), training), [3.] * 4)


def test_a_variable_rate_family_trains_in_stages_on_one_run_folder():
  from tfcae.zoo import vbr
  family = vbr.VARIABLE_RATE_FAMILIES["meanscale-vbr"]
  commands = [vbr.train_command(family, "out", stage) for stage in range(len(family.stages))]
  assert len(commands) == 2 and commands[-1] == vbr.train_command(family, "out")
  for argv, flags in zip(commands, family.stages):
    assert "--model_dir=out/meanscale-vbr" in argv and argv[-len(flags):] == list(flags)
    assert f"--time_budget_minutes={family.minutes:g}" in argv  # one schedule for both
  assert "--epochs=67" in commands[0] and "--patch_size=256" in commands[1]


@pytest.mark.slow
def test_a_factorized_model_warm_starts_the_transforms(tmp_path):
  from tfcae.training.loop import warm_start
  from tfcae.training import loop
  source = tiny_config(tmp_path / "f", "factorized", steps_per_epoch=2)
  loop.train(source)
  config = TrainConfig.from_dict(dict(tiny_config(tmp_path / "v", "meanscale-vbr",
                                                  lmbda_max=0.1).to_dict()))
  model = build_model(config.architecture_config())
  warm_start(model, str(tmp_path / "f"))
  trained = build_model({"architecture": "factorized", "num_filters": 8, "latent_channels": 8})
  warm_start(trained, str(tmp_path / "f"))
  for got, want in zip(model.analysis_transform.variables + model.synthesis_transform.variables,
                       trained.analysis_transform.variables +
                       trained.synthesis_transform.variables):
    np.testing.assert_array_equal(got.numpy(), want.numpy())


# --- format version 3 ----------------------------------------------------------------------
def test_version_3_records_the_quality_in_fixed_point():
  data = bitstream.pack(FP, 10, 20, [b"abc", b"de"], index_check=7, quality=2.7)
  assert data[4] == 3 and len(data) == bitstream.header_size(2, 3) + 5 == 47
  stream = bitstream.parse(data)
  assert stream.version == 3 and stream.index_check == 7
  assert stream.quality == bitstream.quantize_quality(2.7) == round(2.7 * 65536) / 65536
  assert stream.strings == (b"abc", b"de")
  with pytest.raises(ValueError):
    bitstream.pack(FP, 10, 20, [b"abc"], quality=2.)  # a quality needs an index check


def test_pack_tf_writes_version_3_byte_for_byte():
  q = bitstream.quantize_quality(3.1416)
  expected = bitstream.pack(FP, 33, 45, [b"xyz", b"\0\1"], 0xDEADBEEF, q)
  got = bitstream.pack_tf(tf.constant(FP), tf.constant(33), tf.constant(45),
                          [tf.constant(b"xyz"), tf.constant(b"\0\1")],
                          tf.constant(0xDEADBEEF, tf.int64), tf.constant(q, tf.float32))
  assert got.numpy() == expected
  h, w, strings, check, quality = bitstream.parse_variable_rate_tf(
      tf.constant(expected), tf.constant(FP), 2, rate_points=4)
  assert (int(h), int(w), int(check)) == (33, 45, 0xDEADBEEF)
  assert float(quality) == q and [s.numpy() for s in strings] == [b"xyz", b"\0\1"]


def _with_quality_code(data, code):
  """The file with another quality field and its CRC recomputed (a crafted file)."""
  num_strings = data[5]
  at = 22 + 4 * num_strings + 4
  hsize = bitstream.header_size(num_strings, 3)
  data = data[:at] + struct.pack(">I", code) + data[at + 4:]
  crc = zlib.crc32(data[hsize:], zlib.crc32(data[:hsize - 4]))
  return data[:hsize - 4] + struct.pack(">I", crc) + data[hsize:]


def test_a_quality_field_out_of_range_is_refused_everywhere():
  good = bitstream.pack(FP, 10, 20, [b"abc", b"de"], index_check=7, quality=2.)
  zero = _with_quality_code(good, 0)
  with pytest.raises(TfcaeError, match="quality field is zero"):
    bitstream.parse(zero)
  for code in (0, 5 << 16):  # below 1, above K = 4
    with pytest.raises(tf.errors.InvalidArgumentError, match="quality outside"):
      bitstream.parse_variable_rate_tf(tf.constant(_with_quality_code(good, code)),
                                       tf.constant(FP), 2, rate_points=4)
  # A flipped bit in the field without a new CRC is a corrupted file.
  flipped = bytearray(good)
  flipped[22 + 8 + 4 + 2] ^= 1
  with pytest.raises(TfcaeError, match="CRC"):
    bitstream.parse(bytes(flipped))


def test_models_of_one_rate_refuse_version_3_and_variable_rate_ones_older_versions():
  v3 = bitstream.pack(FP, 10, 20, [b"abc", b"de"], index_check=7, quality=2.)
  v2 = bitstream.pack(FP, 10, 20, [b"abc", b"de"], index_check=7)
  with pytest.raises(tf.errors.InvalidArgumentError, match="unsupported tfcae version"):
    bitstream.parse_tf(tf.constant(v3), tf.constant(FP), 2)
  with pytest.raises(tf.errors.InvalidArgumentError, match="unsupported tfcae version"):
    bitstream.parse_variable_rate_tf(tf.constant(v2), tf.constant(FP), 2, rate_points=4)


# --- the exported model ------------------------------------------------------------------
def test_files_round_trip_bit_exactly_at_any_quality(codec, vbr_dir, image):
  keras = codec.exported.restore_keras()
  module = tf.saved_model.load(vbr_dir)
  sizes = []
  for quality in (1., 1.5, 2.7, float(RATE_POINTS)):
    data = codec.compress(image, quality)
    stream = bitstream.parse(data)
    assert stream.version == 3 and stream.quality == bitstream.quantize_quality(quality)
    # The SavedModel's signatures write and read the same bytes as the Keras model.
    signature = module.signatures["compress"](image=tf.constant(image),
                                              quality=tf.constant(quality))["bitstream"]
    assert signature.numpy() == data == keras.compress(image, quality).numpy()
    decoded = codec.decompress(data)
    np.testing.assert_array_equal(decoded, keras.decompress(data).numpy())
    np.testing.assert_array_equal(decoded, module.signatures["decompress"](
        bitstream=tf.constant(data))["image"].numpy())
    sizes.append(len(data))
  assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_a_quality_outside_the_range_is_refused(codec, image):
  for bad in (0.5, RATE_POINTS + 0.01, float("nan")):
    with pytest.raises(TfcaeError):
      codec.compress(image, bad)
  with pytest.raises(TfcaeError, match="needs --quality"):
    codec.compress(image)


def test_a_crafted_quality_is_refused_before_decoding(codec, image):
  data = codec.compress(image, 2.)
  with pytest.raises(TfcaeError, match="outside the model's range"):
    codec.decompress(_with_quality_code(data, (RATE_POINTS + 1) << 16))


# --- rate control ----------------------------------------------------------------------------
def test_max_bytes_gives_the_highest_quality_that_fits(codec, image):
  smallest, largest = len(codec.compress(image, 1.)), len(codec.compress(image, RATE_POINTS))
  for budget in (smallest, (smallest + largest) // 2, largest + 100):
    result = codec.compress_to(image, max_bytes=budget)
    assert len(result.data) <= budget
    assert bitstream.parse(result.data).quality == result.quality
    assert result.data == codec.compress(image, result.quality)
    if result.quality < RATE_POINTS:  # a little more quality would not fit
      assert len(codec.compress(image, min(RATE_POINTS, result.quality + 0.02))) > budget


def test_target_bpp_is_a_byte_budget(codec, image):
  height, width = image.shape[:2]
  bpp = 8. * len(codec.compress(image, 2.5)) / (height * width)
  result = codec.compress_to(image, target_bpp=bpp)
  assert 8. * len(result.data) / (height * width) <= bpp


def test_target_psnr_gives_the_lowest_quality_that_reaches_it(codec, image):
  from tfcae.objectives import metrics
  low = metrics.psnr(image, codec.decompress(codec.compress(image, 1.)))
  high = metrics.psnr(image, codec.decompress(codec.compress(image, RATE_POINTS)))
  target = (low + high) / 2.
  result = codec.compress_to(image, target_psnr=target)
  assert result.psnr >= target and 1. < result.quality < RATE_POINTS
  assert metrics.psnr(image, codec.decompress(result.data)) == result.psnr
  # (Minimality, for a PSNR that grows with the quality: test_the_bisections_find_the_edge.)


def test_the_bisections_find_the_edge():
  edge = 2.718
  high = ratecontrol.highest_quality(lambda q: q <= edge, 1., 8.)
  assert edge - 7. / 2 ** ratecontrol.QUALITY_STEPS <= high <= edge
  low = ratecontrol.lowest_quality(lambda q: q >= edge, 1., 8.)
  assert edge <= low <= edge + 7. / 2 ** ratecontrol.QUALITY_STEPS
  assert ratecontrol.highest_quality(lambda q: False, 1., 8.) is None
  assert ratecontrol.lowest_quality(lambda q: False, 1., 8.) is None
  assert ratecontrol.highest_quality(lambda q: True, 1., 8.) == 8.
  assert ratecontrol.lowest_quality(lambda q: True, 1., 8.) == 1.


def test_impossible_targets_are_one_line_errors(codec, image):
  with pytest.raises(TfcaeError, match="cannot fit"):
    codec.compress(image, max_bytes=40)
  with pytest.raises(TfcaeError, match="cannot reach"):
    codec.compress(image, target_psnr=99.)
  with pytest.raises(TfcaeError, match="one of"):
    codec.compress(image, quality=2., max_bytes=10_000)


def test_targets_need_a_variable_rate_model():
  with pytest.raises(TfcaeError, match="variable-rate"):
    ratecontrol.check_targets(None, max_bytes=100)
  with pytest.raises(TfcaeError, match="outside"):
    ratecontrol.check_targets(8, quality=8.5)
  assert ratecontrol.check_targets(8, target_bpp=0.5) == "target_bpp"


# --- the tools ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_tools_code_at_a_quality_or_a_size(vbr_dir, tmp_path):
  out = tmp_path / "a.tfcae"
  r = run_tool("compress", f"--model_dir={vbr_dir}", "--quality=2.7", f"--input={IMAGE}",
               f"--output={out}")
  assert r.returncode == 0, r.stderr
  assert "quality 2.7000" in r.stdout
  assert bitstream.parse(out.read_bytes()).quality == bitstream.quantize_quality(2.7)
  png = tmp_path / "a.png"
  r = run_tool("decompress", f"--model_dir={vbr_dir}", f"--input={out}", f"--output={png}")
  assert r.returncode == 0, r.stderr
  np.testing.assert_array_equal(load_rgb_image(str(png)),
                                Codec(vbr_dir).decompress(out.read_bytes()))
  budget = len(out.read_bytes())
  sized = tmp_path / "b.tfcae"
  r = run_tool("compress", f"--model_dir={vbr_dir}", f"--max_bytes={budget}",
               f"--input={IMAGE}", f"--output={sized}")
  assert r.returncode == 0, r.stderr
  assert len(sized.read_bytes()) <= budget and "codings" in r.stdout


def test_the_tools_write_nothing_for_a_target_they_cannot_meet(vbr_dir, factorized_dir, tmp_path):
  out = tmp_path / "x.tfcae"
  cases = [([f"--model_dir={vbr_dir}", "--max_bytes=20"], "cannot fit"),
           ([f"--model_dir={factorized_dir}", "--max_bytes=2000"], "variable-rate")]
  for flags, message in cases:
    r = run_tool("compress", *flags, f"--input={IMAGE}", f"--output={out}")
    assert r.returncode != 0 and message in r.stderr, (flags, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.slow
def test_evaluate_makes_one_point_per_quality_or_rate(vbr_dir, tmp_path):
  output = tmp_path / "rd.json"
  r = run_tool("evaluate", f"--model_dir={vbr_dir}", "--quality=1,2.5", f"--images={IMAGE}",
               f"--output={output}")
  assert r.returncode == 0, r.stderr
  results = json.loads(output.read_text())
  assert results["results"]["quality"] == [1., 2.5]
  assert results["results"]["bpp"][0] < results["results"]["bpp"][1]
  r = run_tool("evaluate", f"--model_dir={vbr_dir}", "--target_bpp=0.3",
               f"--images={IMAGE}", f"--output={output}")
  assert r.returncode == 0, r.stderr
  assert json.loads(output.read_text())["results"]["bpp"][0] <= 0.3


@pytest.mark.slow
def test_a_variable_rate_zoo_family_is_one_model(vbr_dir, tmp_path, monkeypatch, image):
  import shutil
  from tfcae import zoo
  from tfcae.io import zoo_index
  family = tmp_path / "zoo" / "tiny-vbr"
  shutil.copytree(vbr_dir, family)
  (family / "card.json").write_text(json.dumps({
      "name": "tiny-vbr", "family": "tiny-vbr", "rate_points": RATE_POINTS,
      "fingerprint": Codec(vbr_dir).fingerprint.hex()}))
  monkeypatch.setenv("TFCAE_ZOO", str(tmp_path / "zoo"))
  assert zoo_index.is_variable_rate("tiny-vbr")
  assert zoo_index.resolve("zoo:tiny-vbr") == str(family)
  assert [c["family"] for c in zoo.list()] == ["tiny-vbr"]
  data = zoo.load("tiny-vbr").compress(image, max_bytes=3000)
  assert len(data) <= 3000
  assert zoo.codec_of(data).decompress(data).shape == image.shape


# --- cross-platform: the integer hyper-synthesis -----------------------------------------------
def test_the_side_information_sees_signed_latents():
  model = build_model({"architecture": "meanscale-vbr", "num_filters": 8, "rate_points": 2})
  assert model.latent_codec().signed  # Minnen et al.: h_a(y), the means need the signs
  assert not build_model({"architecture": "meanscale", "num_filters": 8}).latent_codec().signed


@pytest.mark.slow
def test_a_converted_model_has_exact_indices_and_codes_at_every_quality(vbr_dir, image,
                                                                        tmp_path):
  from tfcae.serving.export import export_model
  from tfcae.training.loop import convert_to_integer_hyper_synthesis
  batch = np.stack([load_rgb_image(IMAGE)[i:i + 64, j:j + 64] for i in (0, 100)
                    for j in (0, 200)]).astype(np.float32)
  model = convert_to_integer_hyper_synthesis(vbr_dir, batch)
  assert model.get_config()["integer_hyper_synthesis"] is True
  codec = model.latent_codec(tf.constant(2.5))
  y = model.encode(tf.constant(batch[:1]))
  z = codec.child.side_information(codec.gain * y)
  offset = codec.child.side_offset()
  symbols = codec.child.side_model.quantize(z) - offset
  ihs = model.hyper_synthesis_transform
  mean, indexes = ihs(symbols, offset)
  exact_mean, exact_indexes = ihs.exact(symbols, offset)
  # The training formula (float32, straight-through) gives the coder's integers.
  np.testing.assert_array_equal(indexes.numpy(), exact_indexes.numpy())
  np.testing.assert_allclose(mean.numpy(), exact_mean.numpy(), atol=1e-4)
  export_model(model, str(tmp_path / "int"))
  converted = Codec(str(tmp_path / "int"))
  for quality in (1., 2.2, float(RATE_POINTS)):
    data = converted.compress(image, quality)
    np.testing.assert_array_equal(converted.decompress(data), model.decompress(data).numpy())
