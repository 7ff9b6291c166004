"""TFLite encoders and host-side coding, and the TF-MOT pruning baseline."""
import json
import os

import numpy as np
import pytest

from conftest import (SAMPLE_EVAL, SAMPLE_TRAIN, TFLITE_ENCODER_OPS, run_tool, sample_image,
                      shared_model_dir)
from tfcae.deploy.hostcoding import pad_to_stride

# TFLite conversion of trained encoders (minutes in all): second tier.
pytestmark = pytest.mark.slow


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
  from tfcae.serving import open_model
  return open_model(factorized_dir).restore_keras()


@pytest.fixture(scope="module")
def float_tflite(trained):
  from tfcae.deploy import tflite
  return tflite.convert(trained, "none")


def reference_symbols(model, image):
  """The SavedModel path's symbols: round(y − o) of the (checked-equal) trained encoder."""
  import tensorflow as tf
  from tfcae.deploy import tflite
  padded = pad_to_stride(image, model.stride)
  y = model.analysis_transform(tf.constant(padded[None], tf.float32))
  return np.round(y.numpy() - model.latent_codec().offset().numpy()).astype(np.int32)


def test_float_tflite_builtin_ops_and_equal_latents(trained, float_tflite):
  import tensorflow as tf
  from tfcae.deploy import tflite
  ops = tflite.op_names(float_tflite)
  assert set(ops) <= TFLITE_ENCODER_OPS, ops
  assert "CONV_2D" in ops and "ROUND" in ops
  # A plain interpreter (no Flex delegate) loads and runs it.
  plain = tf.lite.Interpreter(model_content=float_tflite)
  assert plain.get_output_details()[0]["dtype"] == np.int32
  encoder = tflite.TFLiteEncoder(float_tflite)
  for image in kodak_crops():
    expected = reference_symbols(trained, image)
    got = encoder.symbols(pad_to_stride(image, trained.stride))
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)  # all elements
  assert np.abs(expected).max() >= 1  # the latents are not all zero: the check bites


def test_tflite_file_is_the_savedmodel_file_and_decodes(factorized_dir, float_tflite, tmp_path):
  from tfcae.serving.codec import Codec
  from tfcae.deploy.hostcoding import HostCoder
  path = tmp_path / "encoder.tflite"
  path.write_bytes(float_tflite)
  host = HostCoder(str(path), factorized_dir)
  server = Codec(factorized_dir)
  for image in kodak_crops():
    data = host.compress(image)
    # Float encoder, same symbols: byte-identical to the SavedModel's compress.
    assert data == server.compress(image)
    decoded = server.decompress(data)
    assert decoded.shape == image.shape


def test_int8_latents_equal_the_int8_reference_and_nearly_the_float_model(trained):
  """int8 export of a trained model (tfcae.deploy.qat): ≥ 99 % of the symbols equal the int8
  Keras reference's (the fake-quantised encoder the flatbuffer is converted from), the
  rest off by one; against the float SavedModel encoder none is off by more than one and
  ≥ 95 % are equal (98.2 % measured on Kodak for the quick-start model; the converter's
  own PTQ gave ≈ 91 %: docs/results.md)."""
  import tensorflow as tf
  from tfcae.deploy import tflite
  representative = tflite.representative_crops(
      [os.path.join(SAMPLE_TRAIN, f) for f in sorted(os.listdir(SAMPLE_TRAIN))[:8]],
      crop=128, per_image=1)
  data = tflite.convert(trained, "int8", representative)
  ops = tflite.op_names(data)
  assert set(ops) <= TFLITE_ENCODER_OPS, ops
  encoder = tflite.TFLiteEncoder(data)
  assert encoder._input["dtype"] == np.uint8
  reference = tflite.int8_encoder(trained, representative)
  equal_ref, equal_float, total, nonzero = 0, 0, 0, 0
  for image in kodak_crops():
    padded = pad_to_stride(image, trained.stride)
    expected = reference_symbols(trained, image)
    int8_expected = reference.symbols(tf.constant(padded[None], tf.float32)).numpy()
    got = encoder.symbols(padded)
    assert np.abs(got - expected).max() <= 1
    assert np.abs(got - int8_expected).max() <= 1
    equal_ref += int((got == int8_expected).sum())
    equal_float += int((got == expected).sum())
    total += expected.size
    nonzero += int((expected != 0).sum())
  assert nonzero / total > 0.05  # not a trivially all-zero latent
  assert equal_ref / total >= 0.99, equal_ref / total
  assert equal_float / total >= 0.95, equal_float / total


def test_hyperprior_symbols_round_trip():
  """Host-side coding of the hyperprior: the file decodes to the device's ŷ."""
  import tensorflow as tf
  from tfcae.deploy import tflite
  from tfcae.io import bitstream
  from tfcae.models import HyperpriorModel
  model = HyperpriorModel(num_filters=8)
  model.prepare_for_compression()
  image = sample_image()[:100, :140]
  function = tflite.encoder_function(model)
  padded = pad_to_stride(image, model.stride)
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
  from tfcae.deploy import pruning
  from tfcae.models import FactorizedModel
  from tfcae.nn import layers
  from tfcae.objectives.terms import rate_distortion
  model = FactorizedModel(num_filters=8, objective=rate_distortion(0.01))
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
def compress_through_tflite_and_decode(tflite_path, model_dir, image, out):
  """bin/compress --tflite writes `out`; bin/decompress decodes it to the image's shape."""
  from tfcae.io.fileio import load_rgb_image
  r = run_tool("compress", f"--tflite={tflite_path}", f"--model_dir={model_dir}",
               f"--input={image}", f"--output={out}")
  assert r.returncode == 0, r.stderr
  r = run_tool("decompress", f"--model_dir={model_dir}", f"--input={out}",
               f"--output={out}.png")
  assert r.returncode == 0, r.stderr
  assert load_rgb_image(out + ".png").shape == load_rgb_image(image).shape


def test_cli_export_compress_decompress(factorized_dir, tmp_path):
  tflite_path, out = str(tmp_path / "e.tflite"), str(tmp_path / "a.tfcae")
  image = os.path.join(SAMPLE_EVAL, sorted(os.listdir(SAMPLE_EVAL))[0])
  r = run_tool("export", f"--model_dir={factorized_dir}", f"--tflite={tflite_path}")
  assert r.returncode == 0, r.stderr
  compress_through_tflite_and_decode(tflite_path, factorized_dir, image, out)
  r = run_tool("compress", f"--model_dir={factorized_dir}", f"--input={image}",
               f"--output={tmp_path / 'reference.tfcae'}")
  assert r.returncode == 0, r.stderr
  assert open(out, "rb").read() == (tmp_path / "reference.tfcae").read_bytes()
  r = run_tool("export", f"--model_dir={factorized_dir}", f"--tflite={tflite_path}",
               "--quantize=int8")
  assert r.returncode == 1 and "representative_images" in r.stderr


def test_cli_int8_fine_tuned_export_reference_and_decoding(factorized_dir, tmp_path):
  """bin/export --quantize=int8 with quantization-aware fine-tuning and the int8
  SavedModel reference: the reference's symbols equal the flatbuffer's (≥ 99 %, rest off
  by one), and a file the int8 encoder produced decodes with bin/decompress."""
  import tensorflow as tf
  from tfcae.deploy import tflite
  tflite_path, out = str(tmp_path / "e8.tflite"), str(tmp_path / "a.tfcae")
  reference_dir = str(tmp_path / "int8_reference")
  r = run_tool("export", f"--model_dir={factorized_dir}", f"--tflite={tflite_path}",
               "--quantize=int8", f"--representative_images={SAMPLE_TRAIN}",
               "--qat_steps=4", f"--qat_images={SAMPLE_TRAIN}",
               f"--int8_reference={reference_dir}")
  assert r.returncode == 0, r.stderr
  info = json.load(open(tflite_path + ".json"))
  assert info["quantize"] == "int8" and info["qat"]["steps"] == 4
  reference = tf.saved_model.load(reference_dir).signatures["symbols"]
  device = tflite.TFLiteEncoder(tflite_path)
  equal = total = 0
  for image in kodak_crops():
    padded = pad_to_stride(image, 16)
    expected = reference(image=tf.constant(padded[None], tf.float32))["symbols"].numpy()
    got = device.symbols(padded)
    assert np.abs(got - expected).max() <= 1
    equal += int((got == expected).sum())
    total += got.size
  assert equal / total >= 0.99, equal / total
  image = os.path.join(SAMPLE_EVAL, sorted(os.listdir(SAMPLE_EVAL))[0])
  compress_through_tflite_and_decode(tflite_path, factorized_dir, image, out)
  # Fine-tuning needs int8 and training images.
  r = run_tool("export", f"--model_dir={factorized_dir}", f"--tflite={tflite_path}",
               "--qat_steps=4")
  assert r.returncode == 1 and "--quantize=int8" in r.stderr
  r = run_tool("export", f"--model_dir={factorized_dir}", f"--tflite={tflite_path}",
               "--quantize=int8", f"--representative_images={SAMPLE_TRAIN}", "--qat_steps=4")
  assert r.returncode == 1 and "--qat_images" in r.stderr


def test_cli_int8_export_of_a_caep_run(tmp_path_factory, tmp_path):
  """CAE-P through the CLI: bin/export --quantize=int8 on a trained CAE-P run (residual
  blocks unrolled, PReLU quantised), bin/compress with the flatbuffer, bin/decompress: the
  int8 file decodes to the image's shape, and its reconstruction's MSE stays within 25 % of
  the float server path's."""
  from tfcae.io.fileio import load_rgb_image
  model_dir = shared_model_dir(tmp_path_factory, "tiny_caep",
                               dict(architecture="caep", caep_blocks=1, latent_channels=8))
  tflite_path, out = str(tmp_path / "caep8.tflite"), str(tmp_path / "a.tfcae")
  r = run_tool("export", f"--model_dir={model_dir}", f"--tflite={tflite_path}",
               "--quantize=int8", f"--representative_images={SAMPLE_TRAIN}")
  assert r.returncode == 0, r.stderr
  info = json.load(open(tflite_path + ".json"))
  assert info["quantize"] == "int8" and "PRELU" in info["ops"]
  image = os.path.join(SAMPLE_EVAL, sorted(os.listdir(SAMPLE_EVAL))[0])
  compress_through_tflite_and_decode(tflite_path, model_dir, image, out)
  float_file = str(tmp_path / "float.tfcae")
  r = run_tool("compress", f"--model_dir={model_dir}", f"--input={image}",
               f"--output={float_file}")
  assert r.returncode == 0, r.stderr
  original = load_rgb_image(image).astype(np.float64)
  r = run_tool("decompress", f"--model_dir={model_dir}", f"--input={float_file}",
               f"--output={tmp_path / 'float.png'}")
  assert r.returncode == 0, r.stderr
  mse_int8 = np.mean((load_rgb_image(out + ".png") - original) ** 2)
  mse_float = np.mean((load_rgb_image(str(tmp_path / "float.png")) - original) ** 2)
  assert mse_int8 <= 1.25 * mse_float + 1., (mse_int8, mse_float)  # int8 costs little
