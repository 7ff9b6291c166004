"""TFLite encoders and host-side coding (issue 7), and the TF-MOT pruning baseline."""
import os

import numpy as np
import pytest

from conftest import SAMPLE_EVAL, SAMPLE_TRAIN, run_tool, sample_image

# TFLite conversion of trained encoders (minutes in all): second tier.
pytestmark = pytest.mark.slow

# Builtin TFLite operators the analysis transforms may use (GDN: ABS, CONV_2D, DIV; the
# rounding: SUB, ROUND, CAST; int8: QUANTIZE/DEQUANTIZE; reduced encoders: GATHER,
# CONCATENATION).
BUILTIN_OPS = {"ABS", "ADD", "CAST", "CONCATENATION", "CONV_2D", "DEQUANTIZE", "DIV",
               "GATHER", "MUL", "QUANTIZE", "ROUND", "RSQRT", "SQRT", "SUB", "FILL",
               "BROADCAST_TO", "SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE", "TILE"}


def kodak_crops():
  """Three crops of the shipped Kodak images, not multiples of the stride (edge padding)."""
  crops = []
  for name, (top, left, h, w) in zip(sorted(os.listdir(SAMPLE_EVAL)),
                                     [(0, 0, 120, 200), (100, 300, 150, 130),
                                      (200, 50, 96, 160)]):
    crops.append(sample_image(name)[top:top + h, left:left + w])
  return crops


@pytest.fixture(scope="module")
def trained(factorized_dir):
  from tfcae import tflite
  return tflite.load_trained_model(factorized_dir)


@pytest.fixture(scope="module")
def float_tflite(trained):
  from tfcae import tflite
  return tflite.convert(trained, "none")


def reference_symbols(model, image):
  """The SavedModel path's symbols: round(y − o) of the (checked-equal) trained encoder."""
  import tensorflow as tf
  from tfcae import tflite
  padded = tflite.pad_to_stride(image, model.stride)
  y = model.analysis_transform(tf.constant(padded[None], tf.float32))
  return np.round(y.numpy() - model.latent_offset().numpy()).astype(np.int32)


def test_float_tflite_builtin_ops_and_equal_latents(trained, float_tflite):
  import tensorflow as tf
  from tfcae import tflite
  ops = tflite.op_names(float_tflite)
  assert set(ops) <= BUILTIN_OPS, ops
  assert "CONV_2D" in ops and "ROUND" in ops
  # A plain interpreter (no Flex delegate) loads and runs it.
  plain = tf.lite.Interpreter(model_content=float_tflite)
  assert plain.get_output_details()[0]["dtype"] == np.int32
  encoder = tflite.TFLiteEncoder(float_tflite)
  for image in kodak_crops():
    expected = reference_symbols(trained, image)
    got = encoder.symbols(tflite.pad_to_stride(image, trained.stride))
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)  # all elements
  assert np.abs(expected).max() >= 1  # the latents are not all zero: the check bites


def test_tflite_file_is_the_savedmodel_file_and_decodes(factorized_dir, float_tflite, tmp_path):
  from tfcae.codec import Codec, TFLiteCodec
  path = tmp_path / "encoder.tflite"
  path.write_bytes(float_tflite)
  host = TFLiteCodec(str(path), factorized_dir)
  server = Codec(factorized_dir)
  for image in kodak_crops():
    data = host.compress(image)
    # Float encoder, same symbols: byte-identical to the SavedModel's compress.
    assert data == server.compress(image)
    decoded = server.decompress(data)
    assert decoded.shape == image.shape


def test_int8_latents_mostly_equal_rest_off_by_one(trained):
  """Full-integer PTQ: rounded latents vs the float model.

  The issue asks for ≥ 99 % equal. Per-tensor int8 activations cannot give that in
  general: the latent tensor's quantisation step (range/255, ≈ 0.24 for the trained N = 64
  model) alone moves every latent within ±0.12 of a rounding boundary to the other side
  (measured: 92.2 % equal on kodim01 for runs/factorized_cpu21k_l0.01, 97.9 % with 16×8
  quantisation; docs/results.md). What holds, and is tested, is that no symbol is off by
  more than one and that most are equal.
  """
  from tfcae import tflite
  representative = tflite.representative_crops(
      [os.path.join(SAMPLE_TRAIN, f) for f in sorted(os.listdir(SAMPLE_TRAIN))[:8]],
      crop=128, per_image=1)
  data = tflite.convert(trained, "int8", representative)
  ops = tflite.op_names(data)
  assert set(ops) <= BUILTIN_OPS, ops
  encoder = tflite.TFLiteEncoder(data)
  assert encoder._input["dtype"] == np.uint8
  equal, total, nonzero = 0, 0, 0
  for image in kodak_crops():
    expected = reference_symbols(trained, image)
    got = encoder.symbols(tflite.pad_to_stride(image, trained.stride))
    assert np.abs(got - expected).max() <= 1
    equal += int((got == expected).sum())
    total += expected.size
    nonzero += int((expected != 0).sum())
  assert nonzero / total > 0.05  # not a trivially all-zero latent
  assert equal / total >= 0.85, equal / total


def test_hyperprior_symbols_round_trip():
  """Host-side coding of the hyperprior: the file decodes to the device's ŷ."""
  import tensorflow as tf
  from tfcae import bitstream, tflite
  from tfcae.models import HyperpriorModel
  model = HyperpriorModel(num_filters=8)
  model.prepare_for_compression()
  image = sample_image()[:100, :140]
  function = tflite.encoder_function(model)
  padded = tflite.pad_to_stride(image, model.stride)
  symbols = function(tf.constant(padded[None], tf.float32))["symbols"]
  data = model.compress_symbols(symbols, tf.constant(100), tf.constant(140)).numpy()
  stream = bitstream.parse(data, model.fingerprint.numpy())
  latent_model, side_model = model.entropy_models()
  z_hat = side_model.decompress(tf.constant(stream.strings[1:]), [padded.shape[0] // 64,
                                                                  padded.shape[1] // 64])
  y_hat = latent_model.decompress(tf.constant(stream.strings[:1]),
                                  model.hyper_synthesis_transform(z_hat))
  np.testing.assert_array_equal(y_hat.numpy(), symbols.numpy().astype(np.float32))
  assert model.decompress(tf.constant(data)).shape == image.shape


def test_gdn_is_prunable_and_prune_strip_round_trip():
  import tensorflow as tf
  import tensorflow_model_optimization as tfmot
  from tfcae import layers, pruning
  from tfcae.models import FactorizedModel
  model = FactorizedModel(num_filters=8)
  gdn = model.analysis_transform.get_layer("gdn_0")
  assert isinstance(gdn, tfmot.sparsity.keras.PrunableLayer) and isinstance(gdn, layers.GDN)
  assert gdn.get_prunable_weights() == []
  names = sorted(v.name for v in model.analysis_transform.variables)
  encoder = pruning.wrap_encoder(model, 0.5, begin_step=0, end_step=1, frequency=1)
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-4))
  images = tf.data.Dataset.from_tensors(tf.random.uniform([2, 64, 64, 3], 0, 255, seed=1))
  encoder.update_masks = True
  model.fit(images.repeat(), epochs=1, steps_per_epoch=3, verbose=0,
            callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
  stripped = pruning.strip(encoder)
  assert [type(l).__name__ for l in stripped.layers] == [
      "Rescaling", "Conv2D", "GDN", "Conv2D", "GDN", "Conv2D"]
  assert sorted(v.name for v in stripped.variables) == names
  assert abs(pruning.kernel_sparsity(stripped) - 0.5) < 0.01


@pytest.mark.slow
def test_cli_export_compress_decompress(factorized_dir, tmp_path):
  from tfcae.fileio import load_rgb_image
  tflite_path, out = str(tmp_path / "e.tflite"), str(tmp_path / "a.tfcae")
  image = os.path.join(SAMPLE_EVAL, sorted(os.listdir(SAMPLE_EVAL))[0])
  r = run_tool("export", f"--model_dir={factorized_dir}", f"--tflite={tflite_path}")
  assert r.returncode == 0, r.stderr
  r = run_tool("compress", f"--tflite={tflite_path}", f"--model_dir={factorized_dir}",
               f"--input={image}", f"--output={out}")
  assert r.returncode == 0, r.stderr
  r = run_tool("compress", f"--model_dir={factorized_dir}", f"--input={image}",
               f"--output={out}.ref")
  assert r.returncode == 0, r.stderr
  assert open(out, "rb").read() == open(out + ".ref", "rb").read()
  r = run_tool("decompress", f"--model_dir={factorized_dir}", f"--input={out}",
               f"--output={tmp_path / 'a.png'}")
  assert r.returncode == 0, r.stderr
  assert load_rgb_image(str(tmp_path / "a.png")).shape == load_rgb_image(image).shape
  r = run_tool("export", f"--model_dir={factorized_dir}", f"--tflite={tflite_path}",
               "--quantize=int8")
  assert r.returncode == 1 and "representative_images" in r.stderr
