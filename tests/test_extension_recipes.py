"""The recipes of docs/design.md, each followed once: a new architecture, a new latent codec
and a new device target, each written here in one place and used by the rest of tfcae
without any other edit.

- The architecture ("tiny-gain") is one class registered in ARCHITECTURES (here by the
  fixture, as its decorator would, so other test modules see the shipped registry); it declares one
  more serving signature (an added input), and is exported, compressed and decompressed
  through tfcae.serving and converted to a TFLite encoder through the device seam, whose
  symbols host coding turns into the server's bytes.
- Its latent codec composes: tfcae's GainLatentCodec (a gain unit, the variable-rate
  model's) owns a FactorizedLatentCodec and codes g·y with it, so its layout, bounds and
  strings are the child's.
- The device target ("tf-encoder") is one class registered in DEVICE_TARGETS: the encoder
  as a SavedModel folder; host coding takes it as it takes TFLite's.
"""
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_compression as tfc

from tfcae import TfcaeError
from tfcae.deploy.targets import DEVICE_TARGETS, open_encoder
from tfcae.deploy.device import DeviceEncoder, DeviceTarget
from tfcae.deploy.hostcoding import HostCoder
from tfcae.io import bitstream
from tfcae.models import ARCHITECTURES, build_model
from tfcae.models.base import CompressionModel
from tfcae.models.latent_codecs import FactorizedLatentCodec, GainLatentCodec
from tfcae.serving import open_model
from tfcae.serving.codec import Codec, decompress_file
from tfcae.serving.export import export_model


# --- recipe: an architecture -----------------------------------------------------------
class TinyGainModel(CompressionModel):
  """Two stride-2 convolutions each side and a gain codec; one more signature."""

  architecture = "tiny-gain"
  stride = 4
  latent_codec_class = FactorizedLatentCodec  # the strings are the gain codec's child's
  SIGNATURES = dict(CompressionModel.SIGNATURES, latent_energy="energy")

  def __init__(self, num_filters=4, objective=None, **kwargs):
    super().__init__(objective=objective, **kwargs)
    self.num_filters = self.latent_channels = int(num_filters)
    conv = lambda f, name: tf.keras.layers.Conv2D(f, 3, strides=2, padding="same", name=name)
    deconv = lambda f, name: tf.keras.layers.Conv2DTranspose(f, 3, strides=2, padding="same",
                                                             name=name)
    self.analysis_transform = tf.keras.Sequential([
        tf.keras.layers.Rescaling(1 / 255.), conv(8, "conv_0"), conv(num_filters, "conv_1")],
        name="analysis")
    self.synthesis_transform = tf.keras.Sequential([
        deconv(8, "deconv_0"), deconv(3, "deconv_1"), tf.keras.layers.Rescaling(255.)],
        name="synthesis")
    self.prior = tfc.NoisyDeepFactorized(batch_shape=(self.latent_channels,))
    self.build((None, None, None, 3))

  def get_config(self):
    return {"architecture": self.architecture, "num_filters": self.num_filters}

  def encoder_layers(self):
    return list(self.analysis_transform.layers)

  def _make_entropy_models(self, compression):
    return (tfc.ContinuousBatchedEntropyModel(self.prior, coding_rank=3,
                                              compression=compression,
                                              bottleneck_dtype=tf.float32),)

  def latent_codec(self):
    (entropy_model,) = self.entropy_models()
    return GainLatentCodec(FactorizedLatentCodec(entropy_model, self.stride,
                                                 self.latent_channels),
                           gain=tf.constant(2.), inverse_gain=tf.constant(.5))

  # The added input: a signature with two inputs, declared above and nowhere else.
  @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image"),
                                tf.TensorSpec([], tf.float32, name="weight")])
  def latent_energy(self, image, weight):
    x = tf.cast(image, tf.float32)[None]
    x = tf.image.resize_with_crop_or_pad(x, *self.padded_shape(tf.shape(image)[0],
                                                               tf.shape(image)[1]))
    return weight * tf.reduce_mean(tf.square(self.encode(x)))


# --- recipe: a device target -----------------------------------------------------------
class SavedModelEncoder(DeviceEncoder):
  def __init__(self, path):
    self.module = tf.saved_model.load(os.fspath(path))

  @property
  def latent_channels(self):
    return -1

  def symbols(self, padded):
    return self.module.symbols(tf.constant(padded[None], tf.float32)).numpy()


class SavedModelTarget(DeviceTarget):
  """The encoder as a SavedModel folder (`*.tfenc`), run by TensorFlow."""

  name = "tf-encoder"
  suffix = ".tfenc"

  def convert(self, exported, output_path, **options):
    from tfcae.deploy import tflite
    model = exported.restore_keras()
    module = tf.Module()
    module.weights = list(model.analysis_transform.weights)
    encode = tflite.encoder_function(model)  # round(g·y − o), as the TFLite target's
    module.symbols = tf.function(lambda image: encode(image)["symbols"],
                                 input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
    tf.saved_model.save(module, output_path)
    return {"target": self.name}

  def load(self, encoder, num_threads=1):
    return SavedModelEncoder(encoder)


# --- the tests -------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def registered():
  """The two registrations (a plug-in's decorators), undone after this module's tests so
  that other modules see the registries as shipped."""
  ARCHITECTURES.register(settings=("num_filters",))(TinyGainModel)
  DEVICE_TARGETS.register(SavedModelTarget)
  yield
  ARCHITECTURES.unregister("tiny-gain")
  DEVICE_TARGETS.unregister("tf-encoder")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, registered):
  model = build_model({"architecture": "tiny-gain", "num_filters": 4})
  model.prepare_for_compression()
  folder = tmp_path_factory.mktemp("tiny") / "model"
  info = export_model(model, folder)
  return model, open_model(folder), info


def image(height=37, width=50, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_the_export_records_what_the_decoder_needs(exported):
  model, folder, info = exported
  assert info["string_layout"] == [{"table": "batched", "stride": 4, "coding": "channels"}]
  assert info["latent_codec"] == "GainLatentCodec"
  assert "latent_energy" in info["signatures"]
  assert folder.signature_inputs("latent_energy") == [("image", "uint8", [None, None, 3]),
                                                      ("weight", "float32", [])]
  # The added input works in the SavedModel alone.
  saved = folder.saved_model()
  energy = saved.latent_energy(tf.constant(image()), tf.constant(2., tf.float32))
  assert float(energy) == pytest.approx(float(model.latent_energy(image(), 2.)), rel=1e-5)


def test_compress_and_decompress_through_serving(exported, tmp_path):
  model, folder, _ = exported
  codec = Codec(folder)
  data = codec.compress(image())
  assert data == model.compress(tf.constant(image())).numpy()
  decoded = codec.decompress(data)
  assert decoded.shape == (37, 50, 3)
  np.testing.assert_array_equal(decoded, model.decompress(tf.constant(data)).numpy())
  # The Python checks read the recorded layout: a payload cut short is refused up front.
  stream = bitstream.parse(data)
  least = codec.min_payload_bytes(stream.height, stream.width)[0]
  assert least is not None and 0 < least <= len(stream.strings[0])
  short = bitstream.pack(stream.fingerprint, stream.height, stream.width,
                         [stream.strings[0][:least - 1]])
  with pytest.raises(TfcaeError, match="too short|needs at least"):
    codec.decompress(short)
  # The file tools take the model reference.
  path = tmp_path / "a.tfcae"
  path.write_bytes(data)
  stats = decompress_file(folder.path, str(path), str(tmp_path / "a.png"))
  assert (stats["height"], stats["width"]) == (37, 50)


def test_device_targets_convert_and_host_code_to_the_servers_bytes(exported, tmp_path):
  model, folder, _ = exported
  expected = model.compress(tf.constant(image())).numpy()
  for name, output in (("tflite", tmp_path / "enc.tflite"),
                       ("tf-encoder", tmp_path / "enc.tfenc")):
    DEVICE_TARGETS.get(name)().convert(folder, str(output))
    encoder = open_encoder(str(output))  # the file's suffix names the target
    assert HostCoder(encoder, folder).compress(image()) == expected, name
  with pytest.raises(TfcaeError, match="not a device encoder file"):
    open_encoder(str(tmp_path / "enc.onnx"))
