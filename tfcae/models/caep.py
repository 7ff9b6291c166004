"""CAE-P: the residual compressive autoencoder of Zhao & Liao, "CAE-ADMM: implicit bitrate
optimization via ADMM-based pruning in compressive autoencoders" (arXiv:1901.07196), after
Theis et al. (2017).

Encoder (widths for num_filters = N = 128: N/4 = 32, N/2 = 64, N = 128):
  3×3 conv 3→N/4, PReLU;  5×5 stride-2 conv →N/2, PReLU;  3×3 conv →N, PReLU;
  `blocks` bottleneck residual blocks at N channels (1×1 →N/4, 3×3, 1×1 →N, each with
  BatchNorm, PReLU, identity skip);  5×5 stride-2 conv →N/2;  5×5 stride-2 conv →N/4;
  3×3 conv →M (the latent).  Total stride 8.
Decoder (mirror, sub-pixel / depth-to-space up-sampling, Shi et al. 2016):
  sub-pixel ×1 M→N/4;  ×2 →N/2;  ×2 →N, PReLU;  `blocks` residual blocks;  ×1 →N/2, PReLU;
  ×2 →N/4, PReLU;  ×1 →3;  (tanh + 1)/2 ∈ [0, 1], ×255.
Every spatial convolution uses reflection padding (then a 'valid' convolution), as the
reference implementation does.

Quantisation is Theis et al.'s stochastic rounding (tfcae.nn.quantizers.stochastic_round):
⌊y⌋ + Bernoulli(y − ⌊y⌋) with the identity gradient in training, rounding at inference.

CAE-P has no rate term: its objective is the distortion plus, with pruning, the ADMM
penalty (tfcae.methods.admm). To get a *real* rate — a file — the quantized latent is
entropy-coded with a TFC `ContinuousBatchedEntropyModel` over a `NoisyDeepFactorized`
density per latent channel, fitted *jointly* on tf.stop_gradient(y): the `Rate` term of
the objective then trains only this prior and never reaches the encoder or decoder, so
the transforms still optimise exactly the paper's objective. `offset_heuristic=False`
makes the range coder quantise to the integers, the grid of the stochastic-rounding
quantizer, so what the decoder decodes at inference is round(E(x)), as in training.
"""
import tensorflow as tf
import tensorflow_compression as tfc

from tfcae.models.base import CompressionModel
from tfcae.models.latent_codecs import StochasticRoundingLatentCodec
from tfcae.models.registry import ARCHITECTURES

__all__ = ["MIN_PADDED_SIDE", "ReflectionPad", "DepthToSpace", "BottleneckBlock",
           "analysis_transform", "synthesis_transform", "CaepModel"]

# Smallest padded image side: the 3×3 reflection pad of the 1/8-resolution latent needs
# at least 2 latent rows/columns (tf.pad REFLECT requires pad < size).
MIN_PADDED_SIDE = 16


class ReflectionPad(tf.keras.layers.Layer):
  """Reflection padding of `pad` pixels on each spatial side (before a 'valid' conv)."""

  def __init__(self, pad, **kwargs):
    super().__init__(**kwargs)
    self.pad = int(pad)

  def call(self, x):
    p = self.pad
    return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

  def get_config(self):
    return dict(super().get_config(), pad=self.pad)


class DepthToSpace(tf.keras.layers.Layer):
  """Sub-pixel shuffle: [B, H, W, C·r²] -> [B, rH, rW, C]."""

  def __init__(self, factor, **kwargs):
    super().__init__(**kwargs)
    self.factor = int(factor)

  def call(self, x):
    return tf.nn.depth_to_space(x, self.factor)

  def get_config(self):
    return dict(super().get_config(), factor=self.factor)


def _prelu(name):
  # One slope per channel, shared over space (PyTorch's nn.PReLU(C) equivalent).
  return tf.keras.layers.PReLU(shared_axes=[1, 2],
                               alpha_initializer=tf.keras.initializers.Constant(.25), name=name)


def _conv(filters, kernel, stride, name, initializer="he_normal"):
  """Reflection pad + 'valid' convolution (output size = ceil(input / stride))."""
  return [ReflectionPad(kernel // 2, name=f"pad_{name}"),
          tf.keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid", name=name,
                                 kernel_initializer=initializer)]


class BottleneckBlock(tf.keras.layers.Layer):
  """1×1 (→width/4), 3×3, 1×1 (→width), BatchNorm + PReLU, identity skip (He et al. 2016).

  The last BatchNorm's scale starts at 0 (as in the reference), so every block starts as
  the identity and deep stacks train from the first step.
  """

  def __init__(self, width, **kwargs):
    super().__init__(**kwargs)
    self.width = int(width)
    mid = max(self.width // 4, 1)
    self.conv1 = tf.keras.layers.Conv2D(mid, 1, name="conv1", kernel_initializer="he_normal")
    self.bn1 = tf.keras.layers.BatchNormalization(name="bn1")
    self.act1 = _prelu("prelu1")
    self.pad2 = ReflectionPad(1, name="pad2")
    self.conv2 = tf.keras.layers.Conv2D(mid, 3, name="conv2", kernel_initializer="he_normal")
    self.bn2 = tf.keras.layers.BatchNormalization(name="bn2")
    self.act2 = _prelu("prelu2")
    self.conv3 = tf.keras.layers.Conv2D(self.width, 1, name="conv3",
                                        kernel_initializer="he_normal")
    self.bn3 = tf.keras.layers.BatchNormalization(name="bn3", gamma_initializer="zeros")
    self.act3 = _prelu("prelu3")

  def call(self, x, training=None):
    h = self.act1(self.bn1(self.conv1(x), training=training))
    h = self.act2(self.bn2(self.conv2(self.pad2(h)), training=training))
    h = self.bn3(self.conv3(h), training=training)
    return self.act3(x + h)

  def get_config(self):
    return dict(super().get_config(), width=self.width)


def analysis_transform(num_filters, latent_channels, blocks):
  """x in [0, 255] -> y (stride 8). Layer names are stable (conv_0 … conv_5, res_i)."""
  n1, n2, n4 = num_filters, max(num_filters // 2, 1), max(num_filters // 4, 1)
  layers = [tf.keras.layers.Rescaling(1. / 255., name="scale")]
  layers += _conv(n4, 3, 1, "conv_0") + [_prelu("prelu_0")]
  layers += _conv(n2, 5, 2, "conv_1") + [_prelu("prelu_1")]
  layers += _conv(n1, 3, 1, "conv_2") + [_prelu("prelu_2")]
  layers += [BottleneckBlock(n1, name=f"res_{i}") for i in range(blocks)]
  layers += _conv(n2, 5, 2, "conv_3")
  layers += _conv(n4, 5, 2, "conv_4")
  layers += _conv(latent_channels, 3, 1, "conv_5")
  return tf.keras.Sequential(layers, name="analysis")


def _subpixel(filters, factor, name, initializer="he_normal"):
  """Sub-pixel convolution: reflection-padded 3×3 conv to filters·r², then depth-to-space."""
  layers = _conv(filters * factor ** 2, 3, 1, name, initializer)
  if factor > 1:
    layers.append(DepthToSpace(factor, name=f"shuffle_{name}"))
  return layers


def synthesis_transform(num_filters, blocks):
  """y_hat -> x_hat in [0, 255] (mirror of the analysis transform)."""
  n1, n2, n4 = num_filters, max(num_filters // 2, 1), max(num_filters // 4, 1)
  layers = _subpixel(n4, 1, "subpix_0")
  layers += _subpixel(n2, 2, "subpix_1")
  layers += _subpixel(n1, 2, "subpix_2") + [_prelu("prelu_2")]
  layers += [BottleneckBlock(n1, name=f"res_{i}") for i in range(blocks)]
  layers += _subpixel(n2, 1, "subpix_3") + [_prelu("prelu_3")]
  layers += _subpixel(n4, 2, "subpix_4") + [_prelu("prelu_4")]
  # A small last layer keeps the tanh out of saturation at the start (with He's
  # initialisation its input has a standard deviation of ≈ 3 and the gradients vanish).
  layers += _subpixel(3, 1, "subpix_5",
                      tf.keras.initializers.VarianceScaling(0.01, "fan_in", "truncated_normal"))
  # (tanh + 1) / 2 ∈ [0, 1] as in the reference, on the 0..255 scale of the other models.
  layers += [tf.keras.layers.Activation(lambda t: (tf.tanh(t) + 1.) * 127.5, name="to_pixels")]
  return tf.keras.Sequential(layers, name="synthesis")


@ARCHITECTURES.register(settings=("num_filters", "latent_channels", "caep_blocks"))
class CaepModel(CompressionModel):
  """CAE-P (Zhao & Liao) with a jointly fitted factorized prior for real files."""

  architecture = "caep"
  stride = 8
  latent_codec_class = StochasticRoundingLatentCodec

  def __init__(self, num_filters=128, latent_channels=None, caep_blocks=15, objective=None,
               **kwargs):
    super().__init__(objective=objective, **kwargs)
    self.num_filters = int(num_filters)
    self.latent_channels = int(latent_channels or num_filters)
    self.caep_blocks = int(caep_blocks)
    if self.num_filters < 4 or self.caep_blocks < 0:
      raise ValueError("caep needs num_filters >= 4 and caep_blocks >= 0")
    self.analysis_transform = analysis_transform(self.num_filters, self.latent_channels,
                                                 self.caep_blocks)
    self.synthesis_transform = synthesis_transform(self.num_filters, self.caep_blocks)
    self.prior = tfc.NoisyDeepFactorized(batch_shape=(self.latent_channels,))
    self.build((None, None, None, 3))

  def get_config(self):
    return {"architecture": self.architecture, "num_filters": self.num_filters,
            "latent_channels": self.latent_channels, "caep_blocks": self.caep_blocks}

  def encoder_layers(self):
    return list(self.analysis_transform.layers)

  def padded_shape(self, height, width):
    # Reflection padding needs a latent of at least 2×2 (see MIN_PADDED_SIDE).
    height, width = super().padded_shape(height, width)
    return tf.maximum(height, MIN_PADDED_SIDE), tf.maximum(width, MIN_PADDED_SIDE)

  def _make_entropy_models(self, compression):
    return (tfc.ContinuousBatchedEntropyModel(self.prior, coding_rank=3,
                                              compression=compression,
                                              offset_heuristic=False,
                                              bottleneck_dtype=tf.float32),)

  def latent_codec(self):
    (entropy_model,) = self.entropy_models()
    return StochasticRoundingLatentCodec(entropy_model, self.stride, self.latent_channels)
