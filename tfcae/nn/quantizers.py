"""Quantizers for the latent code.

`stochastic_round` is the quantizer of Theis, Shi, Cunningham & Huszár, "Lossy image
compression with compressive autoencoders", ICLR 2017 (section 2.1), used by CAE-P
(Zhao & Liao): in training each value t is rounded down or up at random,

  [t] = ⌊t⌋ + ε,   ε ~ Bernoulli(t − ⌊t⌋),

so E[[t]] = t, and the backward pass treats the rounding as the identity
(d[t]/dt := 1, Theis et al. eq. 5's "replace the derivative"). At inference the values
are rounded deterministically to the nearest integer — the same integer grid, so the
decoder sees at test time exactly the kind of values it was trained on.
"""
from __future__ import annotations

import tensorflow as tf

__all__ = ["stochastic_round"]


def stochastic_round(t: tf.Tensor, training: bool | tf.Tensor,
                     seed: int | None = None) -> tf.Tensor:
  """⌊t⌋ + Bernoulli(t − ⌊t⌋) with the identity gradient if training, else round(t).

  Args:
    t: float tensor.
    training: Python bool (or a boolean tensor) selecting the quantizer.
    seed: optional op seed for tf.random.uniform (tests).

  Returns:
    A tensor of t's shape and dtype holding integers.
  """
  t = tf.convert_to_tensor(t)

  def noisy():
    floor = tf.math.floor(t)
    # ε = 1 with probability t − ⌊t⌋ (u < p for u ~ U[0, 1)).
    up = tf.cast(tf.random.uniform(tf.shape(t), dtype=t.dtype, seed=seed) < t - floor,
                 t.dtype)
    # The straight-through form t + stop_gradient(q − t): value q, gradient the identity.
    return t + tf.stop_gradient(floor + up - t)

  def deterministic():
    # tf.round rounds half to even, exactly as TFC's range coder quantises
    # (ContinuousBatchedEntropyModel.compress), so forward() and the file agree.
    return t + tf.stop_gradient(tf.round(t) - t)

  if isinstance(training, bool):
    return noisy() if training else deterministic()
  return tf.cond(tf.convert_to_tensor(training), noisy, deterministic)
