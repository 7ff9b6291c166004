"""The latent-codec seam (tfcae.models.latent_codecs): every architecture codes
through its codec, the codec's strings are the model's file, device symbols round-trip,
and the deployment paths (TFLite host coding, int8 fine-tuning) work for every
architecture.

Untrained models with random weights: coding does not need training.
"""
import numpy as np
import pytest
import tensorflow as tf

from conftest import SAMPLE_TRAIN, sample_image, tiered
from tfcae import TfcaeError
from tfcae.deploy import qat, tflite
from tfcae.io import bitstream
from tfcae.models import ARCHITECTURES, build_model, edge_pad
from tfcae.deploy.hostcoding import pad_to_stride

CONFIGS = {
    "factorized": {"num_filters": 8},
    "hyperprior": {"num_filters": 8},
    "meanscale": {"num_filters": 8},
    "caep": {"num_filters": 8, "latent_channels": 4, "caep_blocks": 1},
}


def model_of(architecture):
  tf.keras.utils.set_random_seed(5)
  model = build_model({"architecture": architecture, **CONFIGS[architecture]})
  model.prepare_for_compression()
  return model


def image():
  return sample_image()[:100, :140]  # not a multiple of any stride: padding is covered


def padded(model, img):
  x = tf.cast(img, tf.float32)[None]
  return edge_pad(x, *model.padded_shape(*img.shape[:2]))


def test_every_architecture_of_one_rate_has_a_config_here():
  # A variable-rate model codes at a quality (tests/test_variable_rate.py).
  assert set(CONFIGS) == {name for name, cls in ARCHITECTURES.items()
                          if not getattr(cls, "variable_rate", False)}


@pytest.mark.parametrize("architecture", tiered(sorted(CONFIGS), "factorized"))
def test_the_codec_strings_are_the_model_file(architecture):
  """model.compress = header + codec.compress(encode(x)); decompress inverts it to
  decode(ŷ), and the codec's ŷ at inference is the forward pass's."""
  model = model_of(architecture)
  img = image()
  codec = model.latent_codec()
  y = model.encode(padded(model, img))
  strings, index_check = codec.compress(y)
  data = model.compress(tf.constant(img)).numpy()
  stream = bitstream.parse(data, model.fingerprint.numpy())
  assert len(stream.strings) == model.num_strings == (2 if index_check is not None else 1)
  assert list(stream.strings) == [s.numpy() for s in strings]
  assert (index_check is None) == (architecture in ("factorized", "caep"))
  y_hat = codec.decompress(strings, padded(model, img).shape[1:3],
                           bitstream.NO_INDEX_CHECK if index_check is None else index_check)
  np.testing.assert_allclose(y_hat.numpy(), codec.forward(y, training=False)["y_hat"].numpy(),
                             atol=1e-4)
  expected = tf.saturate_cast(tf.round(model.decode(y_hat)), tf.uint8)[0, :100, :140]
  np.testing.assert_array_equal(model.decompress(tf.constant(data)).numpy(), expected.numpy())
  least = [int(n) for n in codec.min_payload_bytes(padded(model, img).shape[1:3])]
  # A lower bound on each string (0 where the cheapest symbols cost under a byte: an
  # untrained hyperprior's y), that the real file meets.
  assert all(0 <= n <= len(s) for n, s in zip(least, stream.strings)) and sum(least) > 0


@pytest.mark.parametrize("architecture", tiered(sorted(CONFIGS), "factorized"))
def test_device_symbols_round_trip(architecture):
  """What a device encoder sends, round(y − o), becomes a file that decodes to exactly
  ŷ = symbols + o (mean-scale: round(ŷ − μ) + μ, within half a step, since the device has
  no μ); with one string (fixed tables) it is the server's file, byte for byte."""
  model = model_of(architecture)
  img = image()
  codec = model.latent_codec()
  y = model.encode(padded(model, img))
  symbols = tf.cast(tf.round(y - codec.offset()), tf.int32)
  data = model.compress_symbols(symbols, tf.constant(100), tf.constant(140)).numpy()
  stream = bitstream.parse(data, model.fingerprint.numpy())
  y_hat = codec.decompress([tf.constant(s) for s in stream.strings], padded(model, img).shape[1:3],
                           stream.index_check)
  sent = symbols.numpy() + codec.offset().numpy()
  if architecture == "meanscale":
    error = np.abs(y_hat.numpy() - sent)
    assert 0 < error.max() <= 0.5 + 1e-4  # re-centred on μ: near ŷ, not ŷ
  else:
    np.testing.assert_allclose(y_hat.numpy(), sent, atol=1e-4)
  if codec.num_strings == 1:
    assert data == model.compress(tf.constant(img)).numpy()


@pytest.mark.slow
def test_meanscale_exports_to_tflite_and_int8_and_codes_on_the_host(tmp_path):
  """The mean-scale hyperprior used to refuse device symbols (its means come from the side
  information): its device runs the analysis transform alone, like the scale
  hyperprior's, and the host re-centres. Float and int8 flatbuffers, host coding from
  the SavedModel alone, and a file the server decodes."""
  from tfcae.deploy.hostcoding import HostCoder
  from tfcae.serving.export import export_model
  model = model_of("meanscale")
  assert "compress_symbols" in export_model(model, tmp_path / "m")["signatures"]
  img = image()
  for flatbuffer in (tflite.convert(model, "none"),
                     tflite.convert(model, "int8", representative())):
    data = HostCoder(tflite.TFLiteEncoder(flatbuffer), tmp_path / "m").compress(img)
    assert bitstream.parse(data, model.fingerprint.numpy()).height == 100
    assert model.decompress(tf.constant(data)).shape == img.shape


@pytest.mark.slow
def test_caep_exports_to_a_float_tflite_encoder():
  """CAE-P had no device path (no latent offset, no symbol coding): its encoder converts
  to builtin ops, the flatbuffer's symbols are round(y), and the host writes the server's
  file from them."""
  model = model_of("caep")
  encoder, reduced = tflite.device_encoder(model)
  assert not reduced and encoder is model.analysis_transform  # residual blocks: as they are
  device = tflite.TFLiteEncoder(tflite.convert(model, "none", None, encoder))
  img = image()
  x = pad_to_stride(img, model.stride)
  symbols = device.symbols(x)
  expected = np.round(model.encode(tf.constant(x[None], tf.float32)).numpy()).astype(np.int32)
  assert np.mean(symbols == expected) >= 0.99 and np.abs(symbols - expected).max() <= 1
  data = model.compress_symbols(tf.constant(symbols), tf.constant(100), tf.constant(140))
  assert model.decompress(data).shape == img.shape


@pytest.mark.slow
def test_caep_int8_unrolls_its_residual_blocks_with_batchnorm_folded():
  """TF-MOT has no rule for CAE-P's bottleneck blocks nor its PReLUs: the int8 encoder
  unrolls each block (BatchNorm folded into its convolutions, an int8 Add for the skip),
  its float twin computes the model's latents, and the flatbuffer's symbols are the
  Keras reference's."""
  model = model_of("caep")
  rng = np.random.default_rng(0)
  for layer in model.analysis_transform.submodules:  # inference statistics worth folding
    if isinstance(layer, tf.keras.layers.BatchNormalization):
      c = layer.gamma.shape[0]
      for variable, value in ((layer.gamma, rng.uniform(.5, 1.5, c)),
                              (layer.beta, rng.normal(0, .1, c)),
                              (layer.moving_mean, rng.normal(0, .1, c)),
                              (layer.moving_variance, rng.uniform(.5, 2., c))):
        variable.assign(value.astype(np.float32))
  x = pad_to_stride(image(), model.stride)
  pixels = tf.constant(x[None], tf.float32)
  integer = tflite.int8_encoder(model, representative())
  floats = integer.probe(pixels * integer.input_scale)
  assert any(n.endswith("_add") for n in floats) and not any("bn" in n for n in floats)
  np.testing.assert_allclose(floats["quant_conv_5"].numpy(), model.encode(pixels).numpy(),
                             atol=1e-3)  # the last layer's output: y − o, o = 0
  device = tflite.TFLiteEncoder(tflite.convert_integer(integer))
  symbols = device.symbols(x)
  reference = integer.symbols(pixels).numpy()
  assert np.mean(symbols == reference) >= 0.99 and np.abs(symbols - reference).max() <= 1
  assert "PRELU" in tflite.op_names(tflite.convert_integer(integer))
  data = model.compress_symbols(tf.constant(symbols), tf.constant(100), tf.constant(140))
  assert model.decompress(data).shape == image().shape


def representative():
  import os
  paths = [os.path.join(SAMPLE_TRAIN, f) for f in sorted(os.listdir(SAMPLE_TRAIN))[:4]]
  return tflite.representative_crops(paths[:2], crop=64, per_image=1)


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["hyperprior", "meanscale"])
def test_hyperprior_int8_encoder_fine_tunes_through_its_codec(architecture):
  """Quantization-aware fine-tuning used to be factorized only: through the codec, a
  hyperprior's int8 encoder trains on what its host codes (side information from ŷ),
  its float weights move, the decoder's do not, and the result still writes files."""
  import os
  model = model_of(architecture)
  integer = tflite.int8_encoder(model, representative())
  before = [v.numpy().copy() for v in integer.quantized.trainable_variables]
  fixed = [v.numpy().copy() for v in model.synthesis_transform.trainable_variables +
           model.hyper_analysis_transform.trainable_variables]
  files = [os.path.join(SAMPLE_TRAIN, f) for f in sorted(os.listdir(SAMPLE_TRAIN))[:4]]
  logs = qat.fine_tune(integer, model, files, steps=2, lmbda=0.01, learning_rate=1e-3,
                       patch_size=64, batch_size=1, verbose=0)
  assert np.isfinite(logs["loss"]) and logs["bpp"] > 0
  assert any(not np.array_equal(b, a.numpy())
             for b, a in zip(before, integer.quantized.trainable_variables))
  for value, variable in zip(fixed, model.synthesis_transform.trainable_variables +
                             model.hyper_analysis_transform.trainable_variables):
    np.testing.assert_array_equal(value, variable.numpy())
  x = pad_to_stride(image(), model.stride)
  symbols = integer.symbols(tf.constant(x[None], tf.float32))
  data = model.compress_symbols(tf.cast(symbols, tf.int32), tf.constant(100), tf.constant(140))
  assert model.decompress(data).shape == image().shape


@pytest.mark.slow
def test_host_coding_from_the_savedmodel_alone(tmp_path):
  """The export carries a compress_symbols signature where the codec takes symbols: the
  host codes a TFLite encoder's output with the SavedModel alone (no checkpoint here), to
  the server's bytes; an export without the signature (older) falls back to restoring the
  Keras model from the SavedModel's variables, with the same bytes."""
  import json
  import os
  from tfcae.deploy.hostcoding import HostCoder
  from tfcae.serving import ExportedModel
  from tfcae.serving.export import export_model
  model = model_of("factorized")
  info = export_model(model, tmp_path / "m")
  assert "compress_symbols" in info["signatures"]
  flatbuffer = tflite.convert(model, "none")
  img = image()
  expected = model.compress(tf.constant(img)).numpy()
  assert HostCoder(tflite.TFLiteEncoder(flatbuffer), tmp_path / "m").compress(img) == expected
  path = ExportedModel(tmp_path / "m").export_info_path
  with open(path) as f:
    old = json.load(f)
  old["signatures"].remove("compress_symbols")
  with open(path, "w") as f:
    json.dump(old, f)
  assert HostCoder(tflite.TFLiteEncoder(flatbuffer),
                   os.fspath(tmp_path / "m")).compress(img) == expected
