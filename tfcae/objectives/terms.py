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
import tensorflow as tf

__all__ = ["DISTORTIONS", "MS_SSIM_POWER_FACTORS", "MS_SSIM_FLOOR", "ms_ssim",
           "StepContext", "LossTerm", "Rate", "Distortion", "TrainingHook", "Objective",
           "BinaryCrossEntropy", "rate_distortion", "ObjectiveEpochCallback"]

DISTORTIONS = ("mse", "ms-ssim", "ssim", "caep-mix")

# TensorFlow's MS-SSIM weights (Wang et al. 2003), fine to coarse.
MS_SSIM_POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# The floor on each scale's factor before the weighted geometric mean (see ms_ssim).
MS_SSIM_FLOOR = 1e-6


def ms_ssim(x, x_hat, max_val=255.):
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
  """

  def __init__(self, model, x, outputs, training):
    self.model = model
    self.x = tf.cast(x, tf.float32)
    outputs = dict(outputs)
    for key in ("x_hat", "bits"):
      if key in outputs and outputs[key].dtype != tf.float32:
        outputs[key] = tf.cast(outputs[key], tf.float32)
    self.outputs = outputs
    self.training = training
    self._cache = {}

  def __getitem__(self, key):
    return self.outputs[key]

  @property
  def num_pixels(self):
    if "num_pixels" not in self._cache:
      self._cache["num_pixels"] = tf.cast(tf.reduce_prod(tf.shape(self.x)[:-1]), tf.float32)
    return self._cache["num_pixels"]

  @property
  def bpp(self):
    """Bits per pixel of this (per-replica) batch, from the entropy model."""
    if "bpp" not in self._cache:
      self._cache["bpp"] = tf.reduce_sum(self.outputs["bits"]) / self.num_pixels
    return self._cache["bpp"]

  def distortion(self, metric):
    """Mean distortion of the batch: 'mse' (0..255 scale) or 'ms-ssim' (1 − MS-SSIM)."""
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
  """One additive term of the loss. Sub-classes implement `value(ctx)` (unweighted)."""

  def __init__(self, weight=1.0, name=None):
    super().__init__(name=name)
    self.weight = float(weight)

  def value(self, ctx):
    raise NotImplementedError

  def __call__(self, ctx):
    """Returns (weighted loss contribution, dict of values to log)."""
    v = self.value(ctx)
    return self.weight * v, {self.name: v}

  def log_names(self):
    return [self.name]

  def get_config(self):
    return {"class": type(self).__name__, "name": self.name, "weight": self.weight}


class Rate(LossTerm):
  """R: bits per pixel estimated by the entropy model (Ballé et al. 2017, eq. 2)."""

  def __init__(self, weight=1.0, name="bpp"):
    super().__init__(weight, name)

  def value(self, ctx):
    return ctx.bpp


class Distortion(LossTerm):
  """λ·D with D = MSE on the 0..255 scale, or 1 − MS-SSIM."""

  def __init__(self, weight=0.01, metric="mse", name=None):
    if metric not in DISTORTIONS:
      raise ValueError(f"unknown distortion {metric!r}; expected one of {DISTORTIONS}")
    super().__init__(weight, name or metric.replace("-", "_"))
    self.metric = metric

  def value(self, ctx):
    return ctx.distortion(self.metric)

  def get_config(self):
    return dict(super().get_config(), metric=self.metric)


class TrainingHook(tf.Module):
  """Acts around the optimizer step. All methods are optional no-ops.

  `transform_gradients` and `after_apply` run inside the compiled train_step (graph
  mode, per replica under tf.distribute); `on_epoch_end` runs eagerly.
  """

  def build(self, model):
    """Creates the hook's variables from the built model (called by model.compile(),
    before a checkpoint is restored)."""

  def transform_gradients(self, model, gradients, variables):
    return gradients

  def after_apply(self, model, ctx):
    """Returns a dict of values to log (names declared in log_names)."""
    return {}

  def on_epoch_end(self, model, epoch, logs):
    pass

  def set_validation_data(self, dataset):
    """Offered the held-out dataset before training, for hooks that steer on it."""

  def before_restore(self, checkpoint_keys):
    """Offered the variable names of the checkpoint a run resumes from, before it is
    restored: a hook whose state has grown since the run began can return to the state it
    began with. Returns a line for the log, or None."""

  def log_names(self):
    return []

  def get_config(self):
    return {"class": type(self).__name__, "name": self.name}


class Objective(tf.Module):
  """A list of loss terms and a list of training hooks."""

  def __init__(self, terms, hooks=(), name="objective"):
    super().__init__(name=name)
    if not terms:
      raise ValueError("an objective needs at least one loss term")
    names = [t.name for t in terms]
    if len(set(names)) != len(names):
      raise ValueError(f"loss term names must be unique, got {names}")
    self.terms = list(terms)
    self.hooks = list(hooks)

  def context(self, model, x, outputs, training):
    """The StepContext of one forward pass (the model's train_step/test_step call this)."""
    return StepContext(model, x, outputs, training)

  def __call__(self, ctx):
    """Returns (total loss, logs)."""
    total, logs = 0., {}
    for term in self.terms:
      contribution, term_logs = term(ctx)
      total += contribution
      logs.update(term_logs)
    logs["loss"] = total
    return total, logs

  def log_names(self):
    names = ["loss"]
    for item in self.terms + self.hooks:
      names.extend(n for n in item.log_names() if n not in names)
    return names

  def get_config(self):
    return {"terms": [t.get_config() for t in self.terms],
            "hooks": [h.get_config() for h in self.hooks]}


class BinaryCrossEntropy(LossTerm):
  """Mean binary cross-entropy between x in [0, 1] and the sigmoid output (Keras's
  `binary_crossentropy`: averaged over pixels and images), computed from the logits
  `ctx["logits"]` for numerical stability: the MNIST autoencoder's distortion (issue 6)."""

  def __init__(self, weight=1.0, name="bce"):
    super().__init__(weight, name)

  def value(self, ctx):
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=ctx.x, logits=ctx["logits"]))


def rate_distortion(lmbda, distortion="mse"):
  """The classic objective R + λ·D (Ballé et al. 2017)."""
  return Objective([Rate(), Distortion(lmbda, distortion)])


class ObjectiveEpochCallback(tf.keras.callbacks.Callback):
  """Calls every hook's `on_epoch_end` (e.g. ADMM's Z/U updates)."""

  def on_epoch_end(self, epoch, logs=None):
    for hook in self.model.objective.hooks:
      hook.on_epoch_end(self.model, epoch, logs or {})
