"""Bottleneck decorrelation: Laakom et al., "On reducing the correlation of bottleneck
representations in autoencoders" — a loss term α·Σ_{i≠j} C_ij² over the bottleneck, for
the compressive autoencoders (`--decorrelation_weight`) and the MNIST study
(tfcae.training.mnist).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf

from tfcae.methods.registry import METHODS, Method
from tfcae.objectives.terms import LossTerm
from tfcae.registry import setting

__all__ = ["DecorrelationSettings", "BottleneckDecorrelation", "DECORRELATION_FORMS", "Decorrelation", "decorrelation_penalty"]

DECORRELATION_FORMS = ("squared", "abs")


def decorrelation_penalty(features: tf.Tensor, form: str = "squared") -> tf.Tensor:
  """Σ_{i≠j} C(g_i, g_j)² (or |C|): off-diagonal covariances of bottleneck features.

  Laakom et al., "On reducing the correlation of bottleneck representations in
  autoencoders": the paper adds α·Σ_{i≠j} C(g_i, g_j) (its eq. 2) to the reconstruction
  loss. A signed sum is unbounded below (anti-correlated features drive it to −∞), so
  the default sums the squared covariances; form="abs" sums their absolute values.

  Args:
    features: [batch, units] (dense bottleneck; the units are the features) or
      [batch, H, W, C] (convolutional; the C channels are the features and every
      batch × position is a sample).
    form: "squared" or "abs".

  Returns:
    A scalar ≥ 0, zero iff the features are pairwise uncorrelated over the samples. The
    covariance is centred with the sample mean and divided by the number of samples
    (the biased, maximum-likelihood estimate, as in the paper's C).

  Raises:
    ValueError: an unknown form, or features of known rank other than 2 or 4.
  """
  if form not in DECORRELATION_FORMS:
    raise ValueError(f"unknown decorrelation form {form!r}; expected one of "
                     f"{DECORRELATION_FORMS}")
  features = tf.convert_to_tensor(features)
  if features.shape.rank is not None and features.shape.rank not in (2, 4):
    raise ValueError("decorrelation_penalty expects [batch, units] or [batch, H, W, C], "
                     f"got shape {features.shape}")
  g = tf.reshape(tf.cast(features, tf.float32), [-1, tf.shape(features)[-1]])
  num_samples = tf.maximum(tf.cast(tf.shape(g)[0], tf.float32), 1.)
  g -= tf.reduce_mean(g, axis=0, keepdims=True)
  covariance = tf.matmul(g, g, transpose_a=True) / num_samples
  off_diagonal = covariance - tf.linalg.diag(tf.linalg.diag_part(covariance))
  if form == "squared":
    return tf.reduce_sum(tf.square(off_diagonal))
  return tf.reduce_sum(tf.abs(off_diagonal))


class Decorrelation(LossTerm):
  """α·Σ_{i≠j} C_ij² over the bottleneck `ctx[key]` (Laakom et al., eq. 2; see
  `decorrelation_penalty`).

  The default key "y" is the bottleneck before quantisation, so the gradient of this term
  reaches only the encoder (analysis transform) — nothing after the bottleneck reads it.

  Under tf.distribute each replica computes the covariance of its own per-replica batch
  (samples = its images × latent positions), and train_step averages the loss over
  replicas: the term is the mean of per-replica penalties, not the penalty of the global
  batch. That needs no cross-replica communication inside the loss, matches what a
  single-device run with the per-replica batch size would optimise, and is what the
  paper's per-batch estimate is anyway (a batch estimate of C, not the population C).

  Args:
    weight: α, >= 0.
    form: one of DECORRELATION_FORMS.
    key: the entry of the model's outputs holding the bottleneck.
    name: logged as.

  Raises:
    ValueError: a negative weight or an unknown form.
  """

  def __init__(self, weight: float = 0.01, form: str = "squared", key: str = "y",
               name: str = "decorrelation"):
    if weight < 0:
      raise ValueError(f"decorrelation weight α must be ≥ 0, got {weight}")
    if form not in DECORRELATION_FORMS:
      raise ValueError(f"unknown decorrelation form {form!r}; expected one of "
                       f"{DECORRELATION_FORMS}")
    super().__init__(weight, name)
    self.form = form
    self.key = key

  def value(self, ctx: Any) -> tf.Tensor:
    return decorrelation_penalty(ctx[self.key], self.form)

  def get_config(self) -> dict[str, Any]:
    return dict(super().get_config(), form=self.form, key=self.key)


@dataclasses.dataclass
class DecorrelationSettings:
  """The flags of the bottleneck decorrelation term (also bin/train_mnist's)."""
  decorrelation_weight: float = setting(0.0, "α of the bottleneck decorrelation term "
                                       "α·Σ_{i≠j} C_ij² over the bottleneck (a CAE's "
                                       "latents y; Laakom et al.); 0 disables it.")
  decorrelation_form: str = setting("squared", "Off-diagonal covariances summed squared or "
                                    "as absolute values.", ("squared", "abs"))


@METHODS.register
class BottleneckDecorrelation(Method):
  """Adds α·Σ_{i≠j} C_ij² over the latents y to the objective (Laakom et al., eq. 2)."""

  name = "decorrelation"
  settings = DecorrelationSettings

  @classmethod
  def enabled(cls, config: Any) -> bool:
    return config.decorrelation_weight != 0

  @classmethod
  def validate(cls, config: Any) -> None:
    if config.decorrelation_weight < 0:
      raise ValueError("--decorrelation_weight must be >= 0")

  @classmethod
  def parts(cls, config: Any) -> tuple[list[LossTerm], list]:
    return [Decorrelation(config.decorrelation_weight, config.decorrelation_form)], []
