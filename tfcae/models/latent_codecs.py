"""Latent codecs: the seam between a model's transforms and its entropy coding (issue 15).

As in CompressAI's latent codecs, a compression model is three parts:

    y = model.encode(x)             the analysis transform (the sender's network)
    codec = model.latent_codec()    y -> (ŷ, bits) in training, y -> strings -> ŷ in coding
    x̂ = model.decode(ŷ)             the synthesis transform (the receiver's network)

A codec is a view, built on each call from the model's entropy models and modules (cheap,
as TFC's bls2017 rebuilds its entropy model on each call): the priors and hyper-transforms
stay attributes of the model, so the checkpoints of older runs (keyed on attribute paths)
and their fingerprints (which hash the variables' names) are unchanged. Everything that
codes latents goes through a codec: the model's `compress`/`decompress`, the reduced
encoder (tfcae.deploy.reduction), the host side of a device encoder (`compress_symbols`,
tfcae.deploy.tflite), quantization-aware fine-tuning (tfcae.deploy.qat).

Interface (latents are float32 [B, h, w, C]; coding works on B = 1):

  forward(y, training, mixed)            -> {"y_hat", "bits" [B], ...}
  compress(y)                            -> (list of scalar strings, index check or None)
  offset()                               -> o [C]: a device encoder sends round(y − o)
  compress_symbols(symbols)              -> what compress returns, from the int32 symbols
  decompress(strings, padded_shape, index_check) -> ŷ
  min_payload_bytes(padded_shape)        -> the fewest bytes each string can have (issue 18)

The index check (file format version 2, tfcae.io.bitstream) is the CRC-32 of the
coding-table indices of a codec whose decoder recomputes them (a hyperprior); None when
the tables are fixed (factorized), and the file is then version 1.
"""
import tensorflow as tf

from tfcae.io import bitstream, safedecode
from tfcae.nn.quantizers import stochastic_round

__all__ = ["batched_min_bytes", "LatentCodec", "FactorizedLatentCodec",
           "StochasticRoundingLatentCodec", "HyperpriorLatentCodec"]


def batched_min_bytes(entropy_model, padded_shape, stride):
  """Fewest bytes of a ContinuousBatchedEntropyModel's string for a padded image: every
  channel's cheapest symbol at each of its (H/stride)·(W/stride) positions."""
  positions = (tf.cast(padded_shape[0] // stride, tf.float64) *
               tf.cast(padded_shape[1] // stride, tf.float64))
  return safedecode.min_payload_bytes(
      positions * tf.reduce_sum(safedecode.row_min_bits_tf(entropy_model.cdf)))


def _zeros_if_none(offset, channels):
  # TFC gives None for an all-zero offset (no heuristic, or an indexed model).
  return tf.zeros([channels]) if offset is None else offset


class LatentCodec:
  """Base class; see the module docstring. `stride`: the down-sampling of the latents y."""

  num_strings = 1

  def __init__(self, stride, channels):
    self.stride = int(stride)
    self.channels = int(channels)

  def latent_shape(self, padded_shape, stride=None):
    stride = stride or self.stride
    return [padded_shape[0] // stride, padded_shape[1] // stride]

  def forward(self, y, training, mixed=False):
    raise NotImplementedError

  def compress(self, y):
    raise NotImplementedError

  def offset(self):
    raise NotImplementedError

  def compress_symbols(self, symbols):
    raise NotImplementedError

  def decompress(self, strings, padded_shape, index_check=bitstream.NO_INDEX_CHECK):
    raise NotImplementedError

  def min_payload_bytes(self, padded_shape):
    raise NotImplementedError


class FactorizedLatentCodec(LatentCodec):
  """One string: y under a fixed, factorized prior (Ballé et al. 2017), coded per channel
  by TFC's ContinuousBatchedEntropyModel (additive uniform noise in training)."""

  def __init__(self, entropy_model, stride, channels):
    super().__init__(stride, channels)
    self.entropy_model = entropy_model

  def forward(self, y, training, mixed=False):
    y_hat, bits = self.entropy_model(y, training=training)
    if mixed:
      # Minnen & Singh (2020): the rate on noise, the decoder on straight-through rounding.
      y_hat = self.entropy_model.quantize(y)
    return {"y_hat": y_hat, "bits": bits}

  def compress(self, y):
    return [self.entropy_model.compress(y)[0]], None

  def offset(self):
    # TFC's median heuristic (per channel) unless the model was built without it.
    return _zeros_if_none(self.entropy_model.quantization_offset, self.channels)

  def compress_symbols(self, symbols):
    # compress() quantises round(y − o) again: round((k + o) − o) = k exactly (the float
    # error of the round trip is ≪ ½), so these are the device's symbols, bit for bit.
    return self.compress(tf.cast(symbols, tf.float32) + self.offset())

  def decompress(self, strings, padded_shape, index_check=bitstream.NO_INDEX_CHECK):
    # TFC's decoder fed so that it cannot hang, and checked (issue 18; the same values).
    return safedecode.decompress_batched(self.entropy_model, strings[0],
                                         self.latent_shape(padded_shape))

  def min_payload_bytes(self, padded_shape):
    return [batched_min_bytes(self.entropy_model, padded_shape, self.stride)]


class StochasticRoundingLatentCodec(FactorizedLatentCodec):
  """CAE-P's code (Zhao & Liao): ŷ is y stochastically rounded (Theis et al. 2017,
  tfcae.nn.quantizers), and the factorized prior is fitted to y beside it, through
  stop_gradient: the rate term trains the prior only (a noisy upper bound in training, the
  information of round(y) = ŷ at inference). Coding is the factorized codec's, with the
  prior built without the offset heuristic (symbols = round(y))."""

  def forward(self, y, training, mixed=False):
    y_hat = stochastic_round(y, training)
    _, bits = self.entropy_model(tf.stop_gradient(y), training=training)
    return {"y_hat": y_hat, "bits": bits}


class HyperpriorLatentCodec(LatentCodec):
  """Two strings: y under Gaussians whose scales (and, with `mean`, means: Minnen et al.
  2018 without the context model) the hyper-synthesis predicts from the side information
  z = h_a(|y|), which is coded under a factorized prior (Ballé et al. 2018).

  integer: the hyper-synthesis is tfcae.models.integer's (Ballé et al. 2019), run on its
  frozen integers in coding, so that every platform derives the same table indices.
  """

  num_strings = 2  # latents y, then side information z

  def __init__(self, latent_model, side_model, hyper_analysis, hyper_synthesis, stride,
               channels, side_channels, integer=False, mean=False):
    super().__init__(stride, channels)
    self.latent_model, self.side_model = latent_model, side_model
    self.hyper_analysis, self.hyper_synthesis = hyper_analysis, hyper_synthesis
    self.side_stride = self.stride * 4  # the hyper-analysis has two stride-2 convolutions
    self.side_channels = int(side_channels)
    self.integer, self.mean = bool(integer), bool(mean)

  def side_offset(self):
    """The side prior's quantization offsets o (ẑ = k + o)."""
    return _zeros_if_none(self.side_model.quantization_offset, self.side_channels)

  def mean_and_indexes(self, z_hat, exact=False):
    """(mean or None, scale indexes) of the latents' Gaussians, from the side info ẑ.

    exact: for coding. An integer hyper-synthesis then runs on its frozen integers; in
    training and estimation it runs straight-through."""
    if self.integer:
      offset = self.side_offset()
      ihs = self.hyper_synthesis
      return None, (ihs.exact if exact else ihs)(z_hat - offset, offset)
    params = self.hyper_synthesis(z_hat)
    if not self.mean:
      return None, params
    return tuple(tf.split(params, 2, axis=-1))

  def _float_params(self, z_hat, exact=False):
    mean, indexes = self.mean_and_indexes(z_hat, exact)
    # Transforms under a mixed-precision policy compute in bf16/fp16; TFC's models in float32.
    return (None if mean is None else tf.cast(mean, tf.float32)), tf.cast(indexes, tf.float32)

  def forward(self, y, training, mixed=False):
    z = tf.cast(self.hyper_analysis(abs(y)), tf.float32)
    z_hat, side_bits = self.side_model(z, training=training)
    if mixed or self.integer:
      # Minnen & Singh (2020): rate on noise, the decoders on rounded values; an integer
      # hyper-synthesis sees the integer symbols it will see in coding.
      z_hat = self.side_model.quantize(z)
    mean, indexes = self._float_params(z_hat)
    y_hat, bits = self.latent_model(y, indexes, loc=mean, training=training)
    if mixed:
      y_hat = self.latent_model.quantize(y, loc=mean)
    return {"y_hat": y_hat, "bits": bits + side_bits, "z": z, "side_bits": side_bits}

  def index_check(self, indexes):
    """CRC-32 of the scale-table index of every latent element, one byte each: the
    integers the range coder uses (the entropy model's own clipping and truncation of
    the hyper-synthesis output), which the decoder must recompute identically."""
    return bitstream.crc32_bytes_tf(tf.reshape(self._table_indexes(indexes), [-1]))

  def _table_indexes(self, indexes):
    model = self.latent_model
    return model._flatten_indexes(model._normalize_indexes(indexes))  # NUM_SCALES ≤ 256

  def _code(self, y, z):
    mean, indexes = self._float_params(self.side_model.quantize(z), exact=True)
    strings = [self.latent_model.compress(y, indexes, loc=mean)[0],
               self.side_model.compress(z)[0]]
    return strings, self.index_check(indexes)

  def compress(self, y):
    return self._code(y, self.hyper_analysis(abs(y)))

  def offset(self):
    # The device sends round(y): the scale hyperprior codes round(y − loc) with loc = 0,
    # so those are its symbols; the mean-scale one re-centres them (compress_symbols).
    return tf.zeros([self.channels])

  def compress_symbols(self, symbols):
    y_hat = tf.cast(symbols, tf.float32)
    # The device sends only ŷ, so the host's hyper-analysis sees |ŷ| instead of |y|: z
    # (the side information) can differ from the server path's, but the file is valid and
    # decodes to the same ŷ, since the decoder derives the scales from ẑ alone.
    # Mean-scale: the means come from ẑ, which the device does not have, so the host
    # codes round(ŷ − μ) and the decoder gets round(ŷ − μ) + μ, within 0.5 of ŷ: a second
    # rounding (latent error variance 1/6 instead of 1/12), the price of a device that
    # runs only the analysis transform (docs/results.md measures it).
    return self._code(y_hat, self.hyper_analysis(abs(y_hat)))

  def decompress(self, strings, padded_shape, index_check=bitstream.NO_INDEX_CHECK):
    # TFC's decoders fed so that they cannot hang, and checked (issue 18; the same values).
    z_hat = safedecode.decompress_batched(self.side_model, strings[1],
                                          self.latent_shape(padded_shape, self.side_stride))
    mean, indexes = self._float_params(z_hat, exact=True)
    # Before range decoding: with one index decided differently from the encoder's, the
    # decoder would desynchronise and write garbage (or not terminate). Version-1 files
    # carry no check and decode as before.
    recorded = tf.cast(index_check, tf.int64)
    same = tf.logical_or(tf.equal(recorded, bitstream.NO_INDEX_CHECK),
                         tf.equal(self.index_check(indexes), recorded))
    # With the indexes known, the bound on the latents' string is exact per element.
    bits = tf.reduce_sum(tf.gather(safedecode.row_min_bits_tf(self.latent_model.cdf),
                                   tf.reshape(self._table_indexes(indexes), [-1])))
    long_enough = (tf.cast(tf.strings.length(strings[0]), tf.int64) >=
                   safedecode.min_payload_bytes(bits))
    checks = bitstream.require_in_order([(same, bitstream.PLATFORM_MISMATCH),
                                         (long_enough, safedecode.TOO_SHORT)])
    with tf.control_dependencies(checks):
      return safedecode.decompress_indexed(self.latent_model, strings[0], indexes, loc=mean)

  def min_payload_bytes(self, padded_shape):
    """y: every element at least the cheapest scale's cost (the indexes are not known
    before z is decoded); z: its channels' rows."""
    h, w = self.latent_shape(padded_shape)
    elements = tf.cast(h, tf.float64) * tf.cast(w, tf.float64) * self.channels
    y_bits = elements * tf.reduce_min(safedecode.row_min_bits_tf(self.latent_model.cdf))
    return [safedecode.min_payload_bytes(y_bits),
            batched_min_bytes(self.side_model, padded_shape, self.side_stride)]
