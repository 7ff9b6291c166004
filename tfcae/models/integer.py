"""Integer hyper-synthesis: Ballé, Minnen & Johnston, "Integer networks for data
compression with latent-variable models", ICLR 2019.

Why: a hyperprior's decoder recomputes the scale index of every latent from the side
information ẑ. In floating point two platforms (or two kernel libraries on one machine)
can round one pre-activation differently, one index then differs from the encoder's, and
the range decoder desynchronises for the rest of the image. An integer network
computes the indices from the integer symbols of ẑ with integer arithmetic only, so every
platform gets the same integers.

Each layer is the paper's eq. (1)-(2):

  w = (H ⊛ v + b) ⊘ c,        v' = g(w),

with an integer kernel H (L = 8 bits), an integer bias b, a positive integer divisor c per
output channel, ⊘ the rounding division and g the clipping to [0, 2^K − 1] (QReLU, K = 8)
for the hidden layers and to the scale table's [0, NUM_SCALES − 1] for the output, which
is the index itself ("a bounded lookup for the scales"; its ⊘ rounds down, as TFC's
coder truncates a float index). Our parameterisation (in the
spirit of the paper's sec. 3) keeps the float kernel W and bias β of a `Conv2DTranspose`
(the same variables, names and shapes as the float hyper-synthesis, so a trained float
hyperprior fine-tunes into this one) and a fixed activation step Δ_l per layer (the value
of one integer step; calibrated on the first batch, `calibrate`). Per output channel o:

  s_o = max_k |W_ko| / (2^(L−1) − 1),     H = round(W / s),
  c_o = round(2^P · Δ_l / (Δ_{l−1} s_o)),  b_o = round(2^P · β_o / (Δ_{l−1} s_o)),
  v_l = clip(⌊(2^P · H ⊛ v_{l−1} + b + ⌊c/2⌋) / c⌋, 0, top_l),

so that Δ_l·v_l ≈ relu(W ⊛ Δ_{l−1}v_{l−1} + β): the float layer, quantised. The pre-shift
2^P gives the divisor 8 more bits of precision than Δ_l / (Δ_{l−1} s) alone would have.

Training evaluates this formula in float32 with straight-through rounding (gradients as
through the float layer). Coding evaluates it with integers frozen at export
(`freeze`, saved with the model, so the decoder never re-derives them in floating point):
the convolution in float64 on integer values — every product and partial sum is an integer
below 2^53 (bounded in the constructor), so any summation order, vector width or kernel
library gives the same exact sum — and the rounding division in int64.
"""
import tensorflow as tf

__all__ = ["IntegerHyperSynthesis", "SYMBOL_BOUND"]

WEIGHT_BITS = 8        # L: H ∈ [−127, 127]
ACTIVATION_BITS = 8    # K: hidden activations ∈ [0, 255]
PRE_SHIFT_BITS = 8     # P
# The input is ẑ itself in steps of 2^−Q: its integer symbols k and the side prior's
# quantization offset o (ẑ = k + o, |o| ≤ ½), as v₀ = k·2^Q + round(o·2^Q). Feeding k
# alone would drop the constant W ⊛ o the float hyper-synthesis sees (+3 % rate measured
# on Kodak for a converted model, docs/results.md); o comes from the saved model, so
# every platform computes the same v₀.
INPUT_FRACTION_BITS = 4  # Q
# The side information's symbols are clipped to ±SYMBOL_BOUND before the first layer (by
# encoder and decoder alike): real images give |symbol| < 100, and the bound keeps every
# sum exact even for a hostile file's symbols.
SYMBOL_BOUND = 2 ** 15
EXACT_LIMIT = 2 ** 53  # float64 represents every integer below this exactly


def _round_ste(x):
  return x + tf.stop_gradient(tf.round(x) - x)


def _floor_ste(x):
  return x + tf.stop_gradient(tf.floor(x) - x)


def _clip_ste(x, low, high):
  # Zero gradient outside the range (as ReLU below 0), identity inside.
  return tf.clip_by_value(x, low, high)


class IntegerConv2DTranspose(tf.keras.layers.Layer):
  """One integer layer: a `Conv2DTranspose` (same `kernel` [k, k, out, in] and `bias`)
  whose output is the integer v_l of the module docstring."""

  def __init__(self, filters, kernel_size, strides, top, rounding="nearest", name=None,
               **kwargs):
    super().__init__(name=name, **kwargs)
    self.filters = int(filters)
    self.kernel_size = int(kernel_size)
    self.strides = int(strides)
    self.top = float(top)  # the clipping bound of the output (2^K − 1, or the last index)
    if rounding not in ("nearest", "floor"):
      raise ValueError(f"rounding must be 'nearest' or 'floor', got {rounding!r}")
    self.rounding = rounding

  def build(self, input_shape):
    channels = int(input_shape[-1])
    k, n = self.kernel_size, self.filters
    self.kernel = self.add_weight("kernel", [k, k, n, channels], initializer="glorot_uniform")
    self.bias = self.add_weight("bias", [n], initializer="zeros")
    # Δ_l: what one integer step of the output is worth in the float layer's units.
    self.output_step = self.add_weight("output_step", [], initializer="ones", trainable=False)
    # The frozen integers the coder uses (`freeze`); integer-valued, stored exactly.
    self.integer_kernel = self.add_weight("integer_kernel", [k, k, n, channels],
                                          initializer="zeros", trainable=False)
    self.integer_bias = self.add_weight("integer_bias", [n], dtype=tf.int64,
                                        initializer="zeros", trainable=False)
    self.divisor = self.add_weight("divisor", [n], dtype=tf.int64, initializer="ones",
                                   trainable=False)
    super().build(input_shape)

  def get_config(self):
    return {**super().get_config(), "filters": self.filters,
            "kernel_size": self.kernel_size, "strides": self.strides, "top": self.top,
            "rounding": self.rounding}

  def _output_shape(self, v):
    shape = tf.shape(v)
    return tf.stack([shape[0], shape[1] * self.strides, shape[2] * self.strides,
                     self.filters])

  def _conv(self, v, kernel):
    return tf.nn.conv2d_transpose(v, kernel, self._output_shape(v), self.strides,
                                  padding="SAME")

  def integers(self, input_step):
    """(H, b, c) as float32 tensors from the float weights, and Δ_{l−1} s_o, the float
    value of one unit of H ⊛ v (module docstring)."""
    limit = 2. ** (WEIGHT_BITS - 1) - 1.
    scale = tf.reduce_max(abs(self.kernel), axis=[0, 1, 3]) / limit
    scale = tf.stop_gradient(tf.maximum(scale, 1e-12))       # s_o, [out]
    h = _round_ste(self.kernel / scale[:, None])            # [k, k, out, in] / [out, 1]
    unit = input_step * scale                               # Δ_{l−1} s_o
    shift = 2. ** PRE_SHIFT_BITS
    # c ≥ 1: a divisor below one would mean a step finer than the sum's own resolution.
    c = tf.maximum(tf.round(tf.stop_gradient(shift * self.output_step / unit)), 1.)
    b = _round_ste(shift * self.bias / tf.stop_gradient(unit))
    return h, b, c, unit

  def _half(self, c):
    # ⊘ rounds to nearest (⌊(u + ⌊c/2⌋) / c⌋), or, for the index output, down: TFC's
    # coder truncates a float model's index, and the integer index matches it (a
    # converted model then codes at the float model's rate, docs/results.md).
    return c // 2 if self.rounding == "nearest" else c * 0

  def call(self, v, input_step):
    """Training / estimation: the integer formula in float32, straight-through."""
    h, b, c, _ = self.integers(input_step)
    acc = 2. ** PRE_SHIFT_BITS * self._conv(v, h) + b
    return _clip_ste(_floor_ste((acc + self._half(c)) / c), 0., self.top)

  def freeze(self, input_step):
    h, b, c, _ = self.integers(input_step)
    self.integer_kernel.assign(h)
    self.integer_bias.assign(tf.cast(b, tf.int64))
    self.divisor.assign(tf.cast(c, tf.int64))

  def exact(self, v):
    """Coding: v (float64 holding integers) -> float64 integers, with the frozen
    integers only; bit-identical on every platform (module docstring)."""
    acc = self._conv(v, tf.cast(self.integer_kernel, tf.float64))  # exact: < 2^53
    acc = tf.cast(acc, tf.int64) * 2 ** PRE_SHIFT_BITS + self.integer_bias
    w = tf.math.floordiv(acc + self._half(self.divisor), self.divisor)  # ⊘
    return tf.cast(tf.clip_by_value(w, 0, int(self.top)), tf.float64)

  def calibrate(self, v, input_step):
    """Sets Δ_l so that the float layer's largest output on this batch maps to the top
    of the integer range (for the index output Δ = 1 stays: its units are indices)."""
    h, b, _, unit = self.integers(input_step)
    real = tf.nn.relu((2. ** PRE_SHIFT_BITS * self._conv(v, h) + b) * unit /
                      2. ** PRE_SHIFT_BITS)
    peak = tf.reduce_max(real)
    self.output_step.assign(tf.where(peak > 0., peak / self.top, 1.))


def _shape(v, strides, channels):
  shape = tf.shape(v)
  return tf.stack([shape[0], shape[1] * strides, shape[2] * strides, channels])


class IntegerHyperSynthesis(tf.keras.layers.Layer):
  """The hyper-synthesis of `HyperpriorModel` (two 5×5 stride-2 and one 3×3 transposed
  convolutions) as an integer network whose output is the scale index.

  means: the mean-scale form (Minnen et al. 2018), whose float hyper-synthesis outputs 2C
  channels, the means then the scales (the same variables here). The scale indices come
  from the integer network as above; the means from the last layer's mean half in
  floating point, on the exact integer activations of the hidden layers (times their step
  Δ). A mean only shifts ŷ = k + μ after the symbol k is decoded, so a platform that
  rounds μ differently decodes the same symbols and pixels within ±1; the indices, which
  decide how k is decoded, are exact."""

  def __init__(self, hyper_filters, latent_channels, num_scales, name="hyper_synthesis",
               means=False, **kwargs):
    super().__init__(name=name, **kwargs)
    hidden = 2. ** ACTIVATION_BITS - 1.
    self.latent_channels = int(latent_channels)
    self.means = bool(means)
    outputs = self.latent_channels * (2 if self.means else 1)
    self.stack = [
        IntegerConv2DTranspose(hyper_filters, 5, 2, hidden, name="deconv_0"),
        IntegerConv2DTranspose(hyper_filters, 5, 2, hidden, name="deconv_1"),
        IntegerConv2DTranspose(outputs, 3, 1, num_scales - 1., rounding="floor",
                               name="deconv_2"),
    ]
    # The exactness bound of the module docstring, for the largest fan-in.
    weight = 2 ** (WEIGHT_BITS - 1) - 1
    inputs = [(SYMBOL_BOUND + 1) * 2 ** INPUT_FRACTION_BITS, hidden, hidden]
    channels = [hyper_filters, hyper_filters, hyper_filters]
    worst = max(int(v) * weight * layer.kernel_size ** 2 * c * 2 ** PRE_SHIFT_BITS
                for v, layer, c in zip(inputs, self.stack, channels))
    if worst >= EXACT_LIMIT:
      raise ValueError(f"hyper_filters={hyper_filters} is too wide for exact integer sums "
                       f"(worst case {worst} ≥ 2^53)")

  def build(self, input_shape):
    shape = tf.TensorShape(input_shape)
    for layer in self.stack:
      with tf.name_scope(layer.name):  # variable names as the float layers': deconv_0/kernel
        layer.build(shape)
      shape = shape[:-1].concatenate([layer.filters])
    super().build(input_shape)

  def _steps(self):
    return [tf.constant(2. ** -INPUT_FRACTION_BITS)] + [
        layer.output_step for layer in self.stack[:-1]]

  @staticmethod
  def _input(symbols, offset, dtype, round_fn):
    """v₀ = clip(k)·2^Q + round(o·2^Q) (INPUT_FRACTION_BITS), in `dtype`."""
    scale = 2. ** INPUT_FRACTION_BITS
    k = tf.clip_by_value(round_fn(tf.cast(symbols, dtype)), -SYMBOL_BOUND, SYMBOL_BOUND)
    o = tf.round(tf.clip_by_value(tf.cast(offset, dtype), -1., 1.) * scale)
    return k * scale + o

  def call(self, symbols, offset):
    """symbols k = round(ẑ − o) (float32, near-integer; straight-through rounded here)
    and the offsets o [channels] -> float32 indices, integer-valued, in
    [0, num_scales − 1] (with `means`: (means, indices))."""
    v = self._input(symbols, offset, tf.float32, _round_ste)
    steps = self._steps()
    for layer, step in zip(self.stack[:-1], steps):
      v = layer(v, step)
    return self._outputs(self.stack[-1](v, steps[-1]), v, steps[-1])

  def exact(self, symbols, offset):
    """Coding: the indices from the frozen integers (see `freeze`), float32 (with
    `means`: (means, indices), the means in float32 from the exact hidden integers)."""
    v = self._input(symbols, offset, tf.float64, tf.round)
    for layer in self.stack[:-1]:
      v = layer.exact(v)
    return self._outputs(tf.cast(self.stack[-1].exact(v), tf.float32),
                         tf.cast(v, tf.float32), self._steps()[-1])

  def _outputs(self, last, hidden, step):
    if not self.means:
      return last
    c, layer = self.latent_channels, self.stack[-1]
    # The float layer's mean half on the dequantised hidden activations Δ·v.
    mean = tf.nn.conv2d_transpose(hidden * step, layer.kernel[:, :, :c],
                                  _shape(hidden, layer.strides, c), layer.strides,
                                  padding="SAME") + layer.bias[:c]
    return mean, last[..., c:]

  def freeze(self):
    """Fixes the integers the coder uses from the current weights (at export)."""
    for layer, step in zip(self.stack, self._steps()):
      layer.freeze(step)

  def calibrate(self, symbols, offset):
    """Sets the hidden layers' steps Δ_l, layer by layer, on a batch of symbols."""
    v = self._input(symbols, offset, tf.float32, tf.round)
    for layer, step in zip(self.stack[:-1], self._steps()):
      layer.calibrate(v, step)
      v = layer(v, step)
