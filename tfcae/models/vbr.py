"""Variable-rate mean-scale hyperprior: one model for every rate, with gain units (Cui,
Wang, Gao, Bai & Chen, "Asymmetric gained deep image compression with continuous rate
adaptation", CVPR 2021).

The mean-scale hyperprior (Minnen et al. 2018 without the context model,
tfcae.models.hyperprior) on Ballé et al. (2017)'s transforms (a 9×9 stride-4 and two 5×5
stride-2 convolutions with GDN: tfcae.models.factorized's, so a trained factorized model
warm-starts it), with K rate points. Rate point k has a learned per-channel gain g_k and
inverse gain g'_k (Cui et al.'s gain and inverse-gain units, eq. 4-5): the latents are
coded as g_k ⊙ y, the side information z = h_a(g_k ⊙ y) and the means and scales it
predicts adapt to the rate through what they see, and the synthesis decodes g'_k ⊙ ŷ.

Quality q ∈ [1, K] is continuous: between rate points k and k+1 the gains are
interpolated exponentially (Cui et al. eq. 9), g = g_k^(1−t) · g_{k+1}^t with
t = q − ⌊q⌋, i.e. linearly in log-gain, which is how they are stored.

Training draws each image's rate point uniformly (tfcae.objectives.terms.
VariableRateDistortion weights its distortion with that point's λ), so one training
covers the whole ladder. The file records q exactly (format version 3,
tfcae.io.bitstream), and the decoder takes it from there.
"""
import math

import tensorflow as tf

from tfcae.io import bitstream
from tfcae.models import factorized, tiling
from tfcae.models.hyperprior import MeanScaleHyperpriorModel
from tfcae.models.latent_codecs import GainLatentCodec
from tfcae.models.registry import ARCHITECTURES

__all__ = ["DEFAULT_RATE_POINTS", "interpolate_log_gains", "VariableRateMeanScaleModel"]

DEFAULT_RATE_POINTS = 8
# The initial gains: for R + λ·MSE at high rate the best quantisation step goes as λ^−½
# (so the gain, 1/step, as λ^½), spread over the zoo ladder's λ range (0.0009-0.0932),
# centred on gain 1 (the middle of the ladder, where a warm start from a factorized
# model's transforms sits).
INITIAL_LOG_GAIN_SPAN = 0.5 * math.log(0.0932 / 0.0009)


def interpolate_log_gains(table: tf.Tensor, quality: tf.Tensor) -> tf.Tensor:
  """The gains at a continuous quality: exp of the log-gain rows linearly interpolated.

  Args:
    table: [K, C] log-gains, row k − 1 for rate point k (K ≥ 2).
    quality: a scalar or [B] float, clipped to [1, K].

  Returns:
    [C] (scalar quality) or [B, C] positive gains.
  """
  points = tf.shape(table)[0]
  q = tf.clip_by_value(tf.cast(quality, tf.float32), 1., tf.cast(points, tf.float32)) - 1.
  low = tf.minimum(tf.floor(q), tf.cast(points - 2, tf.float32))
  t = (q - low)[..., None]
  low = tf.cast(low, tf.int32)
  return tf.exp((1. - t) * tf.gather(table, low) + t * tf.gather(table, low + 1))


@ARCHITECTURES.register(settings=("num_filters", "latent_channels", "gdn", "hyper_filters",
                                  "integer_hyper_synthesis", "rate_points"))
class VariableRateMeanScaleModel(MeanScaleHyperpriorModel):
  """The mean-scale hyperprior with K gain units: see the module docstring."""

  architecture = "meanscale-vbr"
  variable_rate = True
  signed_side_information = True  # z = h_a(g ⊙ y): the means need the signs
  deferred_build = True

  def __init__(self, num_filters=128, latent_channels=None, hyper_filters=None,
               gdn="simplified", integer_hyper_synthesis=False,
               rate_points=DEFAULT_RATE_POINTS, objective=None, **kwargs):
    super().__init__(num_filters=num_filters, latent_channels=latent_channels,
                     hyper_filters=hyper_filters, gdn=gdn,
                     integer_hyper_synthesis=integer_hyper_synthesis, objective=objective,
                     **kwargs)
    self.rate_points = int(rate_points)
    if self.rate_points < 2:
      raise ValueError(f"rate_points={rate_points}: a variable-rate model needs at least 2")
    initial = tf.linspace(-INITIAL_LOG_GAIN_SPAN / 2., INITIAL_LOG_GAIN_SPAN / 2.,
                          self.rate_points)
    initial = tf.tile(initial[:, None], [1, self.latent_channels])
    self.log_gain = tf.Variable(initial, name="log_gain")
    self.log_inverse_gain = tf.Variable(-initial, name="log_inverse_gain")
    # A training setting, not part of the model: 0 draws each image's rate point, k in
    # [1, K] trains (and validates) at point k only, i.e. at fixed λ.
    self.fixed_rate_point = 0
    self.build((None, None, None, 3))

  def _make_transforms(self):
    return (factorized.analysis_transform(self.num_filters, self.latent_channels,
                                          gdn=self.gdn),
            factorized.synthesis_transform(self.num_filters, gdn=self.gdn))

  def get_config(self):
    return dict(super().get_config(), rate_points=self.rate_points)

  @classmethod
  def shared_parts(cls, source: dict, config: dict) -> list:
    """The attributes a model of architecture `source` can warm-start (weights by name):
    the analysis and synthesis transforms of a factorized model of the same widths."""
    same = all(source.get(k) == config.get(k) for k in ("num_filters", "latent_channels"))
    if source.get("architecture") == "factorized" and same and (
        source.get("gdn", "simplified") == config.get("gdn", "simplified")):
      return ["analysis_transform", "synthesis_transform"]
    return []

  def calibration_latents(self, x):
    # The batch's images at every rate point in turn: the integer steps must hold the
    # side information of the highest rate as of the lowest.
    y = self.encode(x)
    gain, _ = self.gains(self.sample_quality(tf.shape(y)[0], training=False))
    return gain * y

  # --- rate ---------------------------------------------------------------------------
  def check_quality(self, quality) -> tf.Tensor:
    """The quality as float32, checked in [1, K] (InvalidArgumentError otherwise)."""
    quality = tf.convert_to_tensor(quality, tf.float32)
    inside = tf.logical_and(quality >= 1., quality <= float(self.rate_points))
    check = tf.debugging.Assert(tf.reduce_all(inside), [
        f"quality outside [1, {self.rate_points}]:", quality])
    with tf.control_dependencies([check]):
      return tf.identity(quality)

  def gains(self, quality):
    """(g, g') at `quality` (scalar: [C]; [B]: [B, 1, 1, C])."""
    gain = interpolate_log_gains(self.log_gain, quality)
    inverse = interpolate_log_gains(self.log_inverse_gain, quality)
    if gain.shape.rank == 2:
      gain, inverse = gain[:, None, None, :], inverse[:, None, None, :]
    return gain, inverse

  def sample_quality(self, batch: tf.Tensor, training: bool) -> tf.Tensor:
    """The rate point of each image of a batch, as a quality (float32 [B]): uniform in
    training; in evaluation spread evenly over the ladder (image i of B at point
    ⌊i·K/B⌋ + 1: every point equally often when K divides B, every (K/B)-th one when the
    batch is smaller), so that validation figures average over the ladder reproducibly;
    `fixed_rate_point` k in both when it is set."""
    if self.fixed_rate_point:
      return tf.fill([batch], float(self.fixed_rate_point))
    if training:
      points = tf.random.uniform([batch], 0, self.rate_points, dtype=tf.int32)
    else:
      points = tf.range(batch) * self.rate_points // batch
    return tf.cast(points + 1, tf.float32)

  def latent_codec(self, quality=None):
    """The hyperprior codec behind the gain unit of `quality`; without a quality the
    hyperprior codec alone (what does not depend on the rate: strings, layout, bounds)."""
    codec = super().latent_codec()
    if quality is None:
      return codec
    return GainLatentCodec(codec, *self.gains(quality))

  def forward(self, x, training, quality=None):
    y = self.encode(x, training)
    if quality is None:
      quality = self.sample_quality(tf.shape(y)[0], training)
    mixed = training and self.decoder_quantization == "mixed"
    outputs = self.latent_codec(quality).forward(y, training, mixed)
    return dict(outputs, y=y, x_hat=self.decode(outputs["y_hat"], training),
                quality=tf.broadcast_to(tf.cast(quality, tf.float32), tf.shape(y)[:1]))

  # --- coding: the quality is an input of the encoder and a field of the file --------
  def _coding_quality(self, quality):
    """The checked quality, rounded to what the file records (bitstream.quantize_quality),
    so that the decoder's gains are the encoder's to the bit."""
    code = bitstream.quality_code_tf(self.check_quality(quality))
    return tf.cast(tf.cast(code, tf.float64) / 2. ** bitstream.QUALITY_FRACTION_BITS,
                   tf.float32)

  @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image"),
                                tf.TensorSpec([], tf.float32, name="quality")])
  def compress(self, image, quality):
    """uint8 [H, W, 3] image and a quality in [1, K] -> scalar string: the complete
    tfcae file (version 3: the quality is in the header)."""
    return self.compress_tiled(image, quality, tf.constant(tiling.AUTO))

  @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image"),
                                tf.TensorSpec([], tf.float32, name="quality"),
                                tf.TensorSpec([], tf.int32, name="tile")])
  def compress_tiled(self, image, quality, tile):
    """`compress` with the analysis run in core tiles of `tile` pixels (0: whole)."""
    quality = self._coding_quality(quality)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    strings, index_check = self.latent_codec(quality).compress(self.encode_image(image, tile))
    return bitstream.pack_tf(self.fingerprint, height, width, strings, index_check, quality)

  def _decompress(self, data, max_pixels, tile):
    height, width, strings, index_check, quality = bitstream.parse_variable_rate_tf(
        data, self.fingerprint, self.num_strings, self.rate_points, max_pixels)
    return self._decode_strings(self.latent_codec(quality), height, width, strings,
                                index_check, tile)

  @tf.function(input_signature=[tf.TensorSpec([1, None, None, None], tf.int32, name="symbols"),
                                tf.TensorSpec([], tf.int32, name="height"),
                                tf.TensorSpec([], tf.int32, name="width"),
                                tf.TensorSpec([], tf.float32, name="quality")])
  def compress_symbols(self, symbols, height, width, quality):
    """Host-side coding of a device encoder's symbols, round(g ⊙ y − o) at `quality`
    (the device scales its latents by the gains of that quality)."""
    quality = self._coding_quality(quality)
    strings, index_check = self.latent_codec(quality).compress_symbols(symbols)
    return bitstream.pack_tf(self.fingerprint, height, width, strings, index_check, quality)

  @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image"),
                                tf.TensorSpec([], tf.float32, name="quality")])
  def estimate_bits(self, image, quality):
    """The entropy model's estimate of the payload at `quality`, in bits (rounded
    latents): what rate control bisects on before it codes."""
    quality = self._coding_quality(quality)
    y = self.encode_image(image, tf.constant(tiling.AUTO))
    return tf.reduce_sum(self.latent_codec(quality[None]).forward(y, training=False)["bits"])
