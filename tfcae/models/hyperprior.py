"""Scale-hyperprior CAE: Ballé, Minnen, Singh, Hwang & Johnston, "Variational image
compression with a scale hyperprior", ICLR 2018 (TFC's models/bmshj2018.py).

Four 5×5 stride-2 convolutions each side with GDN; a hyper-analysis (3×3 s1, 5×5 s2,
5×5 s2) of |y| gives side information z, coded with a factorized prior; the
hyper-synthesis predicts, per latent element, the index of a Gaussian scale in a
log-spaced table, used by `tfc.LocationScaleIndexedEntropyModel`. Total stride 64.
"""
import tensorflow as tf
import tensorflow_compression as tfc

from tfcae import layers
from tfcae.models.base import CompressionModel

# Ballé et al. (2018): 64 scales log-spaced between 0.11 and 256.
NUM_SCALES, SCALE_MIN, SCALE_MAX = 64, .11, 256.


def _scale_fn(i):
  offset = tf.math.log(SCALE_MIN)
  factor = (tf.math.log(SCALE_MAX) - tf.math.log(SCALE_MIN)) / (NUM_SCALES - 1.)
  return tf.math.exp(offset + factor * i)


def analysis_transform(num_filters, latent_channels, kernel_constraint=None):
  conv = lambda filters, name: tf.keras.layers.Conv2D(
      filters, 5, strides=2, padding="same", name=name, kernel_constraint=kernel_constraint)
  return tf.keras.Sequential([
      tf.keras.layers.Rescaling(1. / 255., name="scale"),
      conv(num_filters, "conv_0"), layers.GDN(name="gdn_0"),
      conv(num_filters, "conv_1"), layers.GDN(name="gdn_1"),
      conv(num_filters, "conv_2"), layers.GDN(name="gdn_2"),
      conv(latent_channels, "conv_3"),
  ], name="analysis")


def synthesis_transform(num_filters):
  deconv = lambda filters, name: tf.keras.layers.Conv2DTranspose(
      filters, 5, strides=2, padding="same", name=name)
  return tf.keras.Sequential([
      deconv(num_filters, "deconv_0"), tfc.GDN(inverse=True, name="igdn_0"),
      deconv(num_filters, "deconv_1"), tfc.GDN(inverse=True, name="igdn_1"),
      deconv(num_filters, "deconv_2"), tfc.GDN(inverse=True, name="igdn_2"),
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


def hyper_synthesis_transform(hyper_filters, latent_channels):
  return tf.keras.Sequential([
      tf.keras.layers.Conv2DTranspose(hyper_filters, 5, strides=2, padding="same",
                                      activation="relu", name="deconv_0"),
      tf.keras.layers.Conv2DTranspose(hyper_filters, 5, strides=2, padding="same",
                                      activation="relu", name="deconv_1"),
      tf.keras.layers.Conv2DTranspose(latent_channels, 3, padding="same", name="deconv_2"),
  ], name="hyper_synthesis")


class HyperpriorModel(CompressionModel):
  """Ballé et al. (2018) scale hyperprior."""

  architecture = "hyperprior"
  stride = 64
  num_strings = 2  # latents y, then side information z

  def __init__(self, num_filters=128, latent_channels=None, hyper_filters=None,
               objective=None, **kwargs):
    super().__init__(objective=objective, **kwargs)
    self.num_filters = int(num_filters)
    self.latent_channels = int(latent_channels or num_filters)
    self.hyper_filters = int(hyper_filters or num_filters)
    self.analysis_transform = analysis_transform(self.num_filters, self.latent_channels)
    self.synthesis_transform = synthesis_transform(self.num_filters)
    self.hyper_analysis_transform = hyper_analysis_transform(self.hyper_filters)
    self.hyper_synthesis_transform = hyper_synthesis_transform(self.hyper_filters,
                                                               self.latent_channels)
    self.hyperprior = tfc.NoisyDeepFactorized(batch_shape=(self.hyper_filters,))
    self.build((None, None, None, 3))

  def get_config(self):
    return {"architecture": self.architecture, "num_filters": self.num_filters,
            "latent_channels": self.latent_channels, "hyper_filters": self.hyper_filters}

  def encoder_layers(self):
    return list(self.analysis_transform.layers) + list(self.hyper_analysis_transform.layers)

  def _make_entropy_models(self, compression):
    latent = tfc.LocationScaleIndexedEntropyModel(
        tfc.NoisyNormal, NUM_SCALES, _scale_fn, coding_rank=3, compression=compression)
    side = tfc.ContinuousBatchedEntropyModel(self.hyperprior, coding_rank=3,
                                             compression=compression)
    return latent, side

  def forward(self, x, training):
    latent_model, side_model = self.entropy_models()
    y = self.analysis_transform(x)
    z = self.hyper_analysis_transform(abs(y))
    z_hat, side_bits = side_model(z, training=training)
    indexes = self.hyper_synthesis_transform(z_hat)
    y_hat, bits = latent_model(y, indexes, training=training)
    x_hat = self.synthesis_transform(y_hat)
    return {"x_hat": x_hat, "bits": bits + side_bits, "y": y, "y_hat": y_hat, "z": z,
            "side_bits": side_bits}

  def _compress_latents(self, x):
    latent_model, side_model = self.entropy_models()
    y = self.analysis_transform(x)
    z = self.hyper_analysis_transform(abs(y))
    indexes = self.hyper_synthesis_transform(side_model.quantize(z))
    return [latent_model.compress(y, indexes)[0], side_model.compress(z)[0]]

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
    indexes = self.hyper_synthesis_transform(side_model.quantize(z))
    return [latent_model.compress(y_hat, indexes)[0], side_model.compress(z)[0]]

  def _decompress_latents(self, strings, padded_shape):
    latent_model, side_model = self.entropy_models()
    z_shape = [padded_shape[0] // self.stride, padded_shape[1] // self.stride]
    z_hat = side_model.decompress(tf.reshape(strings[1], [1]), z_shape)
    indexes = self.hyper_synthesis_transform(z_hat)
    y_hat = latent_model.decompress(tf.reshape(strings[0], [1]), indexes)
    return self.synthesis_transform(y_hat)
