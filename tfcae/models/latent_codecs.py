"""Latent codecs: the seam between a model's transforms and its entropy coding.

As in CompressAI's latent codecs, a compression model is three parts:

    y = model.encode(x)             the analysis transform (the sender's network)
    codec = model.latent_codec()    y -> (ŷ, bits) in training, y -> strings -> ŷ in coding
    x̂ = model.decode(ŷ)             the synthesis transform (the receiver's network)

A codec is built on each call from the model's entropy models and modules (cheap, as TFC's
bls2017 rebuilds its entropy model on each call), and codecs compose: a hyperprior codec
owns a y codec and a z codec (CompressAI's latent codecs). The priors and hyper-transforms
stay attributes of the model, so checkpoints (keyed on attribute paths) and fingerprints
(which hash the variables' names) do not depend on how codecs are composed. Everything that
codes latents goes through a codec: the model's `compress`/`decompress`, the reduced
encoder (tfcae.deploy.reduction), the host side of a device encoder (`compress_symbols`,
tfcae.deploy.tflite), quantization-aware fine-tuning (tfcae.deploy.qat).

Interface (latents are float32 [B, h, w, C]; coding works on B = 1):

  forward(y, training, mixed)            -> {"y_hat", "bits" [B], ...}
  compress(y)                            -> (list of scalar strings, index check or None)
  offset()                               -> o [C]: a device encoder sends round(y − o)
  compress_symbols(symbols)              -> what compress returns, from the int32 symbols
  decompress(strings, padded_shape, index_check) -> ŷ
  min_payload_bytes(padded_shape)        -> the fewest bytes each string can have
  layout(stride)  (class method)         -> per string: its table kind, latent stride and
                                            coding, what a file decoder checks in Python
                                            (recorded in tfcae_export.json)

The index check (file format version 2, tfcae.io.bitstream) is the CRC-32 of the
coding-table indices of a codec whose decoder recomputes them (a hyperprior); None when
the tables are fixed (factorized), and the file is then version 1.
"""
import tensorflow as tf

from tfcae.io import bitstream, safedecode
from tfcae.nn.quantizers import stochastic_round

__all__ = ["batched_min_bytes", "LatentCodec", "FactorizedLatentCodec",
           "StochasticRoundingLatentCodec", "GaussianConditionalLatentCodec",
           "HyperpriorLatentCodec", "GainLatentCodec"]


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
  # A device encoder sends round(symbol_gain · y − offset()): the integers compress_symbols
  # takes (a codec that scales y before its child codes it sets its gain here).
  symbol_gain = 1.0

  def __init__(self, stride, channels):
    self.stride = int(stride)
    self.channels = int(channels)

  @classmethod
  def layout(cls, stride):
    """Per string of a file: {"table": "batched" | "indexed", "stride": the latents'
    down-sampling, "coding": "channels" (one table row per channel) | "indexed" (any row
    per element)}. `stride`: the down-sampling of y."""
    raise NotImplementedError

  def latent_shape(self, padded_shape):
    return [padded_shape[0] // self.stride, padded_shape[1] // self.stride]

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

  @classmethod
  def layout(cls, stride):
    return [{"table": "batched", "stride": int(stride), "coding": "channels"}]

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
    # TFC's decoder fed so that it cannot hang, and checked (tfcae.io.safedecode).
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


class GaussianConditionalLatentCodec(LatentCodec):
  """One string: y under Gaussians whose scales (table indexes) and means are given, coded
  by TFC's LocationScaleIndexedEntropyModel (CompressAI's GaussianConditionalLatentCodec).
  The parameters come from whoever owns this codec (a hyperprior's side information);
  each call takes them as arguments."""

  def __init__(self, entropy_model, stride, channels):
    super().__init__(stride, channels)
    self.entropy_model = entropy_model

  @classmethod
  def layout(cls, stride):
    # Any element may use any row of the indexed table.
    return [{"table": "indexed", "stride": int(stride), "coding": "indexed"}]

  def forward_given(self, y, indexes, mean, training, mixed=False):
    """(ŷ, bits) of y under the Gaussians N(mean, scale[indexes])."""
    y_hat, bits = self.entropy_model(y, indexes, loc=mean, training=training)
    if mixed:  # Minnen & Singh (2020): the decoder on rounded values
      y_hat = self.entropy_model.quantize(y, loc=mean)
    return y_hat, bits

  def compress_given(self, y, indexes, mean):
    return self.entropy_model.compress(y, indexes, loc=mean)[0]

  def table_indexes(self, indexes):
    """The table row the range coder uses for each element: the entropy model's own
    clipping and truncation of the predicted indexes (NUM_SCALES ≤ 256, one byte each)."""
    model = self.entropy_model
    return model._flatten_indexes(model._normalize_indexes(indexes))

  def index_check(self, indexes):
    """CRC-32 of the table row of every element: the integers the decoder must
    recompute identically (file format version 2, tfcae.io.bitstream)."""
    return bitstream.crc32_bytes_tf(tf.reshape(self.table_indexes(indexes), [-1]))

  def min_bytes_given(self, indexes):
    """Fewest bytes of the string once the indexes are known: exact per element."""
    bits = tf.reduce_sum(tf.gather(safedecode.row_min_bits_tf(self.entropy_model.cdf),
                                   tf.reshape(self.table_indexes(indexes), [-1])))
    return safedecode.min_payload_bytes(bits)

  def min_payload_bytes(self, padded_shape):
    """Before the indexes are known: every element at least the cheapest row's cost."""
    h, w = self.latent_shape(padded_shape)
    elements = tf.cast(h, tf.float64) * tf.cast(w, tf.float64) * self.channels
    bits = elements * tf.reduce_min(safedecode.row_min_bits_tf(self.entropy_model.cdf))
    return [safedecode.min_payload_bytes(bits)]

  def decompress_given(self, string, indexes, mean):
    # TFC's decoder fed so that it cannot hang, and checked (tfcae.io.safedecode).
    return safedecode.decompress_indexed(self.entropy_model, string, indexes, loc=mean)


class HyperpriorLatentCodec(LatentCodec):
  """Two strings: y under Gaussians whose scales (and, with `mean`, means: Minnen et al.
  2018 without the context model) the hyper-synthesis predicts from the side information
  z = h_a(|y|), which is coded under a factorized prior (Ballé et al. 2018).

  It owns its parts, as CompressAI's HyperpriorLatentCodec: a y codec
  (GaussianConditionalLatentCodec), a z codec (FactorizedLatentCodec, at 4× the stride:
  the hyper-analysis has two stride-2 convolutions) and the two hyper-transforms.

  integer: the hyper-synthesis is tfcae.models.integer's (Ballé et al. 2019), run on its
  frozen integers in coding, so that every platform derives the same table indices.
  signed: the hyper-analysis sees y itself rather than |y| (side_information).
  """

  num_strings = 2  # latents y, then side information z

  def __init__(self, y_codec, z_codec, hyper_analysis, hyper_synthesis, integer=False,
               mean=False, signed=False):
    super().__init__(y_codec.stride, y_codec.channels)
    self.y_codec, self.z_codec = y_codec, z_codec
    self.hyper_analysis, self.hyper_synthesis = hyper_analysis, hyper_synthesis
    self.integer, self.mean, self.signed = bool(integer), bool(mean), bool(signed)

  def side_information(self, y):
    """z = h_a(|y|) (Ballé et al. 2018), or h_a(y) when `signed` (Minnen et al. 2018's
    mean-scale model: a mean cannot be predicted from magnitudes)."""
    return self.hyper_analysis(y if self.signed else abs(y))

  @classmethod
  def layout(cls, stride):
    return (GaussianConditionalLatentCodec.layout(stride) +
            FactorizedLatentCodec.layout(4 * stride))

  @property
  def side_model(self):
    """The side information's entropy model (ẑ's prior)."""
    return self.z_codec.entropy_model

  def side_offset(self):
    """The side prior's quantization offsets o (ẑ = k + o)."""
    return self.z_codec.offset()

  def mean_and_indexes(self, z_hat, exact=False):
    """(mean or None, scale indexes) of the latents' Gaussians, from the side info ẑ.

    exact: for coding. An integer hyper-synthesis then runs on its frozen integers; in
    training and estimation it runs straight-through."""
    if self.integer:
      offset = self.side_offset()
      ihs = self.hyper_synthesis
      outputs = (ihs.exact if exact else ihs)(z_hat - offset, offset)
      return outputs if self.mean else (None, outputs)
    params = self.hyper_synthesis(z_hat)
    if not self.mean:
      return None, params
    return tuple(tf.split(params, 2, axis=-1))

  def _float_params(self, z_hat, exact=False):
    mean, indexes = self.mean_and_indexes(z_hat, exact)
    # Transforms under a mixed-precision policy compute in bf16/fp16; TFC's models in float32.
    return (None if mean is None else tf.cast(mean, tf.float32)), tf.cast(indexes, tf.float32)

  def forward(self, y, training, mixed=False):
    z = tf.cast(self.side_information(y), tf.float32)
    # Rate on noise, the decoders on rounded values when mixed (Minnen & Singh 2020); an
    # integer hyper-synthesis sees the integer symbols it will see in coding.
    side = self.z_codec.forward(z, training, mixed or self.integer)
    mean, indexes = self._float_params(side["y_hat"])
    y_hat, bits = self.y_codec.forward_given(y, indexes, mean, training, mixed)
    return {"y_hat": y_hat, "bits": bits + side["bits"], "z": z, "side_bits": side["bits"]}

  def index_check(self, indexes):
    """The y codec's index check (GaussianConditionalLatentCodec.index_check)."""
    return self.y_codec.index_check(indexes)

  def _code(self, y, z):
    mean, indexes = self._float_params(self.side_model.quantize(z), exact=True)
    (side_string,), _ = self.z_codec.compress(z)
    strings = [self.y_codec.compress_given(y, indexes, mean), side_string]
    return strings, self.index_check(indexes)

  def compress(self, y):
    return self._code(y, self.side_information(y))

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
    return self._code(y_hat, self.side_information(y_hat))

  def decompress(self, strings, padded_shape, index_check=bitstream.NO_INDEX_CHECK):
    z_hat = self.z_codec.decompress(strings[1:], padded_shape)
    mean, indexes = self._float_params(z_hat, exact=True)
    # Before range decoding: with one index decided differently from the encoder's, the
    # decoder would desynchronise and write garbage (or not terminate). Version-1 files
    # carry no check (NO_INDEX_CHECK) and decode without it.
    recorded = tf.cast(index_check, tf.int64)
    same = tf.logical_or(tf.equal(recorded, bitstream.NO_INDEX_CHECK),
                         tf.equal(self.index_check(indexes), recorded))
    long_enough = (tf.cast(tf.strings.length(strings[0]), tf.int64) >=
                   self.y_codec.min_bytes_given(indexes))
    checks = bitstream.require_in_order([(same, bitstream.PLATFORM_MISMATCH),
                                         (long_enough, safedecode.TOO_SHORT)])
    with tf.control_dependencies(checks):
      return self.y_codec.decompress_given(strings[0], indexes, mean)

  def min_payload_bytes(self, padded_shape):
    """y: every element at least the cheapest scale's cost (the indexes are not known
    before z is decoded); z: its channels' rows."""
    return self.y_codec.min_payload_bytes(padded_shape) + self.z_codec.min_payload_bytes(
        padded_shape)


class GainLatentCodec(LatentCodec):
  """A gain unit in front of any codec (Cui et al., "Asymmetric gained deep image
  compression with continuous rate adaptation", CVPR 2021): the child codes g ⊙ y and
  ŷ = g' ⊙ (the child's ŷ), with g and g' the per-channel gain and inverse gain of one
  rate (a variable-rate model builds one per quality). The strings are the child's, so a
  file's layout is the child's.

  gain, inverse_gain: [C] or [B, 1, 1, C] positive float32 tensors.
  """

  def __init__(self, child, gain, inverse_gain):
    super().__init__(child.stride, child.channels)
    self.child = child
    self.gain, self.inverse_gain = gain, inverse_gain
    self.num_strings = child.num_strings
    # A device encoder sends round(g · y − o): the symbols the child codes.
    self.symbol_gain = gain * child.symbol_gain

  @classmethod
  def layout(cls, stride):
    raise TypeError("a GainLatentCodec's layout is its child's: give the model the child's "
                    "class as latent_codec_class")

  def forward(self, y, training, mixed=False):
    outputs = self.child.forward(self.gain * y, training, mixed)
    return dict(outputs, y_hat=outputs["y_hat"] * self.inverse_gain)

  def compress(self, y):
    return self.child.compress(self.gain * y)

  def offset(self):
    return self.child.offset()

  def compress_symbols(self, symbols):
    return self.child.compress_symbols(symbols)

  def decompress(self, strings, padded_shape, index_check=bitstream.NO_INDEX_CHECK):
    return self.child.decompress(strings, padded_shape, index_check) * self.inverse_gain

  def min_payload_bytes(self, padded_shape):
    return self.child.min_payload_bytes(padded_shape)
