"""Factorized-prior CAE: Ballé, Laparra & Simoncelli, "End-to-end optimized image
compression", ICLR 2017 (TFC's models/bls2017.py).

Three strided convolutions each side (9×9 stride 4, 5×5 stride 2, 5×5 stride 2; total
stride 16) with GDN / inverse GDN, and a `tfc.ContinuousBatchedEntropyModel` over a learned
`tfc.NoisyDeepFactorized` density per latent channel.

Convolutions are plain Keras `Conv2D` / `Conv2DTranspose` (spatial kernels): weight
projections read and write `layer.kernel` directly (and take Keras `kernel_constraint`s),
TF-MOT wraps them natively, and they convert to TFLite builtin ops.
"""
import tensorflow as tf
import tensorflow_compression as tfc

from tfcae.models.base import CompressionModel
from tfcae.models.latent_codecs import FactorizedLatentCodec
from tfcae.models.registry import ARCHITECTURES
from tfcae.nn import layers

__all__ = ["analysis_transform", "synthesis_transform", "FactorizedModel"]


def analysis_transform(num_filters, latent_channels, kernel_constraint=None, gdn="simplified"):
  """x in [0, 255] -> y. Layer names are stable: projections and accounting use them."""
  conv = lambda filters, kernel, stride, name: tf.keras.layers.Conv2D(
      filters, kernel, strides=stride, padding="same", name=name,
      kernel_constraint=kernel_constraint)
  return tf.keras.Sequential([
      tf.keras.layers.Rescaling(1. / 255., name="scale"),
      conv(num_filters, 9, 4, "conv_0"), layers.gdn(gdn, "gdn_0"),
      conv(num_filters, 5, 2, "conv_1"), layers.gdn(gdn, "gdn_1"),
      conv(latent_channels, 5, 2, "conv_2"),
  ], name="analysis")


def synthesis_transform(num_filters, gdn="simplified"):
  """y_hat -> x_hat in [0, 255] (mirror of the analysis transform)."""
  deconv = lambda filters, kernel, stride, name: tf.keras.layers.Conv2DTranspose(
      filters, kernel, strides=stride, padding="same", name=name)
  return tf.keras.Sequential([
      deconv(num_filters, 5, 2, "deconv_0"), layers.gdn(gdn, "igdn_0", inverse=True),
      deconv(num_filters, 5, 2, "deconv_1"), layers.gdn(gdn, "igdn_1", inverse=True),
      deconv(3, 9, 4, "deconv_2"),
      tf.keras.layers.Rescaling(255., name="scale"),
  ], name="synthesis")


@ARCHITECTURES.register(settings=("num_filters", "latent_channels", "gdn"))
class FactorizedModel(CompressionModel):
  """Ballé et al. (2017) with a factorized prior."""

  architecture = "factorized"
  stride = 16
  latent_codec_class = FactorizedLatentCodec

  def __init__(self, num_filters=128, latent_channels=None, gdn="simplified", objective=None,
               **kwargs):
    super().__init__(objective=objective, **kwargs)
    self.num_filters = int(num_filters)
    self.latent_channels = int(latent_channels or num_filters)
    self.gdn = gdn
    self.analysis_transform = analysis_transform(self.num_filters, self.latent_channels,
                                                 gdn=gdn)
    self.synthesis_transform = synthesis_transform(self.num_filters, gdn=gdn)
    self.prior = tfc.NoisyDeepFactorized(batch_shape=(self.latent_channels,))
    self.build((None, None, None, 3))

  def get_config(self):
    return self._with_gdn({"architecture": self.architecture, "num_filters": self.num_filters,
                           "latent_channels": self.latent_channels})

  def encoder_layers(self):
    return list(self.analysis_transform.layers)

  def _make_entropy_models(self, compression):
    # float32 whatever the Keras policy (--precision): the rate is computed in float32.
    return (tfc.ContinuousBatchedEntropyModel(self.prior, coding_rank=3,
                                              compression=compression,
                                              bottleneck_dtype=tf.float32),)

  def latent_codec(self):
    (entropy_model,) = self.entropy_models()
    return FactorizedLatentCodec(entropy_model, self.stride, self.latent_channels)
