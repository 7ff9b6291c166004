"""Distortion-constrained optimization (D-CO) and the hinge baseline.

van Rozendaal, Sautière & Cohen, "Lossy Compression with Distortion Constrained
Optimization" (CVPR-W 2020) train

    min_θ R(θ)   subject to   D(θ) ≤ c_D

instead of R + β·D, through the Lagrangian (their eq. 4, with the constraint normalised)

    L(θ, λ) = R(θ) + λ·(D(θ)/c_D − 1),        λ ≥ 0.

The model parameters θ descend L (Adam, as usual); the multiplier ascends it. The paper
parameterises λ = exp(μ) (so λ ≥ 0 needs no projection) and updates μ by SGD with
momentum 0.99 and dampening 0.99 on the "gradient" D_t/c_D − 1 — not the exact
∂L/∂μ = λ·(D/c_D − 1), whose scale would follow λ over orders of magnitude — with learning
rate 5e-3, λ clipped to ≤ 1e3 and started at λ0 = 1e3 (distortion first, then rate).
Distortion is MSE on the 0..255 scale (or 1 − MS-SSIM).

How it plugs into the objective seam (docs/design.md): `ConstrainedDistortion` is the loss
term λ·(D/c_D − 1) (λ a constant in the gradient), `DualAscent` is the training hook whose
`after_apply` performs one dual step per training step, and both share one
`LagrangeMultiplier` — a tf.Module whose μ, momentum buffer and step count are
non-trainable variables, so they live in the model's checkpoint and survive resume.

The hinge baseline R + λ·max(D/c_D − 1, 0) with λ fixed is `Hinge`; the β baseline is the
codec core's R + λ·D (tfcae.objectives.terms.Rate + Distortion; β = 1/λ in the paper's D + β·R).

**The rate-constrained twin (R-CO)**: min D s.t. R ≤ c_R, through

    L(θ, λ) = β·D(θ) + λ·(R(θ)/c_R − 1)

(`ConstrainedRate` + the codec core's `Distortion(β)`; the same multiplier and DualAscent,
steering on the rate). Its gradient is the β objective's when λ = c_R.

**The default multiplier rule ("auto", `auto_multiplier_settings`)**: the paper's settings
are tuned for runs of 10⁵-10⁶ steps (λ0 = 1e3 with η = 5e-3 needs ≈ 4,000 steps to come
down to λ ≈ 3: measured, docs/results.md); the rule derives them from the target and the
planned run instead:

- λ0 is the λ at which the Lagrangian's gradient equals the β objective's that the same
  flagfile trains (β = --lmbda): ∇R + (λ/c_D)·∇D = ∇R + β·∇D at λ0 = β·c_D (R-CO:
  λ0 = c_R). The run starts at the trade-off the user would otherwise get, and the
  multiplier only has to cover the distance between that and the target.
- The step size follows the run length T: η = 40/T, so that a constraint missed by 10 %
  for a quarter of the run moves λ by a factor e (0.1 · 40/T · T/4 = 1), at any T. For
  T = 2,000 this is the 2e-2 that `configs/dco_cpu.cfg` found by hand; the filter
  (momentum = dampening = 0.9: a 10-step average of the noisy per-batch constraint) is
  that config's too.
- Integral windup (Åström & Hägglund, "PID Controllers", §3.5): from scratch the first
  hundreds of steps are the transforms' initial descent, D ≫ c_D whatever λ is, and an
  integrating multiplier would climb to its clip and spend the rest of the run coming
  down. So λ holds λ0 until the filtered constraint first falls to ≤ 0.5 (D ≤ 1.5·c_D),
  and each step's constraint is clipped to [−1, 1] (conditional integration and a
  bounded error, the standard anti-windup measures). A warm start is already there and
  integrates from its first step.
- A distortion target from scratch also holds λ0 for the **first half of the run**
  (conditional integration on time): a distortion constraint states where the *trained*
  model must end, and in a short run from scratch D keeps falling with training whatever
  λ is (measured on the quick start: 1,858 → 330 at every λ from 4 to 514), so the
  violation seen during the descent says little about the end. An integrator engaged in it
  winds up (×1.3: λ 4.4 → 208 at 7 of 10 epochs) and the run ends far below the target.
  After the hold, η = 40/(T/2) gives the remaining half the authority the rule gives a
  whole run. The rate follows λ within a few hundred steps (R-CO met its targets from
  scratch without this hold), so rate targets do not hold.
- The same runs steer on a **prediction** of the constraint T/10 steps ahead (derivative
  action, Åström & Hägglund §3.3: e(t + T_d) ≈ e(t) + T_d·ė(t); ė from two exponential
  averages of the held-out constraint, 10 and T/10 steps, `LagrangeMultiplier._predicted`).
  Without it the multiplier sees D above c_D when it engages, while D is still falling by
  ≈ 5 % per tenth of the run; it raises λ, and the run ends 11-14 % below the target, at
  a needlessly high rate. This happened with step, constant and cosine learning rates alike
  (docs/results.md). With the prediction it engages on where D is heading.
- The signal is held-out batches on one device (`signal="auto"`), see DualAscent.

"paper" keeps the paper's update with the --multiplier_* settings (defaults the paper's).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable

import tensorflow as tf

from tfcae.methods.registry import METHODS, Method
from tfcae.objectives.terms import DISTORTIONS, LossTerm, Rate, StepContext, TrainingHook
from tfcae.registry import setting

__all__ = ["DcoSettings", "ConstrainedOptimization", "OBJECTIVES", "SIGNALS", "RULES", "RATE", "auto_multiplier_settings",
           "LagrangeMultiplier", "ConstrainedDistortion", "ConstrainedRate", "Hinge",
           "DualAscent", "dco_objective_parts", "rco_objective_parts",
           "multiplier_settings", "signal_of", "objective_parts"]

OBJECTIVES = ("beta", "dco", "hinge", "rco")
SIGNALS = ("train", "validation")  # what DualAscent steers on
RULES = ("auto", "paper")          # how the multiplier's settings are chosen
RATE = "bpp"                       # the measure R-CO constrains (the Rate term's log name)


def _check_target(target, metric):
  """metric: a distortion (the target is c_D) or RATE (c_R, bits per pixel)."""
  if metric not in DISTORTIONS + (RATE,):
    raise ValueError(f"unknown distortion {metric!r}; expected one of {DISTORTIONS}")
  what = "rate target c_R" if metric == RATE else "distortion target c_D"
  if not (isinstance(target, (int, float)) and math.isfinite(target)) or target <= 0:
    raise ValueError(f"the {what} must be a finite number > 0 (the constraint is "
                     f"normalised as {'R/c_R' if metric == RATE else 'D/c_D'} − 1), got "
                     f"{target!r}")
  if metric not in ("mse", RATE) and target >= 1:
    raise ValueError(f"a {metric} target is 1 − similarity and must be < 1, got {target}")
  return float(target)


def _distortion_log_name(metric):
  return metric.replace("-", "_")  # as tfcae.objectives.terms.Distortion logs it (RATE: "bpp")


def _measure(ctx, metric):
  """The constrained quantity of a batch: its distortion, or its rate (bpp)."""
  return ctx.bpp if metric == RATE else ctx.distortion(metric)


def auto_multiplier_settings(target: float, total_steps: int, lmbda: float = 0.01,
                             metric: str = "mse", max_value: float = 1e3,
                             from_scratch: bool = False) -> dict[str, float | int]:
  """The default ("auto") rule's LagrangeMultiplier settings for a planned run.

  See the module docstring for the derivation.

  Args:
    target: c_D (in the distortion's units), or c_R in bpp for metric=RATE.
    total_steps: T, the planned training steps (epochs × steps per epoch).
    lmbda: β (= --lmbda) of the trade-off the run starts from.
    metric: the constrained distortion (one of DISTORTIONS), or RATE.
    max_value: the clip λ_max.
    from_scratch: no warm start: a distortion target then holds λ0 for the first half
      of the run, then steers on the constraint predicted T/10 steps ahead.

  Returns:
    Keyword arguments of LagrangeMultiplier: initial_value, learning_rate, momentum,
    dampening, max_value, constraint_clip, engage_below, and with the hold also
    engage_after, prediction_horizon and trend_window.

  Raises:
    ValueError: an invalid target, total_steps or β, or an initial λ above the clip.
  """
  target = _check_target(target, metric)
  if not (isinstance(total_steps, int) and total_steps > 0):
    raise ValueError(f"the auto multiplier rule needs the planned number of steps > 0, "
                     f"got {total_steps!r}")
  if not (math.isfinite(lmbda) and lmbda > 0):
    raise ValueError(f"β (--lmbda) must be a finite number > 0, got {lmbda!r}")
  initial = target if metric == RATE else lmbda * target
  if not initial <= max_value:
    raise ValueError(f"the auto rule's initial λ = {initial:g} exceeds the clip "
                     f"--multiplier_max={max_value:g}; raise the clip")
  hold = total_steps // 2 if from_scratch and metric != RATE else 0
  settings = {"initial_value": initial, "learning_rate": 40. / (total_steps - hold),
              "momentum": 0.9, "dampening": 0.9, "max_value": float(max_value),
              "constraint_clip": 1.0, "engage_below": 0.5}
  if hold:
    settings["engage_after"] = hold
    # The slope needs the slow average well behind the fast one (10 steps): ≥ 20 steps.
    settings.update(prediction_horizon=total_steps // 10,
                    trend_window=max(total_steps // 10, 20))
  return settings


class LagrangeMultiplier(tf.Module):
  """λ = exp(μ), with μ updated by SGD with momentum and dampening (ascent).

  The update is torch.optim.SGD's, written out because Keras' SGD has no dampening:

      g_t = D_t/c_D − 1                       (the ascent direction of L in μ)
      b_1 = g_1;   b_t = m·b_{t−1} + (1 − d)·g_t   for t > 1
      μ_t = min(μ_{t−1} + η·b_t, log λ_max)

  μ is clipped at log λ_max, so λ never exceeds the clip and comes back down as soon as
  the buffer turns negative (clipping only λ would let μ wander above the clip and stick
  there). λ = exp(μ) is never negative. A step whose g is NaN or ±Inf changes nothing.

  Anti-windup options (the "auto" rule's; off by default, as in the paper): each g is
  clipped to [−constraint_clip, constraint_clip], and μ holds its initial value until the
  buffer first falls to ≤ engage_below after at least `engage_after` updates (`engaged`
  then stays true, and is checkpointed with the update count).

  Every variable is created with aggregation ONLY_FIRST_REPLICA: under tf.distribute each
  replica computes the identical update (DualAscent averages D over replicas first) and
  the first replica's value is what the mirrored variable keeps.

  Args:
    learning_rate: η, the step size of μ (> 0).
    momentum: m, in [0, 1).
    dampening: d, in [0, 1].
    max_value: the clip λ_max (finite, > 0).
    initial_value: λ0, in (0, λ_max].
    constraint_clip: the bound of each step's g (inf: none).
    engage_below: μ holds until the buffer first falls to ≤ this (inf: integrate from
      the first step).
    engage_after: μ holds for at least this many updates.
    prediction_horizon: steer on g predicted this many steps ahead (0: on g itself).
    trend_window: the slow average's time constant for the prediction (> 10 steps when
      prediction_horizon is set).
    name: the module's name.

  Raises:
    ValueError: a setting outside its range.
  """

  def __init__(self, learning_rate: float = 5e-3, momentum: float = 0.99,
               dampening: float = 0.99, max_value: float = 1e3, initial_value: float = 1e3,
               constraint_clip: float = math.inf, engage_below: float = math.inf,
               engage_after: int = 0, prediction_horizon: int = 0, trend_window: int = 0,
               name: str = "lagrange_multiplier"):
    super().__init__(name=name)
    if not learning_rate > 0:
      raise ValueError(f"multiplier learning rate must be > 0, got {learning_rate}")
    if not 0 <= momentum < 1:
      raise ValueError(f"multiplier momentum must be in [0, 1), got {momentum}")
    if not 0 <= dampening <= 1:
      raise ValueError(f"multiplier dampening must be in [0, 1], got {dampening}")
    if not (math.isfinite(max_value) and max_value > 0):
      raise ValueError(f"multiplier clip λ_max must be a finite number > 0, got {max_value}")
    if not 0 < initial_value <= max_value:
      raise ValueError(f"initial λ must be in (0, λ_max={max_value:g}], got {initial_value}")
    if not constraint_clip > 0:
      raise ValueError(f"the constraint clip must be > 0, got {constraint_clip}")
    if math.isnan(engage_below):
      raise ValueError("engage_below must be a number (inf: integrate from the first step)")
    if not (isinstance(engage_after, int) and engage_after >= 0):
      raise ValueError(f"engage_after must be a whole number of steps >= 0, got "
                       f"{engage_after!r}")
    if not (isinstance(prediction_horizon, int) and prediction_horizon >= 0):
      raise ValueError(f"prediction_horizon must be a whole number of steps >= 0, got "
                       f"{prediction_horizon!r}")
    if prediction_horizon and not (isinstance(trend_window, int) and trend_window > 10):
      raise ValueError(f"prediction needs a trend_window of more than 10 steps, got "
                       f"{trend_window!r}")
    self.engage_after = engage_after
    self.prediction_horizon = prediction_horizon
    self.trend_window = int(trend_window) if prediction_horizon else 0
    self.constraint_clip = float(constraint_clip)
    self.engage_below = float(engage_below)
    self.learning_rate = float(learning_rate)
    self.momentum = float(momentum)
    self.dampening = float(dampening)
    self.max_value = float(max_value)
    self.initial_value = float(initial_value)
    self.mu_max = math.log(self.max_value)
    first = tf.VariableAggregation.ONLY_FIRST_REPLICA
    self.mu = tf.Variable(math.log(self.initial_value), trainable=False, dtype=tf.float32,
                          name="mu", aggregation=first)
    self.momentum_buffer = tf.Variable(0., trainable=False, dtype=tf.float32,
                                       name="momentum_buffer", aggregation=first)
    self.steps = tf.Variable(0, trainable=False, dtype=tf.int64, name="steps",
                             aggregation=first)
    self.engaged = tf.Variable(False, trainable=False, dtype=tf.bool, name="engaged",
                               aggregation=first)
    # Only with a prediction: the checkpoint of a run that steers on g itself holds no
    # averages, and must restore into a multiplier without them.
    if self.prediction_horizon:
      self.fast_average = tf.Variable(0., trainable=False, dtype=tf.float32,
                                      name="fast_average", aggregation=first)
      self.slow_average = tf.Variable(0., trainable=False, dtype=tf.float32,
                                      name="slow_average", aggregation=first)

  @property
  def lmbda(self) -> tf.Tensor:
    """λ = exp(μ) in [0, λ_max]; a constant for the gradient of the model's loss."""
    value = tf.clip_by_value(tf.exp(tf.convert_to_tensor(self.mu)), 0., self.max_value)
    return tf.stop_gradient(value)

  def update(self, constraint: tf.Tensor | float) -> tf.Tensor:
    """One ascent step.

    Args:
      constraint: g = D/c_D − 1 (or R/c_R − 1) of this step, a scalar; NaN or ±Inf
        leaves the state unchanged.

    Returns:
      λ after the step.
    """
    g = tf.cast(constraint, tf.float32)
    finite = tf.math.is_finite(g)
    g = tf.where(finite, g, 0.)
    if self.prediction_horizon:
      g = self._predicted(g, finite)
    if math.isfinite(self.constraint_clip):
      g = tf.clip_by_value(g, -self.constraint_clip, self.constraint_clip)
    buffer = tf.where(self.steps == 0, g,
                      self.momentum * self.momentum_buffer + (1. - self.dampening) * g)
    ready = tf.logical_and(buffer <= self.engage_below, self.steps >= self.engage_after)
    engaged = tf.logical_and(finite, tf.logical_or(self.engaged, ready))
    mu = tf.minimum(self.mu + self.learning_rate * buffer, self.mu_max)
    self.momentum_buffer.assign(tf.where(finite, buffer, self.momentum_buffer))
    self.mu.assign(tf.where(engaged, mu, self.mu))
    self.engaged.assign(tf.logical_or(self.engaged, engaged))
    self.steps.assign_add(tf.cast(finite, tf.int64))
    return self.lmbda

  def _predicted(self, g, finite):
    """Derivative action (Åström & Hägglund, "PID Controllers", §3.3: the D term predicts
    the error T_d ahead by linear extrapolation): g_pred = ĝ + H·ġ, from two exponential
    averages of g with time constants τ_f = 10 and τ_s = trend_window steps. For a linear
    trend g = a + b·t an average of time constant τ lags it by b·τ, so ġ = (fast − slow) /
    (τ_s − τ_f) and the trend-corrected present is fast + τ_f·ġ. Both averages run from
    the first step, also while λ holds, so the trend is known when the multiplier engages."""
    tau_f, tau_s = 10., float(self.trend_window)
    first = self.steps == 0
    fast = tf.where(first, g, self.fast_average + (g - self.fast_average) / tau_f)
    slow = tf.where(first, g, self.slow_average + (g - self.slow_average) / tau_s)
    self.fast_average.assign(tf.where(finite, fast, self.fast_average))
    self.slow_average.assign(tf.where(finite, slow, self.slow_average))
    slope = (fast - slow) / (tau_s - tau_f)
    return fast + (tau_f + self.prediction_horizon) * slope

  def drop_prediction(self) -> None:
    """Steer on the constraint itself, without the prediction and its averages: for a
    run whose checkpoint has no averages, which then resumes as it began."""
    if self.prediction_horizon:
      self.prediction_horizon = self.trend_window = 0
      del self.fast_average, self.slow_average

  def at_clip(self) -> bool:
    """Whether λ is at its clip λ_max (eagerly)."""
    return bool(self.mu.numpy() >= self.mu_max - 1e-6)

  def get_config(self) -> dict[str, Any]:
    """Its settings; the optional ones only when they are in use (summary.json)."""
    config = {"learning_rate": self.learning_rate, "momentum": self.momentum,
              "dampening": self.dampening, "max_value": self.max_value,
              "initial_value": self.initial_value}
    if math.isfinite(self.constraint_clip) or math.isfinite(self.engage_below):
      config.update(constraint_clip=self.constraint_clip, engage_below=self.engage_below)
    if self.engage_after:
      config["engage_after"] = self.engage_after
    if self.prediction_horizon:
      config.update(prediction_horizon=self.prediction_horizon,
                    trend_window=self.trend_window)
    return config


class _TargetTerm(LossTerm):
  """Shared by ConstrainedDistortion, ConstrainedRate and Hinge: the constrained measure
  M (a distortion, or the rate for metric=RATE), M/c − 1 and the summary."""

  advice = "raise the target or train longer (--epochs)"

  def __init__(self, weight, target, metric, tolerance, name):
    super().__init__(weight, name)
    self.metric = metric
    self.target = _check_target(target, metric)
    if tolerance < 0:
      raise ValueError(f"target tolerance must be >= 0, got {tolerance}")
    self.tolerance = float(tolerance)
    self.distortion_name = _distortion_log_name(metric)

  def constraint(self, ctx):
    """(M, M/c − 1) of the batch."""
    value = _measure(ctx, self.metric)
    return value, value / self.target - 1.

  def current_lambda(self):
    raise NotImplementedError

  def log_names(self):
    return [self.name, self.distortion_name, "constraint", "lambda"]

  def summary(self, validation_logs: dict[str, float]) -> dict[str, Any]:
    """What summary.json records: the target, whether validation met it, the final λ.

    Args:
      validation_logs: the validation metrics by log name; they come from the real
        quantizer (rounding) and the coding tables, not from the noisy training proxy.

    Returns:
      {"metric", "target", "validation_distortion", "validation_constraint",
      "tolerance", "target_met", "lambda", "warnings": [one line per missed target]}.
    """
    distortion = float(validation_logs[self.distortion_name])
    gap = distortion / self.target - 1.
    state = {"metric": self.metric, "target": self.target,
             "validation_distortion": distortion, "validation_constraint": gap,
             "tolerance": self.tolerance, "target_met": bool(gap <= self.tolerance),
             "lambda": float(self.current_lambda()), "warnings": []}
    if not state["target_met"]:
      # One line for bin/train: what was missed, by how much, and what to change.
      state["warnings"].append(
          f"validation {self.metric} {distortion:.4g} misses the target {self.target:g} by "
          f"{100 * gap:.1f}% (tolerance {100 * self.tolerance:g}%): {self.advice}")
    return state

  def get_config(self):
    return dict(super().get_config(), metric=self.metric, target=self.target,
                tolerance=self.tolerance)


class ConstrainedDistortion(_TargetTerm):
  """λ·(D/c_D − 1), the constraint term of the D-CO Lagrangian (van Rozendaal et al., eq. 4
  with the constraint divided by c_D); λ comes from a LagrangeMultiplier and is a constant
  in the gradient (the multiplier moves only by DualAscent).

  Logs the term, the distortion, the constraint D/c_D − 1 and λ.

  Args:
    multiplier: the LagrangeMultiplier shared with the DualAscent hook.
    target: c_D, > 0 (< 1 for the similarity-based distortions).
    metric: the constrained distortion, one of DISTORTIONS.
    tolerance: the summary counts the target as met when D ≤ c_D·(1 + tolerance).
    name: logged as.

  Raises:
    ValueError: metric RATE (ConstrainedRate constrains the rate), an unknown metric,
      an invalid target or a negative tolerance.
  """

  advice = ("raise --target_distortion, or train longer (--epochs) so that the multiplier "
            "can follow")

  def __init__(self, multiplier: LagrangeMultiplier, target: float, metric: str = "mse",
               tolerance: float = 0.02, name: str = "dco"):
    if metric == RATE:
      raise ValueError("ConstrainedDistortion constrains a distortion; ConstrainedRate the "
                       "rate")
    super().__init__(1.0, target, metric, tolerance, name)
    self.multiplier = multiplier

  def current_lambda(self) -> float:
    return self.multiplier.lmbda.numpy()

  def __call__(self, ctx: StepContext) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    distortion, constraint = self.constraint(ctx)
    lmbda = self.multiplier.lmbda
    value = lmbda * constraint
    return value, {self.name: value, self.distortion_name: distortion,
                   "constraint": constraint, "lambda": lmbda}

  def summary(self, validation_logs: dict[str, float]) -> dict[str, Any]:
    """The target's summary (see _TargetTerm.summary), with the multiplier's clip,
    whether λ ended at it, and its number of updates."""
    state = super().summary(validation_logs)
    state["lambda_max"] = self.multiplier.max_value
    state["lambda_at_clip"] = self.multiplier.at_clip()
    state["multiplier_steps"] = int(self.multiplier.steps.numpy())
    if state["lambda_at_clip"] and not state["target_met"]:
      state["warnings"] = [state["warnings"][0] + f" (λ is at its clip "
                           f"{self.multiplier.max_value:g}: the target looks unachievable "
                           "for this model and training length)"]
    return state

  def get_config(self):
    return dict(super().get_config(), multiplier=self.multiplier.get_config())


class ConstrainedRate(ConstrainedDistortion):
  """λ·(R/c_R − 1), the constraint term of the rate-constrained twin: with the codec
  core's β·D (`Distortion`) it is the Lagrangian of min D s.t. R ≤ c_R (bits per pixel
  from the entropy model; the summary checks the validation bpp, from the real
  quantizer).

  Args:
    multiplier: the LagrangeMultiplier shared with the DualAscent hook.
    target: c_R in bits per pixel, > 0.
    tolerance: the summary counts the target as met when R ≤ c_R·(1 + tolerance).
    name: logged as.

  Raises:
    ValueError: an invalid target or a negative tolerance.
  """

  advice = ("raise --target_bpp, or train longer (--epochs) so that the multiplier can "
            "follow")

  def __init__(self, multiplier: LagrangeMultiplier, target: float, tolerance: float = 0.02,
               name: str = "rco"):
    _TargetTerm.__init__(self, 1.0, target, RATE, tolerance, name)
    self.multiplier = multiplier


class Hinge(_TargetTerm):
  """λ·max(D/c_D − 1, 0) with λ fixed (= weight): the paper's hinge baseline.

  Args:
    lmbda: the fixed λ, > 0.
    target: c_D, > 0 (< 1 for the similarity-based distortions).
    metric: the constrained distortion, one of DISTORTIONS.
    tolerance: the summary counts the target as met when D ≤ c_D·(1 + tolerance).
    name: logged as.

  Raises:
    ValueError: λ ≤ 0, an unknown metric, an invalid target or a negative tolerance.
  """

  advice = "raise --hinge_lambda or --target_distortion"

  def __init__(self, lmbda: float, target: float, metric: str = "mse",
               tolerance: float = 0.02, name: str = "hinge"):
    if not lmbda > 0:
      raise ValueError(f"hinge λ must be > 0, got {lmbda}")
    super().__init__(lmbda, target, metric, tolerance, name)

  def current_lambda(self) -> float:
    return self.weight

  def __call__(self, ctx: StepContext) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    distortion, constraint = self.constraint(ctx)
    penalty = tf.maximum(constraint, 0.)
    return self.weight * penalty, {self.name: penalty, self.distortion_name: distortion,
                                   "constraint": constraint,
                                   "lambda": tf.constant(self.weight)}


class _Unsaved:
  """Holds an object out of tf.Module's tracking (an iterator is not model state)."""

  def __init__(self, value):
    self.value = value


class DualAscent(TrainingHook):
  """One multiplier step per training step, after the model's optimizer step.

  signal='train' (the paper) steers on the training batch's D_t (the noisy-quantisation
  proxy). Under tf.distribute each replica holds its own part of the batch: D is averaged
  over replicas first (with equal per-replica batches, the mean of per-replica MSEs is the
  global batch's MSE), so every replica applies the identical update and the trajectory
  equals a single device's for the same global batch.

  signal='validation' steers on held-out data instead: each step draws the next batch of
  the validation set (cycled) and measures D with the real quantizer (rounding), one extra
  forward pass per step. This is Cotter et al.'s recipe for constraints that must hold
  beyond the training sample ("Training well-generalizing classifiers for fairness metrics
  and other data-dependent constraints", ICML 2019: θ-player on training data, λ-player on
  a separate split). Training D-CO meets its target on the training distribution; when the
  held-out images are harder (BSDS500's last 50 are, by ≈ 10 %; docs/results.md), only
  this signal makes the *validation* distortion land on c_D. One scalar is fitted to the
  validation set, so report generalisation on a third set (Kodak). Single device only.

  Args:
    multiplier: the LagrangeMultiplier shared with the constraint term.
    target: c_D, or c_R for metric=RATE.
    metric: the constrained distortion, or RATE (R-CO).
    signal: one of SIGNALS: "train" or "validation".
    name: the module's name.

  Raises:
    ValueError: an unknown signal or metric, or an invalid target.
  """

  def __init__(self, multiplier: LagrangeMultiplier, target: float, metric: str = "mse",
               signal: str = "train", name: str = "dual_ascent"):
    super().__init__(name=name)
    if signal not in SIGNALS:
      raise ValueError(f"unknown multiplier signal {signal!r}; expected one of {SIGNALS}")
    self.multiplier = multiplier
    self.metric = metric
    self.target = _check_target(target, metric)
    self.signal = signal
    self._held_out = _Unsaved(None)

  def before_restore(self, checkpoint_keys: Iterable[str]) -> str | None:
    # A checkpoint without the prediction's averages resumes steering on g itself.
    if self.multiplier.prediction_horizon and not any(
        "/fast_average/" in key for key in checkpoint_keys):
      self.multiplier.drop_prediction()
      return ("the run began before the multiplier's prediction: it resumes steering on "
              "the constraint itself")
    return None

  def set_validation_data(self, dataset: tf.data.Dataset) -> None:
    if self.signal == "validation":
      self._held_out = _Unsaved(iter(dataset.repeat()))

  def _held_out_distortion(self, model):
    if self._held_out.value is None:
      raise RuntimeError("DualAscent(signal='validation') needs set_validation_data() "
                         "before training")
    x = next(self._held_out.value)
    ctx = StepContext(model, x, model.forward(x, training=False), training=False)
    return _measure(ctx, self.metric)

  def after_apply(self, model: tf.keras.Model, ctx: StepContext) -> dict[str, tf.Tensor]:
    if self.signal == "validation":
      distortion = tf.stop_gradient(self._held_out_distortion(model))
      logs = {self._held_out_name: distortion}
    else:
      distortion = tf.stop_gradient(_measure(ctx, self.metric))
      context = tf.distribute.get_replica_context()
      if context is not None and context.num_replicas_in_sync > 1:
        distortion = context.all_reduce(tf.distribute.ReduceOp.MEAN, distortion)
      logs = {}
    self.multiplier.update(distortion / self.target - 1.)
    return logs

  @property
  def _held_out_name(self):
    return "heldout_" + _distortion_log_name(self.metric)

  def log_names(self) -> list[str]:
    return [self._held_out_name] if self.signal == "validation" else []

  def get_config(self) -> dict[str, Any]:
    return dict(super().get_config(), metric=self.metric, target=self.target,
                signal=self.signal, multiplier=self.multiplier.get_config())


def dco_objective_parts(target: float, metric: str = "mse", tolerance: float = 0.02,
                        signal: str = "train", **multiplier_settings: Any
                        ) -> tuple[list[LossTerm], list[TrainingHook]]:
  """The D-CO objective: min R s.t. D ≤ c_D.

  Args:
    target: c_D.
    metric: the constrained distortion, one of DISTORTIONS.
    tolerance: the summary's tolerance on the target.
    signal: what DualAscent steers on (SIGNALS).
    **multiplier_settings: keyword arguments of LagrangeMultiplier.

  Returns:
    ([Rate, ConstrainedDistortion], [DualAscent]), sharing one LagrangeMultiplier.

  Raises:
    ValueError: an invalid target, metric, signal or multiplier setting.
  """
  target = _check_target(target, metric)
  multiplier = LagrangeMultiplier(**multiplier_settings)
  return ([Rate(), ConstrainedDistortion(multiplier, target, metric, tolerance)],
          [DualAscent(multiplier, target, metric, signal)])


def rco_objective_parts(target_bpp: float, lmbda: float = 0.01, metric: str = "mse",
                        tolerance: float = 0.02, signal: str = "train",
                        **multiplier_settings: Any
                        ) -> tuple[list[LossTerm], list[TrainingHook]]:
  """The R-CO objective: min D s.t. R ≤ c_R.

  Args:
    target_bpp: c_R, bits per pixel.
    lmbda: β, the weight of the distortion term.
    metric: the distortion, one of DISTORTIONS.
    tolerance: the summary's tolerance on the target.
    signal: what DualAscent steers on (SIGNALS).
    **multiplier_settings: keyword arguments of LagrangeMultiplier.

  Returns:
    ([Distortion(β), ConstrainedRate], [DualAscent on the rate]), sharing one
    LagrangeMultiplier.

  Raises:
    ValueError: an invalid target, metric, signal or multiplier setting.
  """
  from tfcae.objectives.terms import Distortion
  target = _check_target(target_bpp, RATE)
  multiplier = LagrangeMultiplier(**multiplier_settings)
  return ([Distortion(lmbda, metric), ConstrainedRate(multiplier, target, tolerance)],
          [DualAscent(multiplier, target, RATE, signal)])


def multiplier_settings(config: Any) -> dict[str, Any]:
  """The LagrangeMultiplier settings of a config: its --multiplier_rule's.

  Args:
    config: a TrainConfig (tfcae.training.config) with objective "dco" or "rco".

  Returns:
    Keyword arguments of LagrangeMultiplier: auto_multiplier_settings's for the run's
    target and planned steps (from scratch unless --init_from), or the --multiplier_*
    settings under the paper's rule.

  Raises:
    ValueError: as auto_multiplier_settings.
  """
  constrained = config.target_bpp if config.objective == "rco" else config.target_distortion
  metric = RATE if config.objective == "rco" else config.distortion
  if config.multiplier_rule == "auto":
    return auto_multiplier_settings(constrained, config.epochs * config.steps_per_epoch,
                                    config.lmbda, metric, config.multiplier_max,
                                    from_scratch=not config.init_from)
  return {"learning_rate": config.multiplier_lr, "momentum": config.multiplier_momentum,
          "dampening": config.multiplier_dampening, "max_value": config.multiplier_max,
          "initial_value": config.multiplier_init}


def signal_of(config: Any) -> str:
  """What DualAscent steers on for a config.

  --multiplier_signal=auto means held-out batches on one device (the target then holds on
  held-out images, see DualAscent), and the training batches under a distribution
  strategy.

  Args:
    config: a TrainConfig.

  Returns:
    One of SIGNALS.
  """
  if config.multiplier_signal != "auto":
    return config.multiplier_signal
  return "validation" if config.strategy == "default" else "train"


def objective_parts(config: Any) -> tuple[list[LossTerm], list[TrainingHook]]:
  """The loss terms and hooks of config.objective (what ConstrainedOptimization adds).

  'beta' is the codec core's R + λ·D; 'dco', 'rco' and 'hinge' replace it.

  Args:
    config: a TrainConfig.

  Returns:
    (terms, hooks).

  Raises:
    ValueError: an unknown objective, or invalid targets or multiplier settings.
  """
  if config.objective not in OBJECTIVES:
    raise ValueError(f"unknown objective {config.objective!r}; expected one of {OBJECTIVES}")
  if config.objective == "beta":
    from tfcae.objectives.terms import Distortion
    return [Rate(), Distortion(config.lmbda, config.distortion)], []
  if config.objective == "hinge":
    return [Rate(), Hinge(config.hinge_lambda, config.target_distortion, config.distortion,
                          config.target_tolerance)], []
  if config.objective == "rco":
    return rco_objective_parts(config.target_bpp, config.lmbda, config.distortion,
                               config.target_tolerance, signal_of(config),
                               **multiplier_settings(config))
  return dco_objective_parts(config.target_distortion, config.distortion,
                             config.target_tolerance, signal_of(config),
                             **multiplier_settings(config))


@dataclasses.dataclass
class DcoSettings:
  """The flags of D-CO, R-CO and the hinge baseline."""
  objective: str = setting("beta", "beta: R + λ·D (--lmbda); dco: min R s.t. D ≤ "
                           "--target_distortion by Lagrangian dual ascent (van Rozendaal et "
                           "al.); rco: min D s.t. R ≤ --target_bpp, the same machinery; "
                           "hinge: R + --hinge_lambda·max(D/c_D − 1, 0).",
                           ("beta", "dco", "hinge", "rco"))
  target_distortion: float = setting(0.0, "c_D for dco/hinge, in --distortion's units (MSE "
                                     "on 0..255, or 1 − MS-SSIM); must be > 0.")
  target_bpp: float = setting(0.0, "c_R for rco: bits per pixel (of the training crops, from "
                              "the entropy model); must be > 0.")
  hinge_lambda: float = setting(10.0, "The fixed λ of the hinge objective.")
  target_tolerance: float = setting(0.02, "summary.json counts the target as met when the "
                                    "validation distortion (rco: bpp) is ≤ c·(1 + this).")
  multiplier_rule: str = setting("auto", "dco/rco: auto derives the multiplier's settings "
                                 "from the target and the run (λ0 = --lmbda·c_D, or c_R for "
                                 "rco; step 40/steps; anti-windup; tfcae/methods/dco.py); paper uses "
                                 "the --multiplier_* settings (defaults: van Rozendaal et "
                                 "al.'s).", ("auto", "paper"))
  multiplier_lr: float = setting(5e-3, "D-CO (--multiplier_rule=paper): learning rate of μ "
                                 "(λ = exp μ); paper 5e-3.")
  multiplier_momentum: float = setting(0.99, "D-CO (--multiplier_rule=paper): momentum of "
                                       "μ's SGD; paper 0.99.")
  multiplier_dampening: float = setting(0.99, "D-CO (--multiplier_rule=paper): dampening of "
                                        "μ's SGD; paper 0.99.")
  multiplier_max: float = setting(1e3, "D-CO: clip λ ≤ this; paper 1e3.")
  multiplier_init: float = setting(1e3, "D-CO (--multiplier_rule=paper): initial λ (≤ "
                                   "--multiplier_max); paper 1e3.")
  multiplier_signal: str = setting("auto", "D-CO: the measure the dual ascent steers on: "
                                   "train (each training batch, noisy proxy; the paper), "
                                   "validation (one held-out batch per step, real quantizer; "
                                   "Cotter et al. 2019), so the target holds on held-out data; "
                                   "auto: validation on one device, train under a strategy.",
                                   ("auto", "train", "validation"))


@METHODS.register
class ConstrainedOptimization(Method):
  """D-CO (min R s.t. D ≤ c_D), R-CO (min D s.t. R ≤ c_R) and the hinge baseline: each
  replaces R + λ·D with its own rate and constraint terms (`objective_parts`)."""

  name = "dco"
  settings = DcoSettings
  replaces_rate_distortion = True

  @classmethod
  def enabled(cls, config: Any) -> bool:
    return config.objective != "beta"

  @classmethod
  def validate(cls, config: Any) -> None:
    constrained = config.objective in ("dco", "rco")
    if config.objective == "rco" and not config.target_bpp > 0:
      raise ValueError(f"--objective=rco needs --target_bpp > 0 (the constraint is "
                       f"R/c_R − 1), got {config.target_bpp}")
    if constrained and config.multiplier_rule == "auto":
      fields = DcoSettings.__dataclass_fields__
      changed = [f"--{name}" for name in ("multiplier_lr", "multiplier_momentum",
                                          "multiplier_dampening", "multiplier_init")
                 if getattr(config, name) != fields[name].default]
      if changed:
        raise ValueError(f"{', '.join(changed)} apply to --multiplier_rule=paper; the auto "
                         "rule derives them from the target and the run length")
      if config.time_budget_minutes:
        raise ValueError("--multiplier_rule=auto sets the multiplier's step from the planned "
                         "steps (--epochs × --steps_per_epoch), which a time budget leaves "
                         "open: drop --time_budget_minutes or use --multiplier_rule=paper")
    if config.objective in ("dco", "hinge"):  # checked again by the terms themselves
      if not config.target_distortion > 0:
        raise ValueError(f"--objective={config.objective} needs --target_distortion > 0 "
                         f"(the constraint is D/c_D − 1), got {config.target_distortion}")
      if config.distortion != "mse" and config.target_distortion >= 1:
        raise ValueError(f"--target_distortion for {config.distortion} is 1 − similarity: "
                         "< 1")
      if not (config.hinge_lambda > 0 and config.multiplier_lr > 0 and
              0 < config.multiplier_init <= config.multiplier_max):
        raise ValueError("--hinge_lambda and --multiplier_lr must be > 0 and 0 < "
                         "--multiplier_init <= --multiplier_max")
    if constrained and config.multiplier_signal == "validation":
      # The held-out batches of each step are not distributed.
      if config.strategy == "multi_worker":
        raise ValueError("--strategy=multi_worker cannot run with "
                         "--multiplier_signal=validation")
      if config.strategy != "default":
        raise ValueError("--multiplier_signal=validation runs on one device only (its "
                         "held-out batches are not distributed); use --strategy=default")

  @classmethod
  def parts(cls, config: Any) -> tuple[list[LossTerm], list[TrainingHook]]:
    return objective_parts(config)

  @classmethod
  def upgrade(cls, saved: dict[str, Any]) -> None:
    # A saved train_config.json without multiplier_rule was trained with the paper's
    # rule (the default is "auto"), so it resumes with that.
    saved.setdefault("multiplier_rule", "paper")
