"""The objective seam: loss terms and training hooks composed around a generic train_step.

A model's `train_step` (tfcae.models.base.ObjectiveModel) never hard-codes a loss. It
runs the forward pass, has its `Objective` wrap the outputs in a `StepContext`
(`objective.context`: the model stage sits below this one and imports nothing from it),
and asks the objective:

  1. loss = sum(term(ctx) for term in objective.terms)       inside the GradientTape
  2. grads = hook.transform_gradients(model, grads, vars)     for each hook (e.g. masks)
  3. optimizer.apply_gradients(...)
  4. hook.after_apply(model, ctx)                              for each hook, in-graph
     (weight projections, re-applied masks, dual ascent on a Lagrange multiplier)
  5. hook.on_epoch_end(model, epoch, logs)                     eagerly, from a Keras callback
     (e.g. ADMM updates of auxiliary variables every k epochs)

Terms and hooks are `tf.Module`s attached to the model, so every variable they create
(multipliers, momentum buffers, masks, ADMM's Z and U) is saved by the model's
tf.train.Checkpoint and restored on resume. Each declares the names it logs via
`log_names()`, so the model can create its Keras metric trackers up front. Each has a
`get_config()`; `summary.json` records them.

The default objective is Ballé et al.'s rate-distortion Lagrangian  R + λ·D  with R in
bits per pixel and D the MSE on the 0..255 scale (or 1 − MS-SSIM).
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import tensorflow as tf

__all__ = ["DISTORTIONS", "MS_SSIM_POWER_FACTORS", "MS_SSIM_FLOOR", "ms_ssim",
           "StepContext", "LossTerm", "Rate", "Distortion", "VariableRateDistortion",
           "TrainingHook", "Objective",
           "BinaryCrossEntropy", "rate_distortion", "ObjectiveEpochCallback"]

DISTORTIONS = ("mse", "ms-ssim", "ssim", "caep-mix")

# TensorFlow's MS-SSIM weights (Wang et al. 2003), fine to coarse.
MS_SSIM_POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# The floor on each scale's factor before the weighted geometric mean (see ms_ssim).
MS_SSIM_FLOOR = 1e-6


def ms_ssim(x: tf.Tensor, x_hat: tf.Tensor, max_val: float = 255.) -> tf.Tensor:
  """MS-SSIM of a batch of images [B, H, W, C], as `tf.image.ssim_multiscale`, with a
  gradient that is finite everywhere.

  TensorFlow combines the scales as Π relu(cs_k)^p_k: where a scale's contrast-structure
  term cs_k ≤ 0 — common for a freshly initialised decoder, whose output is
  anticorrelated with the image on some channels — relu gives 0 and d(v^p)/dv = p·v^(p−1)
  is infinite at 0, so the gradient is NaN and training from scratch diverges on its
  first step. Here each factor is floored at MS_SSIM_FLOOR instead: the value equals
  TensorFlow's wherever every factor is above the floor (tested), and the gradient stays
  finite. The per-scale SSIM itself is TensorFlow's (same filter, constants, down-sampling
  and padding), not a re-implementation.

  Args:
    x: the reference images, [B, H, W, C] (cast to float32).
    x_hat: the reconstructions, same shape.
    max_val: the dynamic range of the pixel values (255 for 0..255 images).

  Returns:
    The MS-SSIM of each image, a float32 [B] tensor.
  """
  from tensorflow.python.ops.image_ops_impl import _ssim_per_channel  # noqa: PLC0415
  images = [tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(x_hat, tf.float32)]
  factors = []
  for k in range(len(MS_SSIM_POWER_FACTORS)):
    if k > 0:
      # TensorFlow's 2× average pooling, padding odd sides symmetrically first.
      shape = tf.shape(images[0])
      pad = [[0, 0], [0, shape[1] % 2], [0, shape[2] % 2], [0, 0]]
      images = [tf.nn.avg_pool2d(tf.pad(i, pad, mode="SYMMETRIC"), 2, 2, "VALID")
                for i in images]
    ssim, cs = _ssim_per_channel(*images, max_val=max_val, filter_size=11,
                                 filter_sigma=1.5, k1=0.01, k2=0.03)
    factors.append(cs)
  factors[-1] = ssim  # the coarsest scale contributes l·cs = SSIM
  values = tf.maximum(tf.stack(factors, axis=-1), MS_SSIM_FLOOR)
  return tf.reduce_mean(tf.reduce_prod(values ** MS_SSIM_POWER_FACTORS, axis=-1), axis=-1)


class StepContext:
  """What one forward pass produced, with derived quantities computed once, lazily.

  Attributes:
    x: the input batch, float32 in [0, 255], [B, H, W, 3].
    outputs: the model's forward() dict: `x_hat` (reconstruction), `bits` (per-image
      bits, [B]), `y` (the bottleneck before quantisation), and model-specific entries.
    training: whether this is a training step (noisy quantisation) or not (rounding).

  Under a mixed-precision policy (--precision) the transforms compute in float16 or
  bfloat16; the reconstruction and the bits are cast to float32 here, so that every loss
  term, the rate included, is computed in float32.

  Args:
    model: the model whose forward pass this is (hooks and terms may read its layers).
    x: the input batch.
    outputs: the model's forward() dict.
    training: whether this is a training step.
  """

  def __init__(self, model: tf.keras.Model, x: tf.Tensor, outputs: dict[str, tf.Tensor],
               training: bool | tf.Tensor):
    self.model = model
    self.x = tf.cast(x, tf.float32)
    outputs = dict(outputs)
    for key in ("x_hat", "bits"):
      if key in outputs and outputs[key].dtype != tf.float32:
        outputs[key] = tf.cast(outputs[key], tf.float32)
    self.outputs = outputs
    self.training = training
    self._cache = {}

  def __getitem__(self, key: str) -> tf.Tensor:
    return self.outputs[key]

  @property
  def num_pixels(self) -> tf.Tensor:
    """Pixels in the batch (B·H·W), a float32 scalar."""
    if "num_pixels" not in self._cache:
      self._cache["num_pixels"] = tf.cast(tf.reduce_prod(tf.shape(self.x)[:-1]), tf.float32)
    return self._cache["num_pixels"]

  @property
  def bpp(self) -> tf.Tensor:
    """Bits per pixel of this (per-replica) batch, from the entropy model."""
    if "bpp" not in self._cache:
      self._cache["bpp"] = tf.reduce_sum(self.outputs["bits"]) / self.num_pixels
    return self._cache["bpp"]

  def distortion(self, metric: str) -> tf.Tensor:
    """Mean distortion of the batch, computed once per metric.

    Args:
      metric: one of DISTORTIONS: "mse" (0..255 scale), "ms-ssim" (1 − MS-SSIM),
        "ssim" (1 − SSIM) or "caep-mix" (CAE-ADMM's mix of all three and PSNR, scaled
        so that λ ≈ 1 weights it).

    Returns:
      A float32 scalar tensor.

    Raises:
      ValueError: an unknown metric.
    """
    if metric not in self._cache:
      x, x_hat = self.x, self.outputs["x_hat"]
      if metric == "mse":
        value = tf.reduce_mean(tf.math.squared_difference(x, x_hat))
      elif metric == "ms-ssim":
        value = 1. - tf.reduce_mean(ms_ssim(x, x_hat, 255.))
      elif metric == "ssim":
        value = 1. - tf.reduce_mean(tf.image.ssim(x, x_hat, 255.))
      elif metric == "caep-mix":
        # CAE-ADMM's reference mix (its train.py: 1000·(1 − MS-SSIM) + 1000·(1 − SSIM)
        # + 1e4·MSE[0,1] + (45 − PSNR)), divided by 1000 so that λ ≈ 1 weights it.
        mse = self.distortion("mse")
        psnr = 10. * tf.math.log(255. ** 2 / tf.maximum(mse, 1e-10)) / tf.math.log(10.)
        value = (self.distortion("ms-ssim") + self.distortion("ssim") +
                 10. * mse / 255. ** 2 + (45. - psnr) / 1000.)
      else:
        raise ValueError(f"unknown distortion {metric!r}; expected one of {DISTORTIONS}")
      self._cache[metric] = value
    return self._cache[metric]


class LossTerm(tf.Module):
  """One additive term of the loss. Sub-classes implement `value(ctx)` (unweighted).

  Args:
    weight: the factor the term enters the loss with.
    name: the module's name, also the name its value is logged under.
  """

  def __init__(self, weight: float = 1.0, name: str | None = None):
    super().__init__(name=name)
    self.weight = float(weight)

  def value(self, ctx: StepContext) -> tf.Tensor:
    """The term's unweighted value on one step (a scalar tensor); sub-classes define it."""
    raise NotImplementedError

  def __call__(self, ctx: StepContext) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The term on one step.

    Args:
      ctx: the step's context.

    Returns:
      (weight · value, {name: value}): the loss contribution and the values to log.
    """
    v = self.value(ctx)
    return self.weight * v, {self.name: v}

  def log_names(self) -> list[str]:
    """The names this term logs (its own name)."""
    return [self.name]

  def get_config(self) -> dict[str, Any]:
    """Its class, name and weight (recorded in summary.json)."""
    return {"class": type(self).__name__, "name": self.name, "weight": self.weight}


class Rate(LossTerm):
  """R: bits per pixel estimated by the entropy model (Ballé et al. 2017, eq. 2).

  Args:
    weight: the factor of R in the loss.
    name: logged as (default "bpp").
  """

  def __init__(self, weight: float = 1.0, name: str = "bpp"):
    super().__init__(weight, name)

  def value(self, ctx: StepContext) -> tf.Tensor:
    return ctx.bpp


class Distortion(LossTerm):
  """λ·D with D one of DISTORTIONS (StepContext.distortion).

  Args:
    weight: λ.
    metric: one of DISTORTIONS.
    name: logged as (default: the metric, with "_" for "-").

  Raises:
    ValueError: an unknown metric.
  """

  def __init__(self, weight: float = 0.01, metric: str = "mse", name: str | None = None):
    if metric not in DISTORTIONS:
      raise ValueError(f"unknown distortion {metric!r}; expected one of {DISTORTIONS}")
    super().__init__(weight, name or metric.replace("-", "_"))
    self.metric = metric

  def value(self, ctx: StepContext) -> tf.Tensor:
    return ctx.distortion(self.metric)

  def get_config(self) -> dict[str, Any]:
    return dict(super().get_config(), metric=self.metric)


class VariableRateDistortion(Distortion):
  """The distortion of a variable-rate model (tfcae.models.vbr): each image's D weighted
  by the λ of the quality it was coded at (the model's forward() gives ctx["quality"], q
  ∈ [1, K]), λ(q) = λ_min · (λ_max/λ_min)^((q − 1)/(K − 1)): one R + λD per rate point
  in one batch (Cui et al. 2021; CompressAI's vbr). Logged: the batch's mean D.

  Args:
    lmbda_min, lmbda_max: λ of quality 1 and of quality K (0 < min < max).
    rate_points: K ≥ 2.
    metric: "mse" or "ms-ssim" (a per-image distortion).
    name: logged as (default: the metric).

  Raises:
    ValueError: λs out of order, K < 2, or another metric.
  """

  def __init__(self, lmbda_min: float, lmbda_max: float, rate_points: int,
               metric: str = "mse", name: str | None = None):
    if not 0 < lmbda_min < lmbda_max or rate_points < 2:
      raise ValueError(f"need 0 < lmbda_min < lmbda_max and rate_points >= 2, got "
                       f"{lmbda_min}, {lmbda_max}, {rate_points}")
    if metric not in ("mse", "ms-ssim"):
      raise ValueError(f"a variable-rate distortion is mse or ms-ssim, not {metric!r}")
    super().__init__(1.0, metric, name)
    self.lmbda_min, self.lmbda_max = float(lmbda_min), float(lmbda_max)
    self.rate_points = int(rate_points)

  def lmbda(self, quality: tf.Tensor) -> tf.Tensor:
    """λ at quality q (float32, any shape)."""
    t = (tf.cast(quality, tf.float32) - 1.) / (self.rate_points - 1.)
    return self.lmbda_min * (self.lmbda_max / self.lmbda_min) ** t

  def __call__(self, ctx: StepContext) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    x, x_hat = ctx.x, ctx["x_hat"]
    if self.metric == "mse":
      per_image = tf.reduce_mean(tf.math.squared_difference(x, x_hat), axis=[1, 2, 3])
    else:
      per_image = 1. - ms_ssim(x, x_hat, 255.)
    weighted = tf.reduce_mean(self.lmbda(ctx["quality"]) * per_image)
    return weighted, {self.name: tf.reduce_mean(per_image)}

  def get_config(self) -> dict[str, Any]:
    return dict(super().get_config(), lmbda_min=self.lmbda_min, lmbda_max=self.lmbda_max,
                rate_points=self.rate_points)


class TrainingHook(tf.Module):
  """Acts around the optimizer step. All methods are optional no-ops.

  `transform_gradients` and `after_apply` run inside the compiled train_step (graph
  mode, per replica under tf.distribute); `on_epoch_end` runs eagerly.
  """

  def build(self, model: tf.keras.Model) -> None:
    """Creates the hook's variables from the built model (called by model.compile(),
    before a checkpoint is restored).

    Args:
      model: the compression model the hook acts on.
    """

  def transform_gradients(self, model: tf.keras.Model, gradients: list[tf.Tensor | None],
                          variables: Sequence[tf.Variable]) -> list[tf.Tensor | None]:
    """Changes the gradients before the optimizer applies them (e.g. masks them).

    Args:
      model: the model.
      gradients: one per variable (None where a variable has none).
      variables: the trainable variables, in the gradients' order.

    Returns:
      The gradients to apply, in the same order (default: unchanged).
    """
    return gradients

  def after_apply(self, model: tf.keras.Model, ctx: StepContext) -> dict[str, tf.Tensor]:
    """Acts after the optimizer step, in the compiled train_step.

    Args:
      model: the model.
      ctx: the step's context.

    Returns:
      A dict of values to log (names declared in log_names).
    """
    return {}

  def on_epoch_end(self, model: tf.keras.Model, epoch: int, logs: dict[str, Any]) -> None:
    """Acts at the end of an epoch, eagerly (ObjectiveEpochCallback).

    Args:
      model: the model.
      epoch: the epoch that ended, from 0.
      logs: Keras's logs of the epoch.
    """

  def set_validation_data(self, dataset: tf.data.Dataset) -> None:
    """Offered the held-out dataset before training, for hooks that steer on it.

    Args:
      dataset: the validation dataset.
    """

  def before_restore(self, checkpoint_keys: Iterable[str]) -> str | None:
    """Offered the variable names of the checkpoint a run resumes from, before it is
    restored: a hook whose state has grown since the run began can return to the state it
    began with.

    Args:
      checkpoint_keys: the names of the checkpoint's variables.

    Returns:
      A line for the log, or None.
    """

  def log_names(self) -> list[str]:
    """The names of the values after_apply returns (default: none)."""
    return []

  def get_config(self) -> dict[str, Any]:
    """Its class, name and settings (recorded in summary.json)."""
    return {"class": type(self).__name__, "name": self.name}


class Objective(tf.Module):
  """A list of loss terms and a list of training hooks.

  Args:
    terms: the loss terms, at least one, with distinct names.
    hooks: the training hooks, applied in order.
    name: the module's name.

  Raises:
    ValueError: no terms, or two terms of the same name.
  """

  def __init__(self, terms: Sequence[LossTerm], hooks: Sequence[TrainingHook] = (),
               name: str = "objective"):
    super().__init__(name=name)
    if not terms:
      raise ValueError("an objective needs at least one loss term")
    names = [t.name for t in terms]
    if len(set(names)) != len(names):
      raise ValueError(f"loss term names must be unique, got {names}")
    self.terms = list(terms)
    self.hooks = list(hooks)

  def context(self, model: tf.keras.Model, x: tf.Tensor, outputs: dict[str, tf.Tensor],
              training: bool | tf.Tensor) -> StepContext:
    """The StepContext of one forward pass (the model's train_step/test_step call this).

    Args:
      model, x, outputs, training: as for StepContext.

    Returns:
      A new StepContext.
    """
    return StepContext(model, x, outputs, training)

  def __call__(self, ctx: StepContext) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The loss of one step.

    Args:
      ctx: the step's context.

    Returns:
      (total loss, logs): the sum of the weighted terms, and every term's value with
      the total as "loss".
    """
    total, logs = 0., {}
    for term in self.terms:
      contribution, term_logs = term(ctx)
      total += contribution
      logs.update(term_logs)
    logs["loss"] = total
    return total, logs

  def log_names(self) -> list[str]:
    """The names logged: "loss", then every term's and hook's, each once, in order."""
    names = ["loss"]
    for item in self.terms + self.hooks:
      names.extend(n for n in item.log_names() if n not in names)
    return names

  def get_config(self) -> dict[str, Any]:
    """{"terms": [...], "hooks": [...]}: their configs (recorded in summary.json)."""
    return {"terms": [t.get_config() for t in self.terms],
            "hooks": [h.get_config() for h in self.hooks]}


class BinaryCrossEntropy(LossTerm):
  """Mean binary cross-entropy between x in [0, 1] and the sigmoid output (Keras's
  `binary_crossentropy`: averaged over pixels and images), computed from the logits
  `ctx["logits"]` for numerical stability: the MNIST autoencoder's distortion.

  Args:
    weight: the factor of the term in the loss.
    name: logged as (default "bce").
  """

  def __init__(self, weight: float = 1.0, name: str = "bce"):
    super().__init__(weight, name)

  def value(self, ctx: StepContext) -> tf.Tensor:
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=ctx.x, logits=ctx["logits"]))


def rate_distortion(lmbda: float, distortion: str = "mse") -> Objective:
  """The classic objective R + λ·D (Ballé et al. 2017).

  Args:
    lmbda: λ, the weight of the distortion.
    distortion: one of DISTORTIONS.

  Returns:
    An Objective of a Rate and a Distortion term, with no hooks.

  Raises:
    ValueError: an unknown distortion.
  """
  return Objective([Rate(), Distortion(lmbda, distortion)])


class ObjectiveEpochCallback(tf.keras.callbacks.Callback):
  """Calls every hook's `on_epoch_end` (e.g. ADMM's Z/U updates)."""

  def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
    for hook in self.model.objective.hooks:
      hook.on_epoch_end(self.model, epoch, logs or {})
