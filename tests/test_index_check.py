"""Hyperprior files record the scale indices the encoder used (format version 2):
a decoder whose indices differ refuses the file instead of decoding garbage; version-1
files still decode; factorized files stay version 1."""
import zlib

import numpy as np
import pytest
import tensorflow as tf

from tfcae.io import bitstream
from tfcae.models import build_model
from tfcae.models.base import edge_pad
from tfcae.models.hyperprior import NUM_SCALES

from conftest import sample_image, tiered


def _model(architecture, seed=0):
  tf.keras.utils.set_random_seed(seed)
  model = build_model({"architecture": architecture, "num_filters": 8})
  if architecture != "factorized":
    # An untrained hyperprior sends z = 0 and picks scale 0 everywhere; scaled up, its
    # side information and scale indices vary over the image as a trained one's do.
    for layer, gain, shift in ((model.hyper_analysis_transform.layers[-1], 300., 0.),
                               (model.hyper_synthesis_transform.layers[-1], 8., 24.)):
      layer.kernel.assign(layer.kernel * gain)
      if layer.use_bias:
        layer.bias.assign(layer.bias + shift)
  model.prepare_for_compression()
  return model


@pytest.fixture(scope="module", params=tiered(["hyperprior", "meanscale"], "hyperprior"))
def hyperprior(request):
  return _model(request.param)


@pytest.fixture(scope="module")
def image():
  return sample_image()[:96, :130]  # not a multiple of the stride: padding is covered


def _scale_indices(model, image):
  """The encoder's integer scale indices, computed here in NumPy from the hyper-synthesis
  output: clipped to the table and truncated, as TFC's range coder takes them."""
  x = edge_pad(tf.cast(image, tf.float32)[None], *model.padded_shape(*image.shape[:2]))
  z = model.hyper_analysis_transform(abs(model.analysis_transform(x)))
  codec = model.latent_codec()
  _, indexes = codec.mean_and_indexes(codec.side_model.quantize(z))
  return np.clip(indexes.numpy(), 0, NUM_SCALES - 1).astype(np.int32)


def test_file_records_crc32_of_the_scale_indices(hyperprior, image):
  data = hyperprior.compress(tf.constant(image)).numpy()
  parsed = bitstream.parse(data, hyperprior.fingerprint.numpy())
  assert parsed.version == 2 and data[4] == 2
  indices = _scale_indices(hyperprior, image)
  assert len(np.unique(indices)) > 10  # many different scales in use
  assert parsed.index_check == zlib.crc32(indices.astype(np.uint8).tobytes())


def test_altered_check_is_refused_before_range_decoding(hyperprior, image):
  data = hyperprior.compress(tf.constant(image)).numpy()
  parsed = bitstream.parse(data)
  # A valid file (its CRC-32 recomputed) whose recorded indices are not the decoder's.
  forged = bitstream.pack(parsed.fingerprint, parsed.height, parsed.width, parsed.strings,
                          index_check=parsed.index_check ^ 1)
  with pytest.raises(tf.errors.InvalidArgumentError, match="platform whose arithmetic"):
    hyperprior.decompress(tf.constant(forged))


def test_decoder_with_other_arithmetic_refuses_the_file(hyperprior, image):
  """A decoder whose hyper-synthesis computes slightly different numbers (as another
  CPU's kernels do) picks other scale indices: it says so rather than decoding garbage."""
  data = hyperprior.compress(tf.constant(image)).numpy()
  other = _model(hyperprior.architecture)
  layer = other.hyper_synthesis_transform.layers[-1]
  layer.bias.assign(layer.bias + 0.37)  # moves some indices across an integer
  other.fingerprint.assign(hyperprior.fingerprint)
  assert not np.array_equal(_scale_indices(other, image), _scale_indices(hyperprior, image))
  with pytest.raises(tf.errors.InvalidArgumentError, match="platform whose arithmetic"):
    other.decompress(tf.constant(data))


def test_version_1_files_still_decode(hyperprior, image):
  data = hyperprior.compress(tf.constant(image)).numpy()
  parsed = bitstream.parse(data)
  old = bitstream.pack(parsed.fingerprint, parsed.height, parsed.width, parsed.strings)
  assert old[4] == 1 and len(old) == len(data) - 4
  np.testing.assert_array_equal(hyperprior.decompress(tf.constant(old)).numpy(),
                                hyperprior.decompress(tf.constant(data)).numpy())


@pytest.mark.slow
def test_host_side_coding_of_device_symbols_records_the_check(image):
  model = _model("hyperprior")
  x = edge_pad(tf.cast(image, tf.float32)[None], *model.padded_shape(*image.shape[:2]))
  symbols = tf.cast(tf.round(model.analysis_transform(x)), tf.int32)
  data = model.compress_symbols(symbols, *image.shape[:2]).numpy()
  assert data[4] == 2
  assert model.decompress(tf.constant(data)).shape == image.shape


def test_factorized_files_stay_version_1(image):
  model = _model("factorized")
  data = model.compress(tf.constant(image)).numpy()
  assert data[4] == 1 and bitstream.parse(data).index_check is None


@pytest.mark.slow  # fresh processes loading a SavedModel: ≈ 1 min
def test_the_kernel_switch_check_classifies_each_file_in_one_process(hyperprior, image,
                                                                     tmp_path):
  """tfcae.deploy.crossplatform decodes a list of files in one fresh process: a file
  whose index check differs is "refused", a damaged one an "error", and the files after
  either still decode; a decoder that gives no result in time is a "hang"."""
  from tfcae.deploy import crossplatform
  from tfcae.serving.export import export_model
  model_dir = str(tmp_path / "model")
  export_model(hyperprior, model_dir)
  data = hyperprior.compress(tf.constant(image)).numpy()
  parsed = bitstream.parse(data)
  files = {"good": data, "forged": bitstream.pack(
      parsed.fingerprint, parsed.height, parsed.width, parsed.strings,
      index_check=parsed.index_check ^ 1), "damaged": data[:len(data) // 2], "again": data}
  paths, outputs = [], []
  for name, content in files.items():
    (tmp_path / name).write_bytes(content)
    paths.append(str(tmp_path / name))
    outputs.append(str(tmp_path / f"{name}.npy"))
  results = crossplatform.decompress_all_under(model_dir, 1, paths, outputs)
  assert results[0] is None and results[3] is None, results
  assert results[1][0] == "refused" and "platform whose arithmetic" in results[1][1]
  assert results[2][0] == "error" and results[2][1], results[2]
  expected = hyperprior.decompress(tf.constant(data)).numpy()
  for i in (0, 3):
    np.testing.assert_array_equal(np.load(outputs[i]), expected)
  assert crossplatform.decompress_all_under(model_dir, 1, paths[:2], outputs[:2],
                                            timeout=0.01) == [("hang", "no result after 0.01 s")] * 2
