"""Double descent: training a sparse encoder (Gille, Guyard, Antonini & Barlaud, Algorithm 2).

    1. first descent    train; project the chosen encoder kernels onto an ℓ1 / ℓ1,1 / ℓ1,∞
                        ball after every step ("step"), after every epoch ("epoch") or once
                        at the end ("end") — the literature uses all three;
    2. mask             project once more and keep M0 = (W != 0) (for a whole dead filter
                        also its bias, so that its output channel is exactly zero and the
                        filter can be removed physically, tfcae.deploy.reduction);
    3. rewind           every trainable weight back to its value at the start of training
                        (the saved "initial weights"; with --init_from, the warm start),
                        masked: W ← W0 ⊙ M0; and a fresh optimizer (Adam's moments and
                        step counter reset, so the learning-rate schedule restarts too);
    4. second descent   train with masked gradients AND the mask re-applied to the weights
                        after every step, so momentum cannot revive pruned weights.

All of it is one `TrainingHook` (docs/design.md, "The objective seam"): masks,
initial weights, the phase and the per-layer radii are variables of the hook, hence in
the model's checkpoint, and a run killed in either descent resumes where it was.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from tfcae.methods import constraints as constraints_lib
from tfcae.methods.registry import METHODS, Method
from tfcae.objectives.terms import TrainingHook
from tfcae.registry import setting

__all__ = ["SparsitySettings", "DoubleDescentMethod", "CONSTRAINTS", "PROJECT_EVERY", "make_constraint", "DoubleDescent"]

CONSTRAINTS = {"l1": constraints_lib.L1Ball, "l11": constraints_lib.L11Ball,
               "l1inf": constraints_lib.L1InfBall}
PROJECT_EVERY = ("step", "epoch", "end")
FIRST, SECOND = 1, 2


def make_constraint(name: str, groups: str, radius: float) -> tf.keras.constraints.Constraint:
  """A ball constraint with an absolute radius (the hook fixes radii once, see build).

  Args:
    name: a key of CONSTRAINTS: "l1", "l11" or "l1inf".
    groups: one of tfcae.methods.constraints.GROUPINGS.
    radius: the absolute radius, >= 0.

  Returns:
    The L1Ball, L11Ball or L1InfBall (with its exact projection) constraint.

  Raises:
    ValueError: an unknown constraint or grouping, or a negative radius.
  """
  if name not in CONSTRAINTS:
    raise ValueError(f"unknown constraint {name!r}; expected one of {sorted(CONSTRAINTS)}")
  return CONSTRAINTS[name](radius=radius, groups=groups)


class DoubleDescent(TrainingHook):
  """Gille et al., Algorithm 2, as a training hook.

  Args:
    constraint: "l1", "l11" or "l1inf".
    groups: how a kernel is viewed as groups (tfcae.methods.constraints): "output_filters",
      "input_channels" or "kernel_positions".
    radius: the ball's radius, absolute, or (relative=True) as a fraction of each layer's
      norm at the start of training. Either way it is fixed once per layer when the hook
      is built and stored (a relative radius re-evaluated at every projection would
      shrink the kernel geometrically, step after step).
    layers: names of the encoder layers whose kernels are constrained (an empty tuple: all
      encoder layers with a kernel).
    first_descent_epochs: epochs of the first descent; the switch happens at its end.
    relative: read `radius` as a fraction of each layer's norm.
    project_every: "step", "epoch" or "end" (during the first descent).
    prune_biases: also mask the bias of every filter whose kernel is entirely zero.
    name: the module's name.

  Raises:
    ValueError: an unknown constraint, grouping or project_every, a negative radius, or
      no epoch for the first descent.
  """

  def __init__(self, constraint: str = "l11", groups: str = "output_filters",
               radius: float = 0.2, relative: bool = True, layers: Sequence[str] = (),
               first_descent_epochs: int = 1, project_every: str = "step",
               prune_biases: bool = True, name: str = "double_descent"):
    super().__init__(name=name)
    if constraint not in CONSTRAINTS:
      raise ValueError(f"unknown constraint {constraint!r}; expected one of "
                       f"{sorted(CONSTRAINTS)}")
    if project_every not in PROJECT_EVERY:
      raise ValueError(f"project_every must be one of {PROJECT_EVERY}, got {project_every!r}")
    if not radius >= 0:
      raise ValueError(f"the radius must be >= 0, got {radius}")
    if first_descent_epochs < 1:
      raise ValueError("the first descent needs at least one epoch")
    make_constraint(constraint, groups, 1.)  # validates the grouping early
    self.constraint_name = constraint
    self.groups = groups
    self.radius = float(radius)
    self.relative = bool(relative)
    self.layer_names = tuple(layers)
    self.first_descent_epochs = int(first_descent_epochs)
    self.project_every = project_every
    self.prune_biases = bool(prune_biases)
    self._built = False

  # --- set-up -------------------------------------------------------------------------
  def build(self, model: tf.keras.Model) -> None:
    """Creates the hook's state from the model's current (initial) weights.

    Called by CompressionModel.compile(), i.e. before a checkpoint is restored: on resume
    the restored values replace these.

    Args:
      model: the compression model (its `encoder_layers()` are constrained).

    Raises:
      ValueError: a layer named in `layers` is not an encoder layer with a kernel.
    """
    if self._built:
      return
    layers = [l for l in model.encoder_layers() if getattr(l, "kernel", None) is not None]
    if self.layer_names:
      by_name = {l.name: l for l in layers}
      missing = [n for n in self.layer_names if n not in by_name]
      if missing:
        raise ValueError(f"no encoder layer with a kernel named {missing}; encoder layers "
                         f"with kernels: {sorted(by_name)}")
      layers = [by_name[n] for n in self.layer_names]
    self._layer_order = [l.name for l in layers]
    self.phase = tf.Variable(FIRST, trainable=False, dtype=tf.int64, name="phase")
    radii = []
    for layer in layers:
      if self.relative:
        probe = make_constraint(self.constraint_name, self.groups, 1.)
        radii.append(self.radius * float(probe.norm(layer.kernel)))
      else:
        radii.append(self.radius)
    self.radii = tf.Variable(np.array(radii, np.float64), trainable=False, name="radii")
    self.kernel_masks = [tf.Variable(tf.ones_like(l.kernel), trainable=False,
                                     name=f"mask_{l.name}_kernel") for l in layers]
    self.bias_masks = [tf.Variable(tf.ones_like(l.bias), trainable=False,
                                   name=f"mask_{l.name}_bias")
                       if getattr(l, "bias", None) is not None else None for l in layers]
    self.initial_weights = [tf.Variable(v, trainable=False, name="initial")
                            for v in model.trainable_variables]
    self._built = True

  def _layers(self, model):
    by_name = {l.name: l for l in model.encoder_layers()}
    return [by_name[n] for n in self._layer_order]

  def _masked_pairs(self, model):
    """(variable, mask) for every masked kernel and bias."""
    pairs = []
    for layer, kmask, bmask in zip(self._layers(model), self.kernel_masks, self.bias_masks):
      pairs.append((layer.kernel, kmask))
      if bmask is not None:
        pairs.append((layer.bias, bmask))
    return pairs

  def _constraints(self):
    radii = self.radii.numpy()
    return [make_constraint(self.constraint_name, self.groups, float(r)) for r in radii]

  # --- the seam -----------------------------------------------------------------------
  def transform_gradients(self, model: tf.keras.Model, gradients: list[tf.Tensor | None],
                          variables: Sequence[tf.Variable]) -> list[tf.Tensor | None]:
    # Masks are all ones during the first descent, so this is a no-op there.
    masks = {id(v): m for v, m in self._masked_pairs(model)}
    return [g * masks[id(v)] if (g is not None and id(v) in masks) else g
            for g, v in zip(gradients, variables)]

  def after_apply(self, model: tf.keras.Model, ctx: Any) -> dict[str, tf.Tensor]:
    pairs = self._masked_pairs(model)
    for variable, mask in pairs:
      variable.assign(variable * mask)
    if self.project_every == "step":
      kernels = [l.kernel for l in self._layers(model)]
      projections = self._graph_projections(kernels)

      def project():
        for kernel, projection in zip(kernels, projections):
          kernel.assign(projection())
        return tf.constant(True)

      tf.cond(tf.equal(self.phase, FIRST), project, lambda: tf.constant(False))
    return {"encoder_sparsity": self._zero_fraction(model),
            "phase": tf.cast(self.phase, tf.float32)}

  def _graph_projections(self, kernels):
    # Radii are read inside the graph (not baked in at trace time), so a resumed run uses
    # the restored values.
    out = []
    for i, kernel in enumerate(kernels):
      def projection(kernel=kernel, i=i):
        constraint = make_constraint(self.constraint_name, self.groups, 1.)
        return constraint.project(kernel, self.radii[i])
      out.append(projection)
    return out

  def _zero_fraction(self, model):
    kernels = [l.kernel for l in self._layers(model)]
    zeros = tf.add_n([tf.reduce_sum(tf.cast(tf.equal(k, 0.), tf.float32)) for k in kernels])
    total = float(sum(int(np.prod(k.shape)) for k in kernels))
    return zeros / total

  def on_epoch_end(self, model: tf.keras.Model, epoch: int, logs: dict[str, Any]) -> None:
    if int(self.phase.numpy()) != FIRST:
      return
    if self.project_every == "epoch":
      self.project(model)
    if epoch + 1 >= self.first_descent_epochs:
      self.start_second_descent(model)
      print(f"Double descent: end of the first descent (epoch {epoch + 1}); mask kept "
            f"{1. - float(self._zero_fraction(model)):.1%} of the constrained encoder weights; "
            "weights rewound, optimizer reset, second descent starts.", flush=True)

  def project(self, model: tf.keras.Model) -> None:
    """Projects every constrained kernel onto its ball (eagerly).

    Args:
      model: the model the hook was built for.
    """
    for layer, constraint in zip(self._layers(model), self._constraints()):
      layer.kernel.assign(constraint(layer.kernel))

  def start_second_descent(self, model: tf.keras.Model) -> None:
    """Steps 2-3 of Algorithm 2: final projection, mask M0, rewind (masked), fresh
    optimizer (its variables zeroed), and the phase set to the second descent.

    Args:
      model: the model the hook was built for.
    """
    self.project(model)
    for layer, kmask, bmask in zip(self._layers(model), self.kernel_masks, self.bias_masks):
      kernel = layer.kernel.numpy()
      kmask.assign(tf.cast(kernel != 0, kmask.dtype))
      if bmask is not None and self.prune_biases:
        dead = np.all(kernel == 0, axis=tuple(range(kernel.ndim - 1)))
        bmask.assign(tf.cast(~dead, bmask.dtype))
    for variable, initial in zip(model.trainable_variables, self.initial_weights):
      variable.assign(initial)
    for variable, mask in self._masked_pairs(model):
      variable.assign(variable * mask)
    if model.optimizer is not None:
      for variable in model.optimizer.variables:
        variable.assign(tf.zeros_like(variable))
    self.phase.assign(SECOND)

  def log_names(self) -> list[str]:
    return ["encoder_sparsity", "phase"]

  def get_config(self) -> dict[str, Any]:
    return dict(super().get_config(), constraint=self.constraint_name, groups=self.groups,
                radius=self.radius, relative=self.relative, layers=list(self.layer_names),
                first_descent_epochs=self.first_descent_epochs,
                project_every=self.project_every, prune_biases=self.prune_biases)


@dataclasses.dataclass
class SparsitySettings:
  """The flags of weight sparsity by double descent."""
  sparsity_constraint: str = setting("none", "Double descent (Gille et al., Algorithm 2) with "
                                     "the encoder kernels projected onto this ball; none "
                                     "trains dense.", ("none", "l1", "l11", "l1inf"))
  sparsity_groups: str = setting("output_filters", "How a kernel is split into groups for "
                                 "l11/l1inf (l1 ignores it).",
                                 ("output_filters", "input_channels", "kernel_positions"))
  sparsity_radius: float = setting(0.2, "Radius of the ball, per layer: a fraction of the "
                                   "layer's norm at the start of training (fixed then), or "
                                   "absolute with --nosparsity_relative_radius.")
  sparsity_relative_radius: bool = setting(True, "Read --sparsity_radius as relative.")
  sparsity_layers: str = setting("", "Comma-separated encoder layers to constrain (e.g. "
                                 "conv_0,conv_1); empty: every encoder layer with a kernel.")
  first_descent_epochs: int = setting(1, "Epochs of the first descent; the rest of --epochs "
                                      "is the masked second descent.")
  project_every: str = setting("step", "When the first descent projects.",
                               ("step", "epoch", "end"))


@METHODS.register
class DoubleDescentMethod(Method):
  """Structured weight sparsity of the encoder: the DoubleDescent hook (projections in the
  first descent, masks in the second; Gille et al., Algorithm 2)."""

  name = "double_descent"
  settings = SparsitySettings

  @classmethod
  def enabled(cls, config: Any) -> bool:
    return config.sparsity_constraint != "none"

  @classmethod
  def validate(cls, config: Any) -> None:
    if cls.enabled(config) and not 1 <= config.first_descent_epochs < config.epochs:
      raise ValueError("--first_descent_epochs must leave at least one epoch of --epochs "
                       "for the second descent")
    if config.sparsity_radius < 0:
      raise ValueError("--sparsity_radius must be >= 0")

  @classmethod
  def parts(cls, config: Any) -> tuple[list, list[TrainingHook]]:
    return [], [DoubleDescent(
        config.sparsity_constraint, config.sparsity_groups, config.sparsity_radius,
        relative=config.sparsity_relative_radius,
        layers=[n for n in config.sparsity_layers.split(",") if n],
        first_descent_epochs=config.first_descent_epochs,
        project_every=config.project_every)]
