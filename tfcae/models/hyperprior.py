"""Scale-hyperprior CAE: Ballé, Minnen, Singh, Hwang & Johnston, "Variational image
compression with a scale hyperprior", ICLR 2018 (TFC's models/bmshj2018.py).

Four 5×5 stride-2 convolutions each side with GDN; a hyper-analysis (3×3 s1, 5×5 s2,
5×5 s2) of |y| gives side information z, coded with a factorized prior; the
hyper-synthesis predicts, per latent element, the index of a Gaussian scale in a
log-spaced table, used by `tfc.LocationScaleIndexedEntropyModel`. Total stride 64.
"""
import tensorflow as tf
import tensorflow_compression as tfc

from tfcae.models.base import CompressionModel
from tfcae.models.integer import IntegerHyperSynthesis
from tfcae.models.latent_codecs import (FactorizedLatentCodec, GaussianConditionalLatentCodec,
                                        HyperpriorLatentCodec)
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
  stride = 64  # the side information's: z is y down-sampled 4× more
  latent_stride = 16
  latent_codec_class = HyperpriorLatentCodec

  # Hyper-synthesis outputs per latent element: a scale index (1), or a mean and a scale
  # index (2, MeanScaleHyperpriorModel).
  outputs_per_latent = 1
  # A sub-class that creates more weights in its own __init__ builds the model itself.
  deferred_build = False
  # Whether the hyper-analysis sees y (Minnen et al.'s mean-scale model) or |y| (Ballé et
  # al. 2018's scale hyperprior). The mean-scale model here has seen |y| since it was
  # added, and its trained models keep encoding the way they were trained.
  signed_side_information = False

  def __init__(self, num_filters=128, latent_channels=None, hyper_filters=None,
               gdn="simplified", integer_hyper_synthesis=False, objective=None, **kwargs):
    super().__init__(objective=objective, **kwargs)
    self.num_filters = int(num_filters)
    self.latent_channels = int(latent_channels or num_filters)
    self.hyper_filters = int(hyper_filters or num_filters)
    self.gdn = gdn
    self.integer_hyper_synthesis = bool(integer_hyper_synthesis)
    self.analysis_transform, self.synthesis_transform = self._make_transforms()
    self.hyper_analysis_transform = hyper_analysis_transform(self.hyper_filters)
    if self.integer_hyper_synthesis:
      # Ballé et al. (2019): indices every platform computes identically (and, for the
      # mean-scale form, means from its exact hidden integers).
      self.hyper_synthesis_transform = IntegerHyperSynthesis(
          self.hyper_filters, self.latent_channels, NUM_SCALES,
          means=self.outputs_per_latent == 2)
      self.hyper_synthesis_transform.build((None, None, None, self.hyper_filters))
    else:
      self.hyper_synthesis_transform = hyper_synthesis_transform(
          self.hyper_filters, self.latent_channels, self.outputs_per_latent)
    self.hyperprior = tfc.NoisyDeepFactorized(batch_shape=(self.hyper_filters,))
    if not self.deferred_build:
      self.build((None, None, None, 3))

  def _make_transforms(self):
    """(analysis, synthesis): Ballé et al. (2018)'s four 5×5 stride-2 layers each side."""
    return (analysis_transform(self.num_filters, self.latent_channels, gdn=self.gdn),
            synthesis_transform(self.num_filters, gdn=self.gdn))

  def get_config(self):
    config = {"architecture": self.architecture, "num_filters": self.num_filters,
              "latent_channels": self.latent_channels, "hyper_filters": self.hyper_filters}
    if self.integer_hyper_synthesis:  # listed only when set: the fingerprints of models without it hold
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

  def latent_codec(self):
    latent_model, side_model = self.entropy_models()
    return HyperpriorLatentCodec(
        GaussianConditionalLatentCodec(latent_model, self.latent_stride, self.latent_channels),
        FactorizedLatentCodec(side_model, self.stride, self.hyper_filters),
        self.hyper_analysis_transform, self.hyper_synthesis_transform,
        integer=self.integer_hyper_synthesis, mean=self.outputs_per_latent == 2,
        signed=self.signed_side_information)

  def hyper_transforms(self):
    return self.hyper_analysis_transform, self.hyper_synthesis_transform

  def prepare_for_compression(self):
    if self.integer_hyper_synthesis:
      self.hyper_synthesis_transform.freeze()  # before the fingerprint hashes them
    super().prepare_for_compression()

  def calibration_latents(self, x):
    """The latents whose side information calibrates an integer hyper-synthesis."""
    return self.encode(x)

  def calibrate(self, x):
    if self.integer_hyper_synthesis:
      codec = self.latent_codec()
      z = codec.side_information(self.calibration_latents(x))
      offset = codec.side_offset()
      self.hyper_synthesis_transform.calibrate(codec.side_model.quantize(z) - offset, offset)


@ARCHITECTURES.register(settings=("num_filters", "latent_channels", "gdn", "hyper_filters"))
class MeanScaleHyperpriorModel(HyperpriorModel):
  """Minnen, Ballé & Toderici (2018), "Joint autoregressive and hierarchical priors for
  learned image compression", without the context model: the hyper-synthesis predicts a
  mean and a scale per latent element, and the Gaussian is coded around the mean
  (`tfc.LocationScaleIndexedEntropyModel`'s loc). Same transforms as the scale
  hyperprior otherwise."""

  architecture = "meanscale"
  outputs_per_latent = 2
