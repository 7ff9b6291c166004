"""Scale-hyperprior CAE: Ballé, Minnen, Singh, Hwang & Johnston, "Variational image
compression with a scale hyperprior", ICLR 2018 (TFC's models/bmshj2018.py).

Four 5×5 stride-2 convolutions each side with GDN; a hyper-analysis (3×3 s1, 5×5 s2,
5×5 s2) of |y| gives side information z, coded with a factorized prior; the
hyper-synthesis predicts, per latent element, the index of a Gaussian scale in a
log-spaced table, used by `tfc.LocationScaleIndexedEntropyModel`. Total stride 64.
"""
import tensorflow as tf
import tensorflow_compression as tfc

from tfcae.io import bitstream, safedecode
from tfcae.models.base import CompressionModel, batched_min_bytes, to_float32
from tfcae.models.integer import IntegerHyperSynthesis
from tfcae.models.registry import ARCHITECTURES
from tfcae.nn import layers

__all__ = ["analysis_transform", "synthesis_transform", "hyper_analysis_transform",
           "hyper_synthesis_transform", "HyperpriorModel", "MeanScaleHyperpriorModel"]

# Ballé et al. (2018): 64 scales log-spaced between 0.11 and 256.
NUM_SCALES, SCALE_MIN, SCALE_MAX = 64, .11, 256.


def _scale_fn(i):
  offset = tf.math.log(SCALE_MIN)
  factor = (tf.math.log(SCALE_MAX) - tf.math.log(SCALE_MIN)) / (NUM_SCALES - 1.)
  return tf.math.exp(offset + factor * i)


def analysis_transform(num_filters, latent_channels, kernel_constraint=None, gdn="simplified"):
  conv = lambda filters, name: tf.keras.layers.Conv2D(
      filters, 5, strides=2, padding="same", name=name, kernel_constraint=kernel_constraint)
  return tf.keras.Sequential([
      tf.keras.layers.Rescaling(1. / 255., name="scale"),
      conv(num_filters, "conv_0"), layers.gdn(gdn, "gdn_0"),
      conv(num_filters, "conv_1"), layers.gdn(gdn, "gdn_1"),
      conv(num_filters, "conv_2"), layers.gdn(gdn, "gdn_2"),
      conv(latent_channels, "conv_3"),
  ], name="analysis")


def synthesis_transform(num_filters, gdn="simplified"):
  deconv = lambda filters, name: tf.keras.layers.Conv2DTranspose(
      filters, 5, strides=2, padding="same", name=name)
  return tf.keras.Sequential([
      deconv(num_filters, "deconv_0"), layers.gdn(gdn, "igdn_0", inverse=True),
      deconv(num_filters, "deconv_1"), layers.gdn(gdn, "igdn_1", inverse=True),
      deconv(num_filters, "deconv_2"), layers.gdn(gdn, "igdn_2", inverse=True),
      deconv(3, "deconv_3"),
      tf.keras.layers.Rescaling(255., name="scale"),
  ], name="synthesis")


def hyper_analysis_transform(hyper_filters):
  return tf.keras.Sequential([
      tf.keras.layers.Conv2D(hyper_filters, 3, padding="same", activation="relu", name="conv_0"),
      tf.keras.layers.Conv2D(hyper_filters, 5, strides=2, padding="same", activation="relu",
                             name="conv_1"),
      tf.keras.layers.Conv2D(hyper_filters, 5, strides=2, padding="same", use_bias=False,
                             name="conv_2"),
  ], name="hyper_analysis")


def hyper_synthesis_transform(hyper_filters, latent_channels, outputs_per_latent=1):
  return tf.keras.Sequential([
      tf.keras.layers.Conv2DTranspose(hyper_filters, 5, strides=2, padding="same",
                                      activation="relu", name="deconv_0"),
      tf.keras.layers.Conv2DTranspose(hyper_filters, 5, strides=2, padding="same",
                                      activation="relu", name="deconv_1"),
      tf.keras.layers.Conv2DTranspose(latent_channels * outputs_per_latent, 3, padding="same",
                                      name="deconv_2"),
  ], name="hyper_synthesis")


@ARCHITECTURES.register(settings=("num_filters", "latent_channels", "gdn", "hyper_filters",
                                  "integer_hyper_synthesis"))
class HyperpriorModel(CompressionModel):
  """Ballé et al. (2018) scale hyperprior."""

  architecture = "hyperprior"
  stride = 64
  num_strings = 2  # latents y, then side information z

  # Hyper-synthesis outputs per latent element: a scale index (1), or a mean and a scale
  # index (2, MeanScaleHyperpriorModel).
  outputs_per_latent = 1

  def __init__(self, num_filters=128, latent_channels=None, hyper_filters=None,
               gdn="simplified", integer_hyper_synthesis=False, objective=None, **kwargs):
    super().__init__(objective=objective, **kwargs)
    self.num_filters = int(num_filters)
    self.latent_channels = int(latent_channels or num_filters)
    self.hyper_filters = int(hyper_filters or num_filters)
    self.gdn = gdn
    self.integer_hyper_synthesis = bool(integer_hyper_synthesis)
    self.analysis_transform = analysis_transform(self.num_filters, self.latent_channels,
                                                 gdn=gdn)
    self.synthesis_transform = synthesis_transform(self.num_filters, gdn=gdn)
    self.hyper_analysis_transform = hyper_analysis_transform(self.hyper_filters)
    if self.integer_hyper_synthesis:
      if self.outputs_per_latent != 1:
        raise ValueError(f"{self.architecture}: the integer hyper-synthesis predicts scale "
                         "indices only; use --model=hyperprior")
      # Ballé et al. (2019): indices every platform computes identically (issue 16).
      self.hyper_synthesis_transform = IntegerHyperSynthesis(
          self.hyper_filters, self.latent_channels, NUM_SCALES)
      self.hyper_synthesis_transform.build((None, None, None, self.hyper_filters))
    else:
      self.hyper_synthesis_transform = hyper_synthesis_transform(
          self.hyper_filters, self.latent_channels, self.outputs_per_latent)
    self.hyperprior = tfc.NoisyDeepFactorized(batch_shape=(self.hyper_filters,))
    self.build((None, None, None, 3))

  def get_config(self):
    config = {"architecture": self.architecture, "num_filters": self.num_filters,
              "latent_channels": self.latent_channels, "hyper_filters": self.hyper_filters}
    if self.integer_hyper_synthesis:  # listed only when set: older fingerprints hold
      config["integer_hyper_synthesis"] = True
    return self._with_gdn(config)

  def encoder_layers(self):
    return list(self.analysis_transform.layers) + list(self.hyper_analysis_transform.layers)

  def _make_entropy_models(self, compression):
    # float32 whatever the Keras policy (--precision): the rate is computed in float32.
    latent = tfc.LocationScaleIndexedEntropyModel(
        tfc.NoisyNormal, NUM_SCALES, _scale_fn, coding_rank=3, compression=compression,
        bottleneck_dtype=tf.float32)
    side = tfc.ContinuousBatchedEntropyModel(self.hyperprior, coding_rank=3,
                                             compression=compression,
                                             bottleneck_dtype=tf.float32)
    return latent, side

  def forward(self, x, training):
    latent_model, side_model = self.entropy_models()
    y = to_float32(self.analysis_transform(x))
    z = to_float32(self.hyper_analysis_transform(abs(y)))
    z_hat, side_bits = side_model(z, training=training)
    mixed = training and self.decoder_quantization == "mixed"
    if mixed or self.integer_hyper_synthesis:
      # Minnen & Singh (2020): rate on noise, the decoders on rounded values; an integer
      # hyper-synthesis sees the integer symbols it will see in coding.
      z_hat = side_model.quantize(z)
    mean, indexes = self._mean_and_indexes(z_hat, side_model)
    mean, indexes = (None if mean is None else to_float32(mean)), to_float32(indexes)
    y_hat, bits = latent_model(y, indexes, loc=mean, training=training)
    if mixed:
      y_hat = latent_model.quantize(y, loc=mean)
    x_hat = self.synthesis_transform(y_hat)
    return {"x_hat": x_hat, "bits": bits + side_bits, "y": y, "y_hat": y_hat, "z": z,
            "side_bits": side_bits}

  def _compress_latents(self, x):
    return self.code_latents(self.analysis_transform(x))

  def code_latents(self, y):
    """Latents y -> ([y string, z string], index check)."""
    latent_model, side_model = self.entropy_models()
    z = self.hyper_analysis_transform(abs(y))
    mean, indexes = self._mean_and_indexes(side_model.quantize(z), side_model, exact=True)
    strings = [latent_model.compress(y, indexes, loc=mean)[0], side_model.compress(z)[0]]
    return strings, self.index_check(indexes)

  def index_check(self, indexes):
    """CRC-32 of the scale-table index of every latent element, one byte each: the
    integers the range coder uses (the entropy model's own clipping and truncation of
    the hyper-synthesis output), which the decoder must recompute identically."""
    latent_model = self.entropy_models()[0]
    flat = latent_model._flatten_indexes(latent_model._normalize_indexes(indexes))
    return bitstream.crc32_bytes_tf(tf.reshape(flat, [-1]))  # NUM_SCALES ≤ 256: one byte

  def _mean_and_indexes(self, z_hat, side_model, exact=False):
    """(mean or None, scale indexes) of the latents' Gaussians, from the side info ẑ.

    exact: for coding. An integer hyper-synthesis then runs on its frozen integers
    (tfcae.models.integer); in training and estimation it runs straight-through."""
    if not self.integer_hyper_synthesis:
      return None, self.hyper_synthesis_transform(z_hat)
    offset = self._side_offset(side_model)
    ihs = self.hyper_synthesis_transform
    return None, (ihs.exact if exact else ihs)(z_hat - offset, offset)

  def _side_offset(self, side_model):
    """The side prior's quantization offsets o (ẑ = k + o); TFC gives None for zeros."""
    offset = side_model.quantization_offset
    return tf.zeros([self.hyper_filters]) if offset is None else offset

  def prepare_for_compression(self):
    if self.integer_hyper_synthesis:
      self.hyper_synthesis_transform.freeze()  # before the fingerprint hashes them
    super().prepare_for_compression()

  def calibrate(self, x):
    if self.integer_hyper_synthesis:
      side_model = self.entropy_models()[1]
      z = self.hyper_analysis_transform(abs(self.analysis_transform(x)))
      offset = self._side_offset(side_model)
      self.hyper_synthesis_transform.calibrate(side_model.quantize(z) - offset, offset)

  def latent_offset(self):
    # The indexed (Gaussian) model codes round(y − loc) with loc = 0: integer offsets.
    return tf.zeros([self.latent_channels])

  def _compress_symbols(self, symbols):
    latent_model, side_model = self.entropy_models()
    y_hat = tf.cast(symbols, tf.float32)
    # The device sends only ŷ, so the host's hyper-analysis sees |ŷ| instead of |y|: z
    # (the side information) can differ from the server path's, but the file is valid and
    # decodes to the same ŷ, since the decoder derives the scales from ẑ alone.
    z = self.hyper_analysis_transform(abs(y_hat))
    _, indexes = self._mean_and_indexes(side_model.quantize(z), side_model, exact=True)
    strings = [latent_model.compress(y_hat, indexes)[0], side_model.compress(z)[0]]
    return strings, self.index_check(indexes)

  def _decompress_latents(self, strings, padded_shape,
                          index_check=bitstream.NO_INDEX_CHECK):
    latent_model, side_model = self.entropy_models()
    z_shape = [padded_shape[0] // self.stride, padded_shape[1] // self.stride]
    # TFC's decoders fed so that they cannot hang, and checked (issue 18; the same values).
    z_hat = safedecode.decompress_batched(side_model, strings[1], z_shape)
    mean, indexes = self._mean_and_indexes(z_hat, side_model, exact=True)
    # Before range decoding: with one index decided differently from the encoder's, the
    # decoder would desynchronise and write garbage (or not terminate). Version-1 files
    # carry no check and decode as before.
    recorded = tf.cast(index_check, tf.int64)
    same = tf.logical_or(tf.equal(recorded, bitstream.NO_INDEX_CHECK),
                         tf.equal(self.index_check(indexes), recorded))
    # With the indexes known, the bound on the latents' string is exact per element.
    flat = latent_model._flatten_indexes(latent_model._normalize_indexes(indexes))
    bits = tf.reduce_sum(tf.gather(safedecode.row_min_bits_tf(latent_model.cdf),
                                   tf.reshape(flat, [-1])))
    long_enough = (tf.cast(tf.strings.length(strings[0]), tf.int64) >=
                   safedecode.min_payload_bytes(bits))
    checks = bitstream.require_in_order([(same, bitstream.PLATFORM_MISMATCH),
                                         (long_enough, safedecode.TOO_SHORT)])
    with tf.control_dependencies(checks):
      y_hat = safedecode.decompress_indexed(latent_model, strings[0], indexes, loc=mean)
    return self.synthesis_transform(y_hat)

  def min_payload_bytes(self, padded_shape):
    """y: every element at least the cheapest scale's cost (the indexes are not known
    before z is decoded); z: its channels' rows."""
    latent_model, side_model = self.entropy_models()
    y_stride = self.stride // 4  # the hyper-analysis has two stride-2 convolutions
    elements = (tf.cast(padded_shape[0] // y_stride, tf.float64) *
                tf.cast(padded_shape[1] // y_stride, tf.float64) * self.latent_channels)
    y_bits = elements * tf.reduce_min(safedecode.row_min_bits_tf(latent_model.cdf))
    return [safedecode.min_payload_bytes(y_bits),
            batched_min_bytes(side_model, padded_shape, self.stride)]


@ARCHITECTURES.register(settings=("num_filters", "latent_channels", "gdn", "hyper_filters"))
class MeanScaleHyperpriorModel(HyperpriorModel):
  """Minnen, Ballé & Toderici (2018), "Joint autoregressive and hierarchical priors for
  learned image compression", without the context model: the hyper-synthesis predicts a
  mean and a scale per latent element, and the Gaussian is coded around the mean
  (`tfc.LocationScaleIndexedEntropyModel`'s loc). Same transforms as the scale
  hyperprior otherwise."""

  architecture = "meanscale"
  outputs_per_latent = 2

  def _mean_and_indexes(self, z_hat, side_model, exact=False):
    params = self.hyper_synthesis_transform(z_hat)
    mean, indexes = tf.split(params, 2, axis=-1)
    return mean, indexes

  def latent_offset(self):
    raise NotImplementedError("meanscale has no constant latent offset: the mean of each "
                              "element comes from the side information")

  def _compress_symbols(self, symbols):
    raise NotImplementedError(
        "meanscale codes round(y − mean) with a mean predicted from the side information, "
        "so a device cannot output its symbols without the hyper-transforms; export the "
        "whole encoder instead")
