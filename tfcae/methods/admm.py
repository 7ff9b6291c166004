"""ADMM pruning of the latent code: Zhao & Liao, "CAE-ADMM: implicit bitrate optimization
via ADMM-based pruning in compressive autoencoders" (CAE-P, arXiv:1901.07196).

Instead of an entropy estimator, CAE-P promotes sparsity of the code E(x):

  min_{E, D}  d(x, D(Q(E(x))))   s.t.  card(E(x)) ≤ ℓ,

split with an auxiliary Z (the constrained copy of E(x)) and a scaled dual U, and solved by
ADMM (the paper's three steps):

  (1) train E, D on  d + ρ/2·‖E(x) − Z + U‖²                        (ADMMPenalty, a LossTerm)
  (2) Z ← Π_ℓ(E(x) + U): keep the ℓ largest-magnitude entries, zero the rest
  (3) U ← U + E(x) − Z                                                (ADMMUpdate, a hook)

with (2)–(3) every `period` epochs (paper: 20 epochs, keep 10%). Π_ℓ is the Euclidean
projection onto {z : card(z) ≤ ℓ} (`project_cardinality`). The reference code's mask
compares *sort indices* (np.argsort output) with ℓ instead of ranks, so the entries it
keeps are unrelated to their magnitudes; here the projection is the one the paper states.

Scope of Z and U (`scope`):
  "dataset" (default, the reference code's choice): Z, U have the latent shape of one
    training crop, [h, w, M]; E(x) in steps (2)–(3) is the mean code over all crops seen
    since the last update (accumulated in-graph by `after_apply`). The constraint is thus
    on the *average* code per latent position: positions pruned in Z are pulled to zero
    for every image, which is what makes the quantized code sparse. It needs crops of one
    size (the training patch size). Before the first update there is no Z yet; the first
    update sets Z⁰ = Π_ℓ(mean E(x)) with U⁰ = 0 (as in ADMM weight pruning, Zhang et al.
    2018) and switches the penalty on, so the first period trains the unconstrained model.
  "image": Z is the projection of each image's own code, recomputed every step, and
    U ≡ 0. With random crops a code never recurs, so a per-example dual variable could not
    accumulate; what is left of ADMM is the penalty ρ/2·dist(E(x), card ≤ ℓ)², which pulls
    the smallest (1 − keep)·n entries of every code to zero. No epoch updates.

The penalty is ρ/2 times the *mean* squared entry of E(x) − Z + U (the paper's ‖·‖²
divided by the number of latent elements per image), so ρ does not depend on the crop size
or the latent width. Z, U and the accumulators are tf.Variables owned by the term and the
hook, hence part of the model's checkpoint and restored on resume.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from tfcae.methods.registry import METHODS, Method
from tfcae.objectives.terms import LossTerm, TrainingHook
from tfcae.registry import setting

__all__ = ["AdmmSettings", "AdmmLatentPruning", "SCOPES", "cardinality_mask", "project_cardinality", "keep_count", "ADMMState",
           "ADMMPenalty", "ADMMUpdate", "admm_objective_parts"]

SCOPES = ("dataset", "image")


def cardinality_mask(x: tf.Tensor, k: int | tf.Tensor, per_example: bool = False) -> tf.Tensor:
  """1.0 at the k largest |x| (exactly k positions), 0.0 elsewhere.

  Ties are broken by position (the lower flat index is kept): tf.math.top_k is stable.

  Args:
    x: a floating-point tensor of any shape.
    k: the number of entries kept, 0 ≤ k ≤ the entries (of each example).
    per_example: the first axis indexes examples and each keeps its own k.

  Returns:
    The mask, of x's shape and dtype.

  Raises:
    tf.errors.InvalidArgumentError: k outside [0, number of entries], when it runs.
  """
  x = tf.convert_to_tensor(x)
  shape = tf.shape(x)
  flat = tf.reshape(x, [shape[0], -1] if per_example else [1, -1])
  n = tf.shape(flat)[1]
  k = tf.convert_to_tensor(k, tf.int32)
  with tf.control_dependencies([
      tf.debugging.assert_greater_equal(k, 0, message="k must be >= 0"),
      tf.debugging.assert_less_equal(k, n, message="k must be <= the number of entries")]):
    _, indices = tf.math.top_k(tf.abs(flat), k=k, sorted=False)
  # One row per example: mark the top-k columns of each row.
  rows = tf.shape(flat)[0]
  row_ids = tf.repeat(tf.range(rows), k)
  positions = tf.stack([row_ids, tf.reshape(indices, [-1])], axis=1)
  mask = tf.scatter_nd(positions, tf.ones([rows * k], x.dtype), [rows, n])
  return tf.reshape(mask, shape)


def project_cardinality(x: tf.Tensor, k: int | tf.Tensor,
                        per_example: bool = False) -> tf.Tensor:
  """Euclidean projection onto {z : card(z) ≤ k}: keeps the k largest |x|, zeros the rest.

  Args:
    x: a floating-point tensor of any shape.
    k: exactly k entries are kept (0 ≤ k ≤ x.size, or the size of one example); ties in
      |x| are broken by position.
    per_example: project each example (along the first axis) on its own.

  Returns:
    The projection, of x's shape and dtype.

  Raises:
    tf.errors.InvalidArgumentError: k out of range, when it runs.
  """
  x = tf.convert_to_tensor(x)
  return x * cardinality_mask(x, k, per_example)


def keep_count(keep_ratio: float, num_entries: int) -> int:
  """ℓ, the number of entries kept for a keep ratio.

  Args:
    keep_ratio: the fraction of entries kept.
    num_entries: the entries of one code.

  Returns:
    keep_ratio · num_entries rounded to the nearest integer, clipped to [0, num_entries].
  """
  return int(np.clip(round(keep_ratio * num_entries), 0, num_entries))


class ADMMState(tf.Module):
  """Z, U and the running sum of E(x), shared by ADMMPenalty and ADMMUpdate.

  Args:
    latent_shape: the code of one training crop, [h, w, M].
    keep_ratio: the fraction of latent entries the projection keeps, in [0, 1].
    scope: one of SCOPES (see the module docstring); Z, U and the accumulators exist
      only for "dataset".
    name: the module's name.

  Raises:
    ValueError: an unknown scope or a keep ratio outside [0, 1].
  """

  def __init__(self, latent_shape: Sequence[int], keep_ratio: float, scope: str = "dataset",
               name: str = "admm_state"):
    super().__init__(name=name)
    if scope not in SCOPES:
      raise ValueError(f"unknown ADMM scope {scope!r}; expected one of {SCOPES}")
    if not 0. <= keep_ratio <= 1.:
      raise ValueError(f"keep ratio must be in [0, 1], got {keep_ratio}")
    self.latent_shape = tuple(int(d) for d in latent_shape)
    self.keep_ratio = float(keep_ratio)
    self.scope = scope
    self.k = keep_count(keep_ratio, int(np.prod(self.latent_shape)))
    if scope == "dataset":
      zeros = tf.zeros(self.latent_shape)
      self.z = tf.Variable(zeros, trainable=False, name="Z")
      self.u = tf.Variable(zeros, trainable=False, name="U")
      # Sum and count of E(x) since the last update; SUM so replicas' updates add up.
      self.y_sum = tf.Variable(zeros, trainable=False, name="y_sum",
                               aggregation=tf.VariableAggregation.SUM)
      self.count = tf.Variable(0., trainable=False, name="count",
                               aggregation=tf.VariableAggregation.SUM)
      # 0 until the first Z exists (see the module docstring), then 1.
      self.active = tf.Variable(0., trainable=False, name="active")
      self.updates = tf.Variable(0, trainable=False, dtype=tf.int64, name="updates")

  def target(self, y: tf.Tensor) -> tf.Tensor:
    """What the penalty pulls E(x) towards.

    Args:
      y: a batch of codes [B, h, w, M].

    Returns:
      Z − U ("dataset", broadcast over the batch), or each code's own projection
      ("image", a constant for the gradient).
    """
    if self.scope == "image":
      return tf.stop_gradient(project_cardinality(y, self.k, per_example=True))
    return self.z - self.u

  def z_for(self, y: tf.Tensor) -> tf.Tensor:
    """Z for a batch of codes y [B, h, w, M]: the shared Z, or each code's projection."""
    if self.scope == "image":
      return tf.stop_gradient(project_cardinality(y, self.k, per_example=True))
    return self.z

  def get_config(self) -> dict[str, Any]:
    return {"latent_shape": list(self.latent_shape), "keep_ratio": self.keep_ratio,
            "keep_count": self.k, "scope": self.scope}


class ADMMPenalty(LossTerm):
  """ADMM step (1): ρ/2·mean((E(x) − Z + U)²) over ctx["y"] (weight = ρ).

  With the "dataset" scope the penalty is 0 until the first update creates Z.

  Args:
    state: the ADMMState shared with ADMMUpdate.
    rho: ρ.
    name: logged as.
  """

  def __init__(self, state: ADMMState, rho: float, name: str = "admm"):
    super().__init__(weight=rho, name=name)
    self.state = state

  def value(self, ctx: Any) -> tf.Tensor:
    y = ctx["y"]
    residual = y - self.state.target(y)
    penalty = 0.5 * tf.reduce_mean(tf.square(residual))
    if self.state.scope == "dataset":
      penalty *= self.state.active
    return penalty

  def get_config(self) -> dict[str, Any]:
    return dict(super().get_config(), rho=self.weight, **self.state.get_config())


class ADMMUpdate(TrainingHook):
  """ADMM steps (2)–(3) every `period` epochs, and the sparsity logs.

  `after_apply` (in-graph, every step) accumulates the mean code for the "dataset" scope
  and logs `admm_zero_frac` (fraction of zeros in the quantized code ctx["y_hat"]) and
  `admm_y_minus_z` (‖E(x) − Z‖ per image, mean over the batch).

  Args:
    state: the ADMMState shared with ADMMPenalty.
    period: epochs between updates, >= 1.
    name: the module's name.

  Raises:
    ValueError: a period below one epoch.
  """

  def __init__(self, state: ADMMState, period: int, name: str = "admm_update"):
    super().__init__(name=name)
    if period < 1:
      raise ValueError(f"ADMM period must be >= 1 epoch, got {period}")
    self.state = state
    self.period = int(period)

  def after_apply(self, model: tf.keras.Model, ctx: Any) -> dict[str, tf.Tensor]:
    y = tf.stop_gradient(ctx["y"])
    state = self.state
    if state.scope == "dataset":
      state.y_sum.assign_add(tf.reduce_sum(y, axis=0))
      state.count.assign_add(tf.cast(tf.shape(y)[0], tf.float32))
    distance = tf.sqrt(tf.reduce_sum(tf.square(y - state.z_for(y)), axis=[1, 2, 3]))
    zero_frac = tf.reduce_mean(tf.cast(tf.equal(ctx["y_hat"], 0.), tf.float32))
    return {"admm_zero_frac": zero_frac, "admm_y_minus_z": tf.reduce_mean(distance)}

  def update(self) -> None:
    """Steps (2)–(3) from the mean code accumulated since the last update (eager); the
    first update sets Z⁰ and switches the penalty on. A no-op for the "image" scope or
    when nothing was accumulated."""
    state = self.state
    if state.scope != "dataset" or float(state.count.numpy()) == 0.:
      return
    mean_y = state.y_sum / state.count
    if float(state.active.numpy()) == 0.:
      # Z⁰ = Π(mean E(x)), U⁰ = 0: the penalty starts from the unconstrained code.
      state.z.assign(project_cardinality(mean_y, state.k))
      state.active.assign(1.)
    else:
      state.z.assign(project_cardinality(mean_y + state.u, state.k))  # step (2)
      state.u.assign_add(mean_y - state.z)                             # step (3)
    state.updates.assign_add(1)
    state.y_sum.assign(tf.zeros_like(state.y_sum))
    state.count.assign(0.)

  def on_epoch_end(self, model: tf.keras.Model, epoch: int, logs: dict[str, Any]) -> None:
    if (epoch + 1) % self.period == 0:
      self.update()

  def log_names(self) -> list[str]:
    return ["admm_zero_frac", "admm_y_minus_z"]

  def get_config(self) -> dict[str, Any]:
    return dict(super().get_config(), period=self.period, **self.state.get_config())


def admm_objective_parts(latent_shape: Sequence[int], keep_ratio: float, period: int,
                         rho: float, scope: str = "dataset"
                         ) -> tuple[ADMMPenalty, ADMMUpdate]:
  """CAE-P's latent pruning as the objective seam's parts.

  Args:
    latent_shape: the code of one training crop, [h, w, M].
    keep_ratio: the fraction of latent entries kept, in [0, 1].
    period: epochs between the Z/U updates.
    rho: ρ, the penalty's weight.
    scope: one of SCOPES.

  Returns:
    (term, hook), sharing one ADMMState.

  Raises:
    ValueError: an unknown scope, a keep ratio outside [0, 1] or a period below 1.
  """
  state = ADMMState(latent_shape, keep_ratio, scope)
  return ADMMPenalty(state, rho), ADMMUpdate(state, period)


@dataclasses.dataclass
class AdmmSettings:
  """The flags of ADMM pruning of the latent code."""
  admm_keep_ratio: float = setting(0., "ADMM latent pruning (CAE-P): fraction of latent "
                                   "entries kept by the projection; 0 disables ADMM.")
  admm_period: int = setting(20, "Epochs between ADMM Z/U updates (paper: 20).")
  admm_rho: float = setting(1.0, "ADMM ρ: the penalty is ρ/2·mean((E(x) − Z + U)²).")
  admm_scope: str = setting("dataset", "dataset: Z, U per latent position of a crop, from "
                            "the mean code (reference code); image: each code's own "
                            "projection every step, U = 0.", ("dataset", "image"))


@METHODS.register
class AdmmLatentPruning(Method):
  """CAE-P's ADMM latent pruning: the penalty ρ/2·‖E(x) − Z + U‖² and the Z/U updates.

  For caep the Rate term only fits the prior (the model stop-gradients y into it), so the
  transforms see λ·D + ρ/2·‖E(x) − Z + U‖²: only ρ/λ matters to them (Zhao & Liao)."""

  name = "admm"
  settings = AdmmSettings

  @classmethod
  def enabled(cls, config: Any) -> bool:
    return config.admm_keep_ratio > 0

  @classmethod
  def validate(cls, config: Any) -> None:
    if cls.enabled(config) and config.strategy == "multi_worker":
      # Each worker would compute Z and U from its own shard of the data.
      raise ValueError("--strategy=multi_worker cannot run with ADMM latent pruning "
                       "(--admm_keep_ratio)")

  @classmethod
  def parts(cls, config: Any) -> tuple[list[LossTerm], list[TrainingHook]]:
    from tfcae.models import MODELS  # the stride of the architecture
    side = config.patch_size // MODELS[config.architecture].stride  # Z, U: one crop's latent
    latent_shape = (side, side, config.latent_channels or config.num_filters)
    term, hook = admm_objective_parts(latent_shape, config.admm_keep_ratio,
                                      config.admm_period, config.admm_rho, config.admm_scope)
    return [term], [hook]
