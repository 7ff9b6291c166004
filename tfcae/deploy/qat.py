"""Integer (int8) device encoders built with TF-MOT's quantization-aware graph.

Why not the TFLite converter's own full-integer post-training quantisation: it quantises
the latent tensor y per tensor with step range/255 (≈ 0.24 for a trained N = 64 model),
and that step alone moves latents near a rounding boundary across it (on Kodak 91.5-95.4 %
of the symbols equal the float model's, −0.10 to −0.38 dB; docs/results.md), and no Keras
model reproduces its arithmetic. Here the encoder is rebuilt as a TF-MOT
quantization-aware Keras model in which

* the leading Rescaling(1/255) becomes the input quantisation: range [0, 1], step 1/255,
  so the uint8 input integers are exactly the pixels (no MUL on the device);
* every Conv2D has TF-MOT's default int8 scheme (per-channel symmetric weights,
  per-tensor asymmetric outputs);
* a GDN, `gdn="float"`: keeps its float parameters and quantises only its output (TFLite
  has no integer DIV: it runs in float between DEQUANTIZE and QUANTIZE, as it does after
  PTQ); `gdn="integer"`: |x| (an int8 LEAKY_RELU of slope −1) and its C×C pool Γ, the
  GDN's MACs (an int8 1×1 CONV_2D with bias β), run in int8 and only the division is a
  float island (`_unroll_gdn`; TFLite has no int8 DIV, and its int8 ABS and RSQRT are
  reference kernels XNNPACK does not take, slower than the float island);
* a ChannelSelect (gather, reduced encoders) and a reflection padding keep their input's
  scale;
* a PReLU keeps its float slopes and quantises its output (TF-MOT has no rule for it; the
  converter quantises the slopes into TFLite's int8 PRELU);
* a residual block (CAE-P's bottleneck, `BottleneckBlock`) is unrolled into its
  convolutions with each BatchNorm folded in (inference statistics: W·s, (b − μ)·s + β,
  s = γ/√(σ² + ε)), PReLUs and an Add (TF-MOT's default: output quantised), so that the
  skip connection is an int8 ADD;
* the last convolution's bias absorbs the latent offset o, and its output y − o is
  quantised with the FIXED range [−128, 127] — step 1, zero point 0 — so the int8 latent
  IS round(y − o), the symbol the entropy coder codes: int8 adds no latent quantisation
  beyond the codec's own rounding.

`calibrate` sets the remaining ranges from representative crops (min/max of each layer of
the same graph run in float, as TFLite's calibration does), i.e. this is post-training quantisation; the same
graph can be fine-tuned quantization-aware. Converted with `Optimize.DEFAULT`, the
flatbuffer runs integer kernels with exactly the ranges of the Keras model, so its symbols
equal the Keras model's (the reference) but for rare requantisation-rounding ties.
"""
import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import \
  default_8bit_quantize_registry as _registry8
from tensorflow_model_optimization.python.core.quantization.keras.quantize_layer import \
  QuantizeLayer

from tfcae import TfcaeError
from tfcae.models.caep import BottleneckBlock, ReflectionPad
from tfcae.nn import layers as tfcae_layers

__all__ = ["GDN_MODES", "OutputQuantizeConfig", "PassThroughQuantizeConfig",
           "SymbolQuantizeConfig", "GDNPool", "GDNNormalize", "SCOPE", "IntegerEncoder",
           "integer_encoder", "NARROWEST_KERNEL_RANGE", "widen_narrow_kernel_ranges",
           "calibrate", "fine_tune"]

_qkeras = tfmot.quantization.keras
_quantizers = _qkeras.quantizers


class OutputQuantizeConfig(_qkeras.QuantizeConfig):
  """Quantises a layer's output only; its parameters and internals stay float (GDN)."""

  def get_weights_and_quantizers(self, layer):
    return []

  def get_activations_and_quantizers(self, layer):
    return []

  def set_quantize_weights(self, layer, quantize_weights):
    pass

  def set_quantize_activations(self, layer, quantize_activations):
    pass

  def get_output_quantizers(self, layer):
    return [_quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                               narrow_range=False)]

  def get_config(self):
    return {}


class PassThroughQuantizeConfig(OutputQuantizeConfig):
  """No quantiser: a gather (ChannelSelect) keeps its int8 input's scale."""

  def get_output_quantizers(self, layer):
    return []


class SymbolQuantizeConfig(_registry8.Default8BitConvQuantizeConfig):
  """The last convolution: TF-MOT's default per-channel int8 weights, and its output
  y − o quantised with the fixed range [−128, 127] (step 1): the symbols."""

  def __init__(self):
    super().__init__(["kernel"], ["activation"], False)

  def get_activations_and_quantizers(self, layer):
    return [(layer.activation, _quantizers.FixedQuantizer(8, -128., 127., False))]

  def get_config(self):
    return {}


# How an int8 encoder's GDNs run (see the module docstring).
GDN_MODES = ("float", "integer")


@tf.keras.utils.register_keras_serializable(package="tfcae")
class GDNPool(tf.keras.layers.Layer):
  """A GDN's pool input |x|^α (α ∈ {1, 2}) in ops XNNPACK runs in int8: |x| as a
  LeakyReLU of slope −1 (TFLite's int8 ABS is a reference kernel, ≈ 8× slower), x² as
  a MUL."""

  def __init__(self, alpha=1., **kwargs):
    super().__init__(**kwargs)
    self.alpha = float(alpha)

  def get_config(self):
    return dict(super().get_config(), alpha=self.alpha)

  def call(self, x):
    return tf.nn.leaky_relu(x, alpha=-1.) if self.alpha == 1. else x * x


@tf.keras.utils.register_keras_serializable(package="tfcae")
class GDNNormalize(tf.keras.layers.Layer):
  """x / n^ε (ε ∈ {½, 1}) of a GDN's input x and pool n = β + Γᵀ·pool (float on the device:
  TFLite has no integer DIV, and its int8 RSQRT is a slow reference kernel)."""

  def __init__(self, epsilon=1., **kwargs):
    super().__init__(**kwargs)
    self.epsilon = float(epsilon)

  def get_config(self):
    return dict(super().get_config(), epsilon=self.epsilon)

  def call(self, inputs):
    x, norm = inputs
    return x / norm if self.epsilon == 1. else x * tf.math.rsqrt(norm)


SCOPE = {"OutputQuantizeConfig": OutputQuantizeConfig, "GDNPool": GDNPool,
         "GDNNormalize": GDNNormalize,
         "PassThroughQuantizeConfig": PassThroughQuantizeConfig,
         "SymbolQuantizeConfig": SymbolQuantizeConfig, "GDN": tfcae_layers.GDN,
         "ReflectionPad": ReflectionPad}


class IntegerEncoder:
  """An encoder as (TF-MOT quantization-aware Keras model, float tail).

  `quantized`: scaled pixels s·x (s = the encoder's leading Rescaling, 1/255) ->
  round(y − o) of the computed latent channels, as fake-quantised floats. `insert`: a
  reduced encoder's ChannelInsert (its constant latent channels), applied in float after
  it, else None. `symbols(image)` (pixels in [0, 255]) is the reference the flatbuffer's
  symbols are compared with; the flatbuffer is converted from `scaled_symbols` (its uint8
  input has scale s: the integers are the pixels). `latents` are ŷ = symbols + o.
  `probe`: the same graph in float, returning {quantised layer name: its output} (what
  `calibrate` measures).
  """

  def __init__(self, quantized, insert, offset, kept_offset, input_scale, probe):
    self.quantized = quantized
    self.probe = probe
    self.insert = insert
    self.offset = tf.constant(offset, tf.float32)
    self.kept_offset = tf.constant(kept_offset, tf.float32)
    self.input_scale = float(input_scale)

  def latents(self, image, training=False):
    y = self.quantized(image * self.input_scale, training=training) + self.kept_offset
    return self.insert(y) if self.insert is not None else y

  def scaled_symbols(self, scaled):
    if self.insert is None:  # the int8 output is the symbol already
      return tf.cast(tf.round(self.quantized(scaled, training=False)), tf.int32)
    y = self.insert(self.quantized(scaled, training=False) + self.kept_offset)
    return tf.cast(tf.round(y - self.offset), tf.int32)

  def symbols(self, image):
    return self.scaled_symbols(image * self.input_scale)


def _clone(layer):
  return layer.__class__.from_config(layer.get_config())


def _trainable_gdn(layer):
  """A serialisable tfcae GDN with the values of `layer` (a reduced encoder's GDN holds
  constant β, γ, which Keras cannot clone): TF-MOT clones every layer from its config."""
  copy = tfcae_layers.GDN(inverse=False, rectify=layer.rectify, name=layer.name,
                          alpha_parameter=float(layer.alpha.numpy()),
                          epsilon_parameter=float(layer.epsilon.numpy()))
  copy.build((None, None, None, int(layer.beta.shape[0])))
  for parameter, value in ((copy.beta_parameter, layer.beta), (copy.gamma_parameter,
                                                               layer.gamma)):
    # tfc.GDNParameter: value = variable² − offset² (above its bound).
    parameter.variable.assign(tf.sqrt(value + parameter.offset ** 2))
  return copy


def integer_encoder(encoder, offset, gdn: str = "integer"):
  """`IntegerEncoder` of a Sequential float encoder (the analysis transform, or its
  reduced rebuild) whose symbols are round(encoder(x) − offset).

  Args:
    encoder: the float encoder (tf.keras.Sequential).
    offset: the latent offset o per latent channel.
    gdn: a GDN_MODES value: "integer" (|x| and the pool in int8, the division in float)
      or "float" (each whole GDN in float between DEQUANTIZE and QUANTIZE).

  Returns:
    An uncalibrated IntegerEncoder (`calibrate` sets its ranges).

  Raises:
    TfcaeError: an unknown `gdn`, or a layer with no quantisation rule.
  """
  if gdn not in GDN_MODES:
    raise TfcaeError(f"unknown int8 GDN mode {gdn!r}; one of {', '.join(GDN_MODES)}")
  from tfcae.deploy.reduction import ChannelInsert, ChannelSelect
  chain = list(encoder.layers)
  offset = np.asarray(offset, np.float32)
  insert, kept_offset = None, offset
  if chain and isinstance(chain[-1], ChannelInsert):
    insert = chain.pop()
    kept_offset = offset[insert.kept]
  if not chain or not isinstance(chain[-1], tf.keras.layers.Conv2D):
    raise TfcaeError("int8 export needs an encoder whose latents come from a Conv2D")
  input_scale = 1.
  if isinstance(chain[0], tf.keras.layers.Rescaling):
    # Absorbed into the input quantisation: range [0, 255·s] in 255 steps, so the uint8
    # input integers are the pixels. (Folding s into the first kernel instead would
    # shrink it 255× and make Adam's steps in fine-tuning 255× too large for it.)
    if chain[0].offset:
      raise TfcaeError(f"{chain[0].name}: a Rescaling with an offset cannot be absorbed")
    input_scale = float(chain.pop(0).scale)
  inputs = tf.keras.Input([None, None, 3], name="image")
  graph = _Graph(inputs)
  for i, layer in enumerate(chain):
    if isinstance(layer, tf.keras.layers.Conv2D):
      weights = [w.numpy() for w in layer.weights]
      if i == len(chain) - 1:
        weights[1] = weights[1] - kept_offset
        graph.add(_clone(layer), SymbolQuantizeConfig(), weights)
      else:
        graph.add(_clone(layer), None, weights)  # TF-MOT's default for Conv2D
    elif isinstance(layer, (ChannelSelect, ReflectionPad)):  # keep the input's scale
      graph.add(_clone(layer), PassThroughQuantizeConfig())
    elif isinstance(layer, tfc.GDN) and not layer.inverse and gdn == "integer":
      _unroll_gdn(graph, layer)
    elif isinstance(layer, tfc.GDN) and not layer.inverse:
      graph.add(_trainable_gdn(layer), OutputQuantizeConfig())  # weights: its own
    elif isinstance(layer, tf.keras.layers.PReLU):
      graph.add(_clone(layer), OutputQuantizeConfig(), [w.numpy() for w in layer.weights])
    elif isinstance(layer, BottleneckBlock):
      _unroll_bottleneck(graph, layer)
    else:
      raise TfcaeError(f"int8 export: no quantisation rule for layer {layer.name} "
                       f"({type(layer).__name__})")
  graph.set_weights()
  with _qkeras.quantize_scope(SCOPE):
    quantized = _qkeras.quantize_apply(tf.keras.Model(inputs, graph.x, name="analysis_int8"))
  probe = tf.keras.Model(inputs, graph.float_outputs, name="analysis_float_probe")
  return IntegerEncoder(quantized, insert, offset, kept_offset, input_scale, probe)


def _unsplat(bias):
  """`bias`, or, when its values are all equal and not zero (e.g. a GDN pool's untrained
  β = 1), a copy with the last one ulp higher: TF 2.14's converter quantises such a
  constant with the first channel's scale for every channel of per-channel weights."""
  bias = np.asarray(bias, np.float32)
  if bias.size < 2 or not np.all(bias == bias.flat[0]) or bias.flat[0] == 0:
    return bias
  bias = bias.copy()
  bias.flat[-1] = np.nextafter(bias.flat[-1], np.float32(np.inf))
  return bias


class _Graph:
  """The encoder rebuilt twice from the same layer copies: annotated for TF-MOT (`x`), and
  in float (`float_outputs`: {"quant_<name>": output}, the names quantize_apply gives)."""

  def __init__(self, inputs):
    self.x = self.float_x = inputs
    self.float_outputs = {}
    self.copies = []

  def add(self, layer, config, weights=(), inputs=None):
    weights = list(weights)
    if isinstance(layer, tf.keras.layers.Conv2D) and len(weights) == 2:
      weights[1] = _unsplat(weights[1])
    annotated = _qkeras.quantize_annotate_layer(layer, config)
    args = inputs if inputs is not None else (self.x, self.float_x)
    self.x = annotated(args[0])
    self.float_x = self.float_outputs["quant_" + layer.name] = layer(args[1])
    self.copies.append((layer, weights))

  def set_weights(self):  # after the calls above have built the copies
    for layer, weights in self.copies:
      if weights:
        layer.set_weights(weights)


def _folded(conv, bn, name):
  """(a Conv2D like `conv` named `name`, its weights with the BatchNorm `bn` folded in)."""
  s = bn.gamma.numpy() / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
  kernel = conv.kernel.numpy() * s
  bias = conv.bias.numpy() if conv.use_bias else 0.
  bias = (bias - bn.moving_mean.numpy()) * s + bn.beta.numpy()
  config = dict(conv.get_config(), name=name, use_bias=True)
  return tf.keras.layers.Conv2D.from_config(config), [kernel, bias.astype(np.float32)]


def _unroll_bottleneck(graph, block):
  """BottleneckBlock.call, in layers TF-MOT can quantise (see the module docstring)."""
  name = block.name
  skip, float_skip = graph.x, graph.float_x
  for conv, bn, act in ((block.conv1, block.bn1, block.act1), (block.conv2, block.bn2,
                                                                block.act2)):
    if conv is block.conv2:
      graph.add(ReflectionPad(block.pad2.pad, name=f"{name}_pad2"),
                PassThroughQuantizeConfig())
    folded, weights = _folded(conv, bn, f"{name}_{conv.name}")
    graph.add(folded, None, weights)
    graph.add(_clone_named(act, f"{name}_{act.name}"), OutputQuantizeConfig(),
              [w.numpy() for w in act.weights])
  conv3, weights = _folded(block.conv3, block.bn3, f"{name}_conv3")
  graph.add(conv3, None, weights)
  add = tf.keras.layers.Add(name=f"{name}_add")
  graph.add(add, None, (), inputs=([skip, graph.x], [float_skip, graph.float_x]))
  graph.add(_clone_named(block.act3, f"{name}_{block.act3.name}"), OutputQuantizeConfig(),
            [w.numpy() for w in block.act3.weights])


def _unroll_gdn(graph, layer):
  """A GDN y = x / (β + Γᵀ·|x|^α)^ε (α ∈ {1, 2}, ε ∈ {½, 1}) with its C×C pool in int8:
  the pool |x|^α, the 1×1 convolution with kernel Γ and bias β (TF-MOT's int8
  convolution: the GDN's MACs) and the normalisation x / n^ε (float), each output
  quantised."""
  alpha, epsilon = float(layer.alpha.numpy()), float(layer.epsilon.numpy())
  if layer.rectify or alpha not in (1., 2.) or epsilon not in (.5, 1.):
    raise TfcaeError(f"int8 export with an integer GDN: GDN {layer.name} has "
                     f"α = {alpha:g}, ε = {epsilon:g}{', rectify' if layer.rectify else ''}; "
                     "only α ∈ {1, 2}, ε ∈ {0.5, 1} have an integer form")
  name = layer.name
  channels = int(layer.beta.shape[0])
  x, float_x = graph.x, graph.float_x
  graph.add(GDNPool(alpha, name=f"{name}_pool"), OutputQuantizeConfig())
  # n_k = β_k + Σ_j γ_jk |x_j|^α: tfc.GDN's γ is the 1×1 kernel [C_in, C_out] as it is.
  graph.add(tf.keras.layers.Conv2D(channels, 1, name=f"{name}_gamma"), None,
            [layer.gamma.numpy().reshape(1, 1, channels, channels), layer.beta.numpy()])
  graph.add(GDNNormalize(epsilon, name=f"{name}_normalize"), OutputQuantizeConfig(),
            inputs=([x, graph.x], [float_x, graph.float_x]))


def _clone_named(layer, name):
  return layer.__class__.from_config(dict(layer.get_config(), name=name))


def _range_variables(layer):
  """(min, max) variables of a layer's activation, output or input quantiser, or None.

  Names: <layer>/post_activation_min, <layer>/output_min, <layer>/<layer>_min (the input
  QuantizeLayer, whose name gets a suffix when a graph holds several); kernel_min/max
  are the weights' and are left alone."""
  found = {}
  for v in layer.weights:
    base = v.name.split("/")[-1].split(":")[0]
    if not base.startswith("kernel_"):
      for kind in ("min", "max"):
        if base.endswith("_" + kind):
          found[kind] = v
  return (found["min"], found["max"]) if len(found) == 2 else None


# A per-channel weight range narrower than the layer's widest by more than this factor is
# widened to it (widen_narrow_kernel_ranges).
NARROWEST_KERNEL_RANGE = 2. ** -8


def widen_narrow_kernel_ranges(model):
  """Gives every output channel's weights a range of at least NARROWEST_KERNEL_RANGE × the
  layer's widest.

  TFLite quantises a bias with the input scale × its channel's weight scale. An all-zero
  filter (a dead one a sparse encoder keeps) has TF-MOT's range [0, 0], a weight scale of
  zero and a garbage bias; a nearly-zero one (a GDN pool channel whose γ sits at its lower
  bound, ≈ 4e-6) has a bias that overflows int32. A range 2⁸ times narrower than the
  widest still quantises such weights finer than the widest channel's by 2⁸, and keeps
  a bias of magnitude b below 2³¹ whenever b < 2³¹ · 2⁻⁸ / 127 · (input scale × widest).
  """
  for layer in model.layers:
    ranges = {v.name.split("/")[-1].split(":")[0]: v for v in layer.weights}
    low, high = ranges.get("kernel_min"), ranges.get("kernel_max")
    if low is None or high is None:
      continue
    extent = np.maximum(-low.numpy(), high.numpy())
    floor = float(np.max(extent)) * NARROWEST_KERNEL_RANGE or 1.
    narrow = extent < floor
    if narrow.any():
      low.assign(np.where(narrow, -floor, low.numpy()))
      high.assign(np.where(narrow, floor, high.numpy()))


def calibrate(integer, images):
  """Sets the ranges of `integer` (from integer_encoder) for inference: the weight ranges
  to the weights' min/max (one training-mode call runs TF-MOT's LastValueQuantizer), every
  activation range to the min/max that its layer reaches in float (`integer.probe`) on
  `images` (float32 [1, h, w, 3] crops; TFLite's calibration rule), and the input range to
  [0, 255·s] (step s: uint8 pixels are quantised exactly)."""
  if not images:
    raise TfcaeError("int8 calibration needs representative images")
  model = integer.quantized
  model(tf.constant(images[0], tf.float32) * integer.input_scale, training=True)
  low, high = {}, {}
  for image in images:
    outputs = integer.probe(tf.constant(image, tf.float32) * integer.input_scale)
    for name, x in outputs.items():
      low[name] = min(low.get(name, 0.), float(tf.reduce_min(x)))
      high[name] = max(high.get(name, 0.), float(tf.reduce_max(x)))
  for layer in model.layers:
    variables = _range_variables(layer)
    if variables is not None:
      is_input = isinstance(layer, QuantizeLayer)
      variables[0].assign(0. if is_input else low[layer.name])
      variables[1].assign(255. * integer.input_scale if is_input else high[layer.name])
  widen_narrow_kernel_ranges(model)


def fine_tune(integer, model, files, steps, lmbda, distortion="mse", learning_rate=1e-5,
              patch_size=128, batch_size=8, seed=0, verbose=1):
  """Quantization-aware training of the int8 encoder's weights (TF-MOT's fake quantisers
  with straight-through gradients), decoder and entropy model fixed: the server's
  SavedModel decodes what the fine-tuned device encoder writes.

  Loss R + λ·D on what the codec really does: ŷ = symbols + o (the int8 latent, step 1),
  rate: what the host codes ŷ to (the model's latent codec at `training=False`: the prior's
  information content, with the side information a hyperprior's host derives from ŷ), D
  between the crops and synthesis of what the host's file decodes to (ŷ itself, or for
  the mean-scale hyperprior round(ŷ − μ) + μ), straight-through. Returns the last step's
  logs.
  """
  from tfcae.data import images as data
  from tfcae.objectives.terms import StepContext, rate_distortion
  codec = model.latent_codec()
  if steps <= 0:
    raise TfcaeError("--qat_steps must be positive")
  objective = rate_distortion(lmbda, distortion)
  optimizer = tf.keras.optimizers.Adam(learning_rate)
  variables = integer.quantized.trainable_variables

  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      y_hat = integer.latents(x, training=True)  # symbols + o, straight-through
      outputs = codec.forward(y_hat, training=False)
      # The synthesis sees what the file decodes to (the codec's rounding: the identity on
      # ŷ but for the mean-scale re-centring), with ŷ's gradient (the rounding has none).
      decoded = y_hat + tf.stop_gradient(outputs["y_hat"] - y_hat)
      outputs = dict(outputs, x_hat=model.decode(decoded), y=y_hat, y_hat=decoded)
      loss, logs = objective(StepContext(model, x, outputs, training=False))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return logs

  progress = tf.keras.utils.Progbar(steps, verbose=verbose, unit_name="step")
  batches = iter(data.train_dataset(files, patch_size, batch_size, seed))
  for i in range(steps):
    logs = {k: float(v) for k, v in step(next(batches)).items()}
    if not np.isfinite(logs["loss"]):
      raise TfcaeError(f"quantization-aware fine-tuning diverged at step {i + 1}")
    progress.update(i + 1, list(logs.items()))
  widen_narrow_kernel_ranges(integer.quantized)  # training steps re-measured the ranges
  return logs
