"""The integer hyper-synthesis (tfcae/models/integer.py): scale indices
computed with exact integer arithmetic from frozen integers, so that every platform's
decoder gets the encoder's indices."""
import numpy as np
import pytest
import tensorflow as tf

from tfcae.deploy import crossplatform
from tfcae.models import build_model
from tfcae.models.base import edge_pad
from tfcae.models.hyperprior import NUM_SCALES
from tfcae.training import loop as training
from tfcae.training.config import TrainConfig
from tfcae.models.integer import (PRE_SHIFT_BITS, SYMBOL_BOUND, IntegerConv2DTranspose,
                                  IntegerHyperSynthesis)

from conftest import SAMPLE_EVAL, sample_image, shared_model_dir

ARCH = {"architecture": "hyperprior", "num_filters": 8, "integer_hyper_synthesis": True}


def _varied(model):
  """An untrained model picks index 0 everywhere; with its side information scaled up
  and the index layer's bias moved to the table's middle, the indices vary over the
  image as a trained model's do."""
  layer = model.hyper_analysis_transform.layers[-1]
  layer.kernel.assign(layer.kernel * 300.)
  last = model.hyper_synthesis_transform.stack[-1]
  last.kernel.assign(last.kernel * 8.)
  last.bias.assign(last.bias + 24.)
  return model


@pytest.fixture(scope="module")
def model():
  tf.keras.utils.set_random_seed(0)
  m = _varied(build_model(ARCH))
  m.calibrate(tf.constant(sample_image()[None, :128, :128], tf.float32))
  m.prepare_for_compression()
  return m


def _indices(model, image, exact):
  x = edge_pad(tf.cast(image, tf.float32)[None], *model.padded_shape(*image.shape[:2]))
  codec = model.latent_codec()
  z = model.hyper_analysis_transform(abs(model.analysis_transform(x)))
  return codec.mean_and_indexes(codec.side_model.quantize(z), exact=exact)[1].numpy()


@pytest.mark.parametrize("rounding", ["nearest", "floor"])
def test_layer_sums_are_exact_where_float32_is_not(rounding):
  # A 1×1 input through a 3×3 stride-1 layer: each output is the centre tap's dot product,
  # which Python integers give exactly. Inputs at the symbol bound and weights at ±127
  # make sums of ~4·10⁶ × 2^8 that float32 (24-bit mantissa) would round.
  layer = IntegerConv2DTranspose(4, 3, 1, top=2 ** 40, rounding=rounding, name="t")
  layer.build((1, 1, 1, 16))
  rng = np.random.default_rng(0)
  h = rng.integers(-127, 128, size=(3, 3, 4, 16))
  h[1, 1, :, 0] = 127
  b = rng.integers(-1000, 1000, size=4)
  c = rng.integers(1, 5000, size=4)
  layer.integer_kernel.assign(h.astype(np.float32))
  layer.integer_bias.assign(b)
  layer.divisor.assign(c)
  v = rng.integers(-SYMBOL_BOUND, SYMBOL_BOUND + 1, size=16)
  got = layer.exact(tf.constant(v.reshape(1, 1, 1, 16), tf.float64)).numpy().ravel()
  for o in range(4):
    acc = sum(int(h[1, 1, o, i]) * int(v[i]) for i in range(16))
    half = int(c[o]) // 2 if rounding == "nearest" else 0
    want = (acc * 2 ** PRE_SHIFT_BITS + int(b[o]) + half) // int(c[o])
    assert got[o] == min(max(want, 0), 2 ** 40), o


def test_too_wide_for_exact_sums_is_refused():
  with pytest.raises(ValueError, match="2\\^53"):
    IntegerHyperSynthesis(1 << 20, 8, NUM_SCALES)


def test_training_formula_matches_the_coders_integers(model):
  image = sample_image()[:128, :192]
  emulated, exact = _indices(model, image, False), _indices(model, image, True)
  assert len(np.unique(exact)) > 5  # the indices vary: the comparison means something
  assert exact.min() >= 0 and exact.max() <= NUM_SCALES - 1
  assert np.all(exact == np.round(exact))
  # float32 sums may round a value at a division boundary the other way: rarely
  assert np.mean(emulated == exact) > 0.999


def test_hostile_symbols_and_offsets_give_valid_indices(model):
  symbols = tf.constant(np.full((1, 2, 3, 8), 1e12, np.float32))
  out = model.hyper_synthesis_transform.exact(symbols, tf.fill([8], 1e9)).numpy()
  assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= NUM_SCALES - 1


def test_coding_uses_the_frozen_integers(model):
  image = sample_image()[:64, :64]
  data = model.compress(tf.constant(image)).numpy()
  decoded = model.decompress(tf.constant(data)).numpy()
  last = model.hyper_synthesis_transform.stack[-1]
  kernel = last.kernel.numpy()
  last.kernel.assign(kernel * 1.5)  # the float weights move; the coder does not
  try:
    assert model.compress(tf.constant(image)).numpy() == data
    np.testing.assert_array_equal(model.decompress(tf.constant(data)).numpy(), decoded)
  finally:
    last.kernel.assign(kernel)


def test_older_architectures_keep_their_config_and_fingerprint():
  config = TrainConfig(model_dir="x", architecture="hyperprior", train_images="x")
  assert "integer_hyper_synthesis" not in config.architecture_config()
  assert "integer_hyper_synthesis" not in build_model(
      {"architecture": "hyperprior", "num_filters": 8}).get_config()
  with pytest.raises(ValueError, match="--integer_hyper_synthesis applies"):
    TrainConfig(model_dir="x", architecture="meanscale", train_images="x",
                integer_hyper_synthesis=True).validate()


@pytest.mark.slow
def test_warm_start_from_a_float_hyperprior_keeps_its_weights(tmp_path_factory, tmp_path):
  float_dir = shared_model_dir(tmp_path_factory, "tiny_hyperprior_float",
                               dict(architecture="hyperprior", steps_per_epoch=100,
                                    learning_rate=3e-3))
  source = build_model({"architecture": "hyperprior", "num_filters": 8})
  training.warm_start(source, float_dir)
  target = build_model(ARCH)
  training.warm_start(target, float_dir)
  # Names repeat across layers (assign_matching pairs the k-th of each name and shape).
  def by_key(variables):
    groups = {}
    for v in variables:
      groups.setdefault((v.name, tuple(v.shape)), []).append(v.numpy())
    return groups
  targets = by_key(target.weight_variables())
  for key, values in by_key(source.weight_variables()).items():
    for want, got in zip(values, targets[key]):
      np.testing.assert_array_equal(got, want)
  # Fine-tuning through bin/train's path: calibrated, trained, exported, decodable.
  from conftest import tiny_config
  run = tmp_path / "integer"
  summary = training.train(tiny_config(run, architecture="hyperprior", integer_hyper_synthesis=True,
                                       init_from=float_dir, steps_per_epoch=20))
  assert summary["architecture"]["integer_hyper_synthesis"] is True
  steps = [float(layer.output_step.numpy())
           for layer in training.export.restore_keras(str(run)).hyper_synthesis_transform.stack]
  assert all(s > 0 for s in steps) and steps[-1] == 1.  # calibrated hidden steps; index units
  # Written with oneDNN's kernels, read with Eigen's and the other way round: the same
  # indices, so every file decodes (a float hyperprior's may not, tests/test_index_check).
  for write in (0, 1):
    (record,) = crossplatform.cross_check(str(run), [f"{SAMPLE_EVAL}/kodim23.png"],
                                          str(tmp_path / f"w{write}"), write=write,
                                          read=1 - write)
    assert record["status"] == "ok", record


@pytest.mark.slow
def test_files_of_varied_indices_decode_across_kernels(model, tmp_path):
  from tfcae.serving.export import export_model
  export_model(model, str(tmp_path / "model"))
  images = [f"{SAMPLE_EVAL}/kodim23.png"]
  (record,) = crossplatform.cross_check(str(tmp_path / "model"), images, str(tmp_path / "w"),
                                        write=1, read=0, as_version_1=True)
  assert record["status"] == "ok", record  # no index check needed: the indices agree


@pytest.mark.slow
def test_int8_device_files_decode_on_the_server(model, tmp_path):
  """The phone → server path: an int8 TFLite encoder's symbols, range-coded on the host
  (with the host's kernels), decode under the other kernel setting to the same pixels."""
  from tfcae.deploy import tflite
  from tfcae.deploy.hostcoding import HostCoder
  from tfcae.serving.export import export_model
  model_dir = str(tmp_path / "model")
  export_model(model, model_dir)
  crops = tflite.representative_crops([f"{SAMPLE_EVAL}/kodim23.png"], crop=128)
  (tmp_path / "enc.tflite").write_bytes(tflite.convert(model, "int8", crops))
  image = sample_image()[:128, :192]
  path = tmp_path / "x.tfcae"
  path.write_bytes(HostCoder(str(tmp_path / "enc.tflite"), model_dir).compress(image))
  decoded = {}
  for onednn in (0, 1):
    out = str(tmp_path / f"x{onednn}.npy")
    assert crossplatform.decompress_under(model_dir, onednn, str(path), out) is None
    decoded[onednn] = np.load(out).astype(np.int16)
  assert np.abs(decoded[0] - decoded[1]).max() <= 1


@pytest.mark.slow
def test_bin_convert_integer(tmp_path_factory, tmp_path):
  from conftest import SAMPLE_TRAIN, run_tool
  from tfcae.serving.codec import Codec
  float_dir = shared_model_dir(tmp_path_factory, "tiny_hyperprior_float",
                               dict(architecture="hyperprior", steps_per_epoch=100,
                                    learning_rate=3e-3))
  out = tmp_path / "integer"
  r = run_tool("convert_integer", f"--model_dir={float_dir}", f"--output_dir={out}",
               f"--calibration_images={SAMPLE_TRAIN}", "--patch_size=64", "--batch_size=2")
  assert r.returncode == 0, r.stderr
  codec, float_codec = Codec(str(out)), Codec(float_dir)
  image = sample_image()[:64, :96]
  # Same transforms: the same pixels as the float model's own file.
  np.testing.assert_array_equal(codec.decompress(codec.compress(image)),
                                float_codec.decompress(float_codec.compress(image)))
  r = run_tool("convert_integer", f"--model_dir={float_dir}", f"--output_dir={out}",
               f"--calibration_images={SAMPLE_TRAIN}")
  assert r.returncode == 1 and "already holds" in r.stderr
  r = run_tool("convert_integer", f"--model_dir={out}", f"--output_dir={tmp_path / 'x'}",
               f"--calibration_images={SAMPLE_TRAIN}")
  assert r.returncode == 1 and "not a float hyperprior" in r.stderr
