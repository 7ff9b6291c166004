"""Physical channel removal: turn the encoder's structured zeros into a smaller network.

Gille, Guyard, Antonini & Barlaud ("Learning sparse auto-encoders for green AI image
coding", Table I) count the multiply-accumulates saved by filters that a structured
(ℓ1,1 / ℓ1,∞) projection zeroes. Zeros only save time once the layers are rebuilt without
them: TFLite/XNNPACK and TF's CPU kernels do not skip zero weights of strided
convolutions. `reduce_encoder(model)` rebuilds the analysis transform with dead filters,
GDN rows/columns and input channels physically removed; the reduced encoder gives the
same latents (up to float summation order) and, through `ReducedCompressor`, the same
bitstream as `model.compress`.

The analysis transform is a chain  Rescaling → conv → GDN → conv → … → GDN → conv (the
last conv gives the latents y). Rules, layer by layer (dead filter o: kernel[..., o] == 0;
its output is the constant a(b_o), a = the conv's activation, b_o its bias):

* Zero channels. A dead filter with a(b_o) == 0 outputs x_o ≡ 0, so the GDN's y_o ≡ 0
  and x_o adds nothing to other channels' denominators. Filter o, GDN row/column o and
  the next conv's input channel o are removed.
* Constant channels inside the chain. A dead filter with a(b_o) = c ≠ 0 gives x_o ≡ c,
  but the GDN output y_o = c / (β_o + Σ_j γ_jo |x_j|) depends on the other channels: it
  is not constant, so it cannot be folded into the next conv. Such a filter is kept
  ("dead but not removable") whenever the next conv reads channel o. When the next conv
  does not read it (its input channel o is dead too), x_o is only a constant term
  γ_oi |c| of the other channels' denominators, which is folded into β_i and the channel
  removed. (Folding a constant channel into a following conv's bias would also be wrong
  at the image border: `padding="same"` pads with zeros, not with the constant.)
* Dead input channels. An input channel i of a conv whose weights are all zero (for the
  kept filters) is dropped from its kernel. If the previous GDN still has to compute
  channel i (its x_i feeds other channels' denominators through γ), a fixed
  `ChannelSelect` (a gather) sits between the GDN and the conv. Dead input channels of
  the first conv (R, G or B) are dropped the same way.
* Latent channels. A dead filter of the last conv gives a constant latent channel y_o ≡
  b_o. The reduced encoder computes only the live latent channels and `ChannelInsert`
  (concat with the constants + a fixed gather) restores the full latent tensor, so the
  entropy coder sees the same y and writes the same bits.

`plan_reduction` computes what is kept (also used by `tfcae.analysis.accounting` for the MACCs
after structured removal); `reduce_encoder` builds the Keras model from the plan. All
layers are builtin Keras / TFC layers with constant parameters (plus two gather layers),
so the reduced encoder also converts to TFLite.
"""
import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tfcae.io import bitstream
from tfcae.models.base import edge_pad

__all__ = ["ChannelSelect", "ChannelInsert", "LayerPlan", "can_reduce", "plan_reduction",
           "reduce_encoder", "ReducedCompressor"]


@tf.keras.utils.register_keras_serializable(package="tfcae")
class ChannelSelect(tf.keras.layers.Layer):
  """Keeps the channels `indices` (fixed) of a [..., C] tensor, in that order."""

  def __init__(self, indices, **kwargs):
    super().__init__(**kwargs)
    self.indices = [int(i) for i in indices]

  def call(self, x):
    return tf.gather(x, self.indices, axis=-1)

  def get_config(self):
    return dict(super().get_config(), indices=self.indices)


@tf.keras.utils.register_keras_serializable(package="tfcae")
class ChannelInsert(tf.keras.layers.Layer):
  """Re-inserts constant channels: [..., K] computed channels -> [..., C] (K + constants).

  `kept[k]` is the output channel of computed channel k; `constants` maps every other
  output channel to its (constant) value.
  """

  def __init__(self, num_channels, kept, constants, **kwargs):
    super().__init__(**kwargs)
    self.num_channels = int(num_channels)
    self.kept = [int(i) for i in kept]
    self.constants = {int(k): float(v) for k, v in dict(constants).items()}
    const_channels = sorted(self.constants)
    if sorted(self.kept + const_channels) != list(range(self.num_channels)):
      raise ValueError("kept and constant channels must partition range(num_channels)")
    self._const_channels = const_channels
    # Position of output channel c in concat([computed, constants]).
    position = {c: k for k, c in enumerate(self.kept)}
    position.update({c: len(self.kept) + k for k, c in enumerate(const_channels)})
    self._order = [position[c] for c in range(self.num_channels)]

  def call(self, x):
    if not self._const_channels:
      return tf.gather(x, self._order, axis=-1)
    values = tf.constant([self.constants[c] for c in self._const_channels], x.dtype)
    # ones_like(x[..., :1]) * values broadcasts the constants over batch and space.
    constant_maps = tf.ones_like(x[..., :1]) * values
    return tf.gather(tf.concat([x, constant_maps], axis=-1), self._order, axis=-1)

  def get_config(self):
    return dict(super().get_config(), num_channels=self.num_channels, kept=self.kept,
                constants={str(k): v for k, v in self.constants.items()})


@dataclasses.dataclass
class LayerPlan:
  """What the reduced encoder keeps of one layer of the analysis transform.

  kind: "conv", "gdn" or "other" (elementwise, e.g. Rescaling). For a conv, `keep_in` /
  `keep_out` are the kept input / output channels (sorted indices into the original
  ones); for a GDN both are its kept channels. `select_before` is set when a
  ChannelSelect must pick `keep_in` out of the previous layer's (kept) outputs.
  `dead_filters` are all filters with a zero kernel; `dead_kept` those that must still
  be computed (constant x through GDN, see the module doc); `constant_outputs`, for the
  last conv, maps removed latent channels to their constant value; `beta_fold` (GDN) the
  amount added to β of each kept channel by folded constant channels.
  """
  name: str
  kind: str
  in_channels: int = 0
  out_channels: int = 0
  keep_in: list = dataclasses.field(default_factory=list)
  keep_out: list = dataclasses.field(default_factory=list)
  select_before: bool = False
  dead_filters: list = dataclasses.field(default_factory=list)
  dead_kept: list = dataclasses.field(default_factory=list)
  zero_outputs: list = dataclasses.field(default_factory=list)
  constant_outputs: dict = dataclasses.field(default_factory=dict)
  folded: list = dataclasses.field(default_factory=list)
  beta_fold: object = None


def _is_conv(layer):
  return isinstance(layer, tf.keras.layers.Conv2D) and not isinstance(
      layer, tf.keras.layers.Conv2DTranspose)


def _is_gdn(layer):
  return isinstance(layer, tfc.GDN)


def _check_chain(layers):
  convs = [l for l in layers if _is_conv(l)]
  if not convs or not _is_conv(layers[-1]):
    raise ValueError("expected an analysis transform ending with a Conv2D")
  for layer in layers:
    if _is_gdn(layer):
      if layer.inverse or layer.data_format != "channels_last":
        raise ValueError(f"{layer.name}: only forward channels_last GDN can be reduced")
      if callable(layer.alpha_parameter) or callable(layer.epsilon_parameter):
        raise ValueError(f"{layer.name}: trainable alpha/epsilon are not supported")
    elif _is_conv(layer):
      if layer.data_format != "channels_last" or layer.groups != 1:
        raise ValueError(f"{layer.name}: only channels_last, ungrouped Conv2D")
    elif not isinstance(layer, tf.keras.layers.Rescaling) or layer is not layers[0]:
      raise ValueError(f"{layer.name}: cannot reduce a {type(layer).__name__} layer here "
                       "(only a leading Rescaling, Conv2D and GDN)")


def _gdn_pool(layer, value):
  """What a constant input `value` contributes to GDN's pool (|x|^α, after rectify)."""
  value = np.asarray(value, np.float64)
  if layer.rectify:
    value = np.maximum(value, 0.)
  alpha = float(layer.alpha.numpy())
  return np.abs(value) if alpha == 1. else value ** alpha


def _conv_constants(layer):
  """a(b): the constant output of each filter if it were dead (a = activation)."""
  bias = layer.bias.numpy() if layer.use_bias else np.zeros(layer.filters, np.float32)
  return layer.activation(tf.constant(bias[None], tf.float32)).numpy()[0]


def _analysis_layers(model):
  """The chain to reduce: the analysis transform (the model's y = g_a(x))."""
  return list(model.analysis_transform.layers)


def can_reduce(model):
  """Whether the analysis transform is a chain `reduce_encoder` rebuilds (a leading
  Rescaling, Conv2D and GDN layers), e.g. not CAE-P's residual blocks."""
  try:
    _check_chain(_analysis_layers(model))
  except ValueError:
    return False
  return True


def plan_reduction(model_or_layers):
  """Per-layer LayerPlans for the analysis transform (a model or its list of layers)."""
  layers = (list(model_or_layers) if isinstance(model_or_layers, (list, tuple))
            else _analysis_layers(model_or_layers))
  _check_chain(layers)
  plans = []
  # Forward: channels that are identically zero (dead filter, a(b) == 0) stay zero
  # through GDN (y_o = 0 / (...)).
  zero_channels = set()
  for layer in layers:
    plan = LayerPlan(layer.name, "conv" if _is_conv(layer) else "gdn" if _is_gdn(layer)
                     else "other")
    if _is_conv(layer):
      kernel = layer.kernel.numpy()
      plan.in_channels, plan.out_channels = kernel.shape[2], kernel.shape[3]
      plan.dead_filters = [int(o) for o in np.flatnonzero(~kernel.any(axis=(0, 1, 2)))]
      constants = _conv_constants(layer)
      plan.zero_outputs = [o for o in plan.dead_filters if constants[o] == 0.]
      zero_channels = set(plan.zero_outputs)
    elif _is_gdn(layer):
      plan.in_channels = plan.out_channels = int(layer.beta.shape[0])
      plan.zero_outputs = sorted(zero_channels)
    plans.append(plan)

  # Backward: which channels each layer must produce (`needed`) for the next one.
  needed = None  # None: all outputs of the last conv are needed (the latents)
  for index in range(len(layers) - 1, -1, -1):
    layer, plan = layers[index], plans[index]
    if plan.kind == "other":  # elementwise layers before the first conv: set below
      continue
    if plan.kind == "conv":
      kernel = layer.kernel.numpy()
      constants = _conv_constants(layer)
      dead = set(plan.dead_filters)
      if needed is None:  # last conv: dead latent channels become re-inserted constants
        plan.keep_out = [o for o in range(plan.out_channels) if o not in dead]
        plan.constant_outputs = {o: float(constants[o]) for o in plan.dead_filters}
      else:
        plan.keep_out = sorted(needed)
        plan.dead_kept = [o for o in plan.keep_out if o in dead]
      previous_zero = set(plans[index - 1].zero_outputs) if index > 0 else set()
      used = kernel[..., plan.keep_out].any(axis=(0, 1, 3)) if plan.keep_out else \
          np.zeros(plan.in_channels, bool)
      plan.keep_in = [i for i in range(plan.in_channels) if used[i] and i not in previous_zero]
      needed = set(plan.keep_in)
      continue
    # GDN: outputs needed = the next conv's kept inputs. Inputs needed: those, plus every
    # non-zero channel j whose γ_ji feeds the denominator of a needed channel i.
    gamma = layer.gamma.numpy()  # [j, i]: pool_i = β_i + Σ_j γ_ji |x_j|^α
    conv_plan = plans[index - 1]
    constants = _conv_constants(layers[index - 1])
    zero = set(plan.zero_outputs)
    out_needed = sorted(needed)
    feeds = set()
    if out_needed:
      feeds = {j for j in np.flatnonzero(gamma[:, out_needed].any(axis=1)) if j not in zero}
    dead = set(conv_plan.dead_filters)
    # A constant input that only feeds denominators is folded into β (module doc).
    plan.folded = sorted(j for j in feeds - set(out_needed) if j in dead)
    keep = sorted(set(out_needed) | (feeds - set(plan.folded)))
    beta_fold = np.zeros(len(keep), np.float64)
    for j in plan.folded:
      beta_fold += gamma[j, keep] * _gdn_pool(layer, constants[j])
    plan.beta_fold = beta_fold
    plan.keep_in = plan.keep_out = keep
    next_plan = plans[index + 1]
    next_plan.select_before = next_plan.keep_in != keep
    needed = set(keep)
  # Dead input channels of the first conv (e.g. a colour channel) are selected away
  # right before it; elementwise layers before it see every input channel.
  first = next(p for p in plans if p.kind == "conv")
  first.select_before = first.keep_in != list(range(first.in_channels))
  for plan in plans[:plans.index(first)]:
    plan.keep_in = plan.keep_out = list(range(first.in_channels))
    plan.in_channels = plan.out_channels = first.in_channels
  return plans


def _position(indices, among):
  """Positions of `indices` within the sorted list `among`."""
  where = {c: k for k, c in enumerate(among)}
  return [where[c] for c in indices]


def reduce_encoder(model, name="reduced_analysis"):
  """A Keras model x -> y (same latents as model.analysis_transform) without dead channels.

  Returns (reduced_model, plans). Parameters of the reduced GDNs are constants (the
  values of the trained β, γ; α and ε as they were).
  """
  layers = _analysis_layers(model)
  plans = plan_reduction(layers)
  new_layers = []
  previous_keep = None  # kept outputs of the previous layer (original channel indices)
  for layer, plan in zip(layers, plans):
    if plan.kind == "other":
      new_layers.append(layer.__class__.from_config(layer.get_config()))
      continue
    if plan.kind == "conv":
      if plan.select_before:
        among = previous_keep if previous_keep is not None else list(range(plan.in_channels))
        new_layers.append(ChannelSelect(_position(plan.keep_in, among),
                                        name=f"{layer.name}_select"))
      config = layer.get_config()
      config.update(filters=len(plan.keep_out), kernel_constraint=None, name=layer.name)
      conv = tf.keras.layers.Conv2D.from_config(config)
      conv.build((None, None, None, len(plan.keep_in)))
      kernel = layer.kernel.numpy()[:, :, plan.keep_in][..., plan.keep_out]
      weights = [kernel]
      if layer.use_bias:
        weights.append(layer.bias.numpy()[plan.keep_out])
      conv.set_weights(weights)
      new_layers.append(conv)
      previous_keep = plan.keep_out
      continue
    keep = plan.keep_out
    beta = (layer.beta.numpy().astype(np.float64)[keep] + plan.beta_fold).astype(np.float32)
    gamma = layer.gamma.numpy()[np.ix_(keep, keep)]
    gdn = tfc.GDN(inverse=False, rectify=layer.rectify, name=layer.name,
                  alpha_parameter=float(layer.alpha.numpy()),
                  epsilon_parameter=float(layer.epsilon.numpy()),
                  beta_parameter=tf.constant(beta), gamma_parameter=tf.constant(gamma))
    new_layers.append(gdn)
    previous_keep = keep
  last = plans[-1]
  if last.constant_outputs:
    new_layers.append(ChannelInsert(last.out_channels, last.keep_out, last.constant_outputs,
                                    name="insert_constant_latents"))
  reduced = tf.keras.Sequential(new_layers, name=name)
  reduced.build((None, None, None, plans[0].in_channels))
  return reduced, plans


class ReducedCompressor(tf.Module):
  """`compress` of a model, with its analysis transform replaced by the reduced encoder.

  The model must be prepared for compression (coding tables built). `compress(image)`
  returns the exact bytes `model.compress(image)` returns (same padding, same entropy
  model, same fingerprint), as long as the latents round the same way.
  """

  def __init__(self, model, reduced=None):
    super().__init__(name="reduced_compressor")
    if not model.compression_ready:
      raise ValueError("call model.prepare_for_compression() first")
    self.model = model
    self.reduced = reduced if reduced is not None else reduce_encoder(model)[0]

  @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image")])
  def compress(self, image):
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    x = tf.cast(image, tf.float32)[None]
    x = edge_pad(x, *self.model.padded_shape(height, width))
    strings, index_check = self.model.latent_codec().compress(self.reduced(x))
    return bitstream.pack_tf(self.model.fingerprint, height, width, strings, index_check)
