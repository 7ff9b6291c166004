"""Exact projections onto ℓ1, ℓ1,1 and ℓ1,∞ balls, in TensorFlow.

These are the weight projections of Gille, Guyard, Antonini & Barlaud, "Learning sparse
auto-encoders for green AI image coding" (arXiv:2209.04448, 2022): after each
gradient step an encoder kernel is projected back onto a norm ball, and the mixed norms
zero whole groups of weights (structured sparsity), which is what makes the encoder cheap.

Conventions
-----------
* For the mixed norms the argument is a 2-D tensor whose ROWS ARE THE GROUPS:
  ‖W‖_{1,1} = Σ_i Σ_j |w_ij| and ‖W‖_{1,∞} = Σ_i max_j |w_ij|. `tfcae.methods.constraints` turns
  conv kernels into such matrices (`to_groups`) and back.
* Every function works in float32 and float64, eagerly and inside `tf.function` with
  unknown shapes. Thresholds are computed in float64 whatever the input dtype: a float32
  cumulative sum over the ~400k entries of a 5×5×128×128 kernel would otherwise lose
  ~3 significant digits, and the result would miss the ball by more than rounding.
* An input already inside the ball is returned unchanged (bit-identical, via `tf.cond`,
  so no arithmetic touches it); radius 0 gives exact zeros; no NaN/Inf is produced for
  finite inputs (zero matrices, ties, a single row or column, empty tensors included).
* A negative radius raises ValueError (Python number) or InvalidArgumentError (tensor).

The ℓ1 building block is the sort-based algorithm of Duchi, Shalev-Shwartz, Singer &
Chandra, "Efficient projections onto the ℓ1-ball for learning in high dimensions", ICML
2008 (Fig. 1), in the closed form noted by Condat, "Fast projection onto the simplex and
the ℓ1 ball", Math. Programming 158, 2016: with u the magnitudes sorted in
decreasing order and s_k = u_1 + … + u_k, the soft threshold is

    τ = max_k (s_k − r) / k,       P(w) = sign(w) · max(|w| − τ, 0).          (L1)

(The sequence (s_k − r)/k increases while u_{k+1} exceeds it and decreases afterwards, so
its maximum is Duchi's τ = (s_ρ − r)/ρ; taking the max avoids finding ρ by indexing, which
also makes empty rows and r = 0 safe: r = 0 gives τ = u_1, i.e. zeros.)
"""
from __future__ import annotations

import numbers
from typing import Union

import numpy as np
import tensorflow as tf

__all__ = ["l1_norm", "l11_norm", "l1inf_norm", "project_l1", "project_l11",
           "project_l1inf", "project_l1inf_bilevel"]

_F64 = tf.float64

# What the functions accept: anything tf.convert_to_tensor takes (a tensor, a variable,
# a NumPy array); a radius may also be a Python number.
_Tensor = Union[tf.Tensor, tf.Variable, np.ndarray]
_Radius = Union[float, tf.Tensor, np.ndarray]


# --------------------------------------------------------------------------- helpers

def _check_input(w, matrix):
  w = tf.convert_to_tensor(w)
  if not w.dtype.is_floating:
    raise TypeError(f"Expected a floating-point tensor, got {w.dtype.name}.")
  if matrix and w.shape.rank is not None and w.shape.rank != 2:
    raise ValueError(f"Expected a 2-D tensor whose rows are the groups, got shape {w.shape}.")
  return w


def _check_radius(radius):
  """Returns the radius as a float64 scalar tensor; rejects negative radii.

  A Python/NumPy number is checked at once (ValueError, also at tf.function trace time);
  a tensor is checked when it runs (tf.debugging raises InvalidArgumentError).
  """
  if isinstance(radius, numbers.Real) and not isinstance(radius, bool):
    radius = float(radius)
    if not radius >= 0.:  # also rejects NaN
      raise ValueError(f"The radius must be >= 0, got {radius}.")
    return tf.constant(radius, _F64)
  if isinstance(radius, np.ndarray) and radius.ndim == 0:
    return _check_radius(radius.item())
  radius = tf.cast(tf.convert_to_tensor(radius), _F64)
  radius.shape.assert_has_rank(0)
  with tf.control_dependencies([tf.debugging.assert_greater_equal(
      radius, tf.constant(0., _F64), message="The radius must be >= 0.")]):
    return tf.identity(radius)


def _l1_thresholds(magnitudes, radii):
  """Row-wise soft thresholds of the ℓ1-ball projection, Eq. (L1) of the module docstring.

  magnitudes: [n, m] float64, >= 0; radii: [n] float64, >= 0. Returns τ: [n], >= 0, such
  that Σ_j max(a_ij − τ_i, 0) = r_i for rows with Σ_j a_ij > r_i, and τ_i = 0 otherwise.
  O(nm log m) (one sort per row, all rows at once).
  """
  u = tf.sort(magnitudes, axis=-1, direction="DESCENDING")
  s = tf.cumsum(u, axis=-1)
  k = tf.cast(tf.range(1, tf.shape(u)[-1] + 1), _F64)
  tau = tf.reduce_max((s - radii[:, None]) / k, axis=-1)
  # Rows inside their ball have all (s_k − r)/k <= 0; empty rows give −inf. Both mean τ = 0.
  return tf.maximum(tau, tf.constant(0., _F64))


def _soft_threshold(w, tau):
  """sign(w)·max(|w| − τ, 0) in float64, cast back to w's dtype.

  Done in float64 and rounded once: the float32 output error is then relative to each
  output entry (so to the radius), plus a float64 cancellation in |w| − τ of ~1e-16·|w|.
  Subtracting in float32 would instead add ~1e-7·|w| per entry, i.e. ~1e-7·‖w‖₁ in total,
  which dominates when the radius is a small fraction of the norm.
  """
  w64 = tf.cast(w, _F64)
  return tf.cast(tf.sign(w64) * tf.nn.relu(tf.abs(w64) - tau), w.dtype)


def _clip_rows(w, mu):
  """sign(w_ij)·min(|w_ij|, μ_i): the ℓ∞-ball projection of each row i at radius μ_i."""
  w64 = tf.cast(w, _F64)
  return tf.cast(tf.sign(w64) * tf.minimum(tf.abs(w64), mu[:, None]), w.dtype)


def _project_or_keep(w, radius, norm, project):
  """`w` itself if norm <= radius, zeros if radius == 0, else `project()`.

  tf.cond (not tf.where) so that an inside-ball input is returned bit-identical and the
  projection is not even computed — the common case once training has converged.
  """
  def outside():
    return tf.cond(radius > 0., project, lambda: tf.zeros_like(w))
  return tf.cond(norm <= radius, lambda: tf.identity(w), outside)


# --------------------------------------------------------------------------- norms

def l1_norm(w: _Tensor) -> tf.Tensor:
  """‖w‖₁ = Σ |w| over all entries.

  Args:
    w: a floating-point tensor of any shape.

  Returns:
    The norm, a float64 scalar tensor.

  Raises:
    TypeError: `w` is not floating-point.
  """
  w = _check_input(w, matrix=False)
  return tf.reduce_sum(tf.abs(tf.cast(w, _F64)))


def l11_norm(w: _Tensor) -> tf.Tensor:
  """‖W‖_{1,1} = Σ_i ‖W_i‖₁ over the rows of a 2-D tensor (= its entrywise ℓ1 norm).

  Args:
    w: a 2-D floating-point tensor whose rows are the groups.

  Returns:
    The norm, a float64 scalar tensor.

  Raises:
    TypeError: `w` is not floating-point.
    ValueError: `w` has a known rank other than 2.
  """
  w = _check_input(w, matrix=True)
  return tf.reduce_sum(tf.abs(tf.cast(w, _F64)))


def l1inf_norm(w: _Tensor) -> tf.Tensor:
  """‖W‖_{1,∞} = Σ_i max_j |w_ij| over the rows (groups) of a 2-D tensor.

  Args:
    w: a 2-D floating-point tensor whose rows are the groups (an empty row counts 0).

  Returns:
    The norm, a float64 scalar tensor.

  Raises:
    TypeError: `w` is not floating-point.
    ValueError: `w` has a known rank other than 2.
  """
  w = _check_input(w, matrix=True)
  a = tf.abs(tf.cast(w, _F64))
  # Padding with a zero column makes the max of an empty row 0 (reduce_max gives −inf).
  a = tf.concat([a, tf.zeros([tf.shape(a)[0], 1], _F64)], axis=1)
  return tf.reduce_sum(tf.reduce_max(a, axis=1))


# --------------------------------------------------------------------------- ℓ1

def project_l1(w: _Tensor, radius: _Radius) -> tf.Tensor:
  """Euclidean projection of the whole tensor `w` (any shape) onto {x : ‖x‖₁ <= radius}.

  Sort-based, O(n log n): Duchi et al. (2008), Fig. 1, with the threshold in Condat's
  (2016) closed form, Eq. (L1) of the module docstring. The ℓ1 ball ignores any grouping,
  so zeros are scattered (unstructured sparsity).

  Args:
    w: a floating-point tensor of any shape (float32 or float64).
    radius: the ball's radius, >= 0 (a Python number or a scalar tensor).

  Returns:
    The projection, of w's shape and dtype; `w` itself (bit-identical) when it is
    already inside the ball, zeros when radius is 0.

  Raises:
    TypeError: `w` is not floating-point.
    ValueError: a negative (or NaN) Python radius.
    tf.errors.InvalidArgumentError: a negative radius tensor, when it runs.
  """
  w = _check_input(w, matrix=False)
  radius = _check_radius(radius)

  def project():
    a = tf.reshape(tf.abs(tf.cast(w, _F64)), [1, -1])
    tau = _l1_thresholds(a, radius[None])[0]
    return _soft_threshold(w, tau)

  return _project_or_keep(w, radius, l1_norm(w), project)


def _project_rows_l1(w, radii):
  """Projects each row i of the 2-D `w` onto the ℓ1 ball of radius radii[i] (vectorised)."""
  a = tf.abs(tf.cast(w, _F64))
  tau = _l1_thresholds(a, radii)
  # Rows already inside their own ball are kept bit-identical (τ = 0 would also keep them,
  # up to a float64 round trip, which is exact; the where makes it explicit).
  inside = tf.reduce_sum(a, axis=1) <= radii
  return tf.where(inside[:, None], w, _soft_threshold(w, tau[:, None]))


# --------------------------------------------------------------------------- ℓ1,1

def project_l11(w: _Tensor, radius: _Radius) -> tf.Tensor:
  """Bilevel ℓ1,1 projection of a 2-D tensor whose rows are the groups.

  Barlaud & Guyard, "Learning sparse deep neural networks using efficient structured
  projections on convex constraints for green AI", ICPR 2020; Gille et al. (2023),
  Algorithm 1:
    1. v_i = ‖W_i‖₁ (the row norms);
    2. t = P_{ℓ1}(v, radius) — the ℓ1 projection of the vector of row norms, so t_i >= 0
       and Σ_i t_i = radius;
    3. X_i = P_{ℓ1}(W_i, t_i) for every row, all rows at once.
  Rows with t_i = 0 (those whose norm is below the first-level threshold) vanish: this is
  the structured sparsity. The result has ‖X‖_{1,1} = radius when ‖W‖_{1,1} > radius.

  Note this is NOT the Euclidean projection onto the ℓ1,1 ball — that ball is the plain ℓ1
  ball of the flattened matrix (`project_l1`), which spreads zeros over all rows. The
  bilevel projection is the exact composition above; cost O(nm log m + n log n).

  Args:
    w: a 2-D floating-point tensor [groups, entries per group].
    radius: the ball's radius, >= 0 (a Python number or a scalar tensor).

  Returns:
    The projection, of w's shape and dtype; `w` itself (bit-identical) when
    ‖W‖_{1,1} <= radius, zeros when radius is 0.

  Raises:
    TypeError: `w` is not floating-point.
    ValueError: `w` has a known rank other than 2, or a negative Python radius.
    tf.errors.InvalidArgumentError: a negative radius tensor, when it runs.
  """
  w = _check_input(w, matrix=True)
  radius = _check_radius(radius)

  def project():
    row_norms = tf.reduce_sum(tf.abs(tf.cast(w, _F64)), axis=1)
    # Level 1: row norms are >= 0, so their projection is the soft threshold (L1) itself.
    tau = _l1_thresholds(row_norms[None, :], radius[None])[0]
    t = tf.nn.relu(row_norms - tau)
    # Level 2: every row onto its own radius t_i. t_i <= ‖W_i‖₁ always, with equality
    # only when τ = 0, i.e. when the input was inside (handled by _project_or_keep).
    return _project_rows_l1(w, t)

  return _project_or_keep(w, radius, l11_norm(w), project)


# --------------------------------------------------------------------------- ℓ1,∞

def _l1inf_theta(u, s, radius):
  """The dual variable θ of the exact ℓ1,∞ projection, by a sweep over its breakpoints.

  Optimality conditions (Quattoni, Carreras, Collins & Darrell, "An efficient projection
  for ℓ1,∞ regularization", ICML 2009): the projection clips row i at μ_i >= 0,
  with Σ_i μ_i = C and one common amount removed from every surviving row,

      Σ_j max(|w_ij| − μ_i, 0) = θ  for rows with μ_i > 0,  and  ‖W_i‖₁ <= θ  when μ_i = 0.

  For a given θ, μ_i(θ) = max(0, max_k (s_ik − θ)/k) (the same closed form as (L1), read
  the other way round), so F(θ) = Σ_i μ_i(θ) is continuous, convex, decreasing and
  piecewise linear. Between breakpoints row i has exactly k entries above μ_i and
  contributes (s_ik − θ)/k; it moves from k to k+1 entries at θ = β_ik = s_ik − k·u_i,k+1
  (u_i,m+1 := 0, so β_im = ‖W_i‖₁ is where the row vanishes). Writing F(θ) = A − θ·B on
  each piece, crossing β_ik changes A by s_i,k+1/(k+1) − s_ik/k and B by 1/(k+1) − 1/k
  (by −s_im/m and −1/m at the last one). Sorting all nm breakpoints and accumulating these
  changes gives F at every breakpoint; θ solves A − θ·B = C on the piece where F crosses
  C. This is Quattoni et al.'s sort-and-sweep, O(nm log(nm)); exact up to rounding.

  u: [n, m] magnitudes sorted decreasingly per row; s: their cumulative sums (float64).
  Requires m >= 1, radius > 0 and ‖W‖_{1,∞} > radius.
  """
  n = tf.shape(u)[0]
  m = tf.shape(u)[1]
  k = tf.cast(tf.range(1, m + 1), _F64)
  u_next = tf.concat([u[:, 1:], tf.zeros([n, 1], _F64)], axis=1)
  beta = s - k * u_next                                    # [n, m], increasing along rows
  s_over_k = s / k
  zero_col = tf.zeros([n, 1], _F64)
  d_a = tf.concat([s_over_k[:, 1:], zero_col], axis=1) - s_over_k
  inv_k = 1. / k
  d_b = tf.concat([inv_k[1:], tf.zeros([1], _F64)], axis=0) - inv_k
  d_b = tf.broadcast_to(d_b[None, :], [n, m])

  beta = tf.reshape(beta, [-1])
  order = tf.argsort(beta, stable=True)
  beta = tf.gather(beta, order)
  # Coefficients of F = A − θB just after each breakpoint (at θ = 0 every row has k = 1).
  a0 = tf.reduce_sum(u[:, 0])
  b0 = tf.cast(n, _F64)
  a_after = a0 + tf.cumsum(tf.gather(tf.reshape(d_a, [-1]), order))
  b_after = b0 + tf.cumsum(tf.gather(tf.reshape(d_b, [-1]), order))
  f = a_after - beta * b_after                             # F at each breakpoint (continuous)
  # F is exactly 0 at the last breakpoint (every row has vanished); say so, because the sums
  # above can leave ~1e-16 there, and a radius below that (say 1e-277) would then find no
  # breakpoint with F <= C and argmax would fall back to the first one (X = W).
  f = tf.concat([f[:-1], tf.zeros([1], _F64)], axis=0)
  # First breakpoint where F <= C; it exists because F = 0 after the last one and C > 0.
  # argmax of the boolean rather than a count, in case rounding breaks monotonicity.
  j = tf.argmax(tf.cast(f <= radius, tf.int32), output_type=tf.int32)
  a_prev = tf.concat([[a0], a_after], axis=0)[j]
  b_prev = tf.concat([[b0], b_after], axis=0)[j]
  beta_prev = tf.concat([tf.zeros([1], _F64), beta], axis=0)[j]
  theta = (a_prev - radius) / b_prev                       # b_prev > 0: F > C > 0 there
  # Guard against rounding pushing θ off its piece.
  return tf.clip_by_value(theta, beta_prev, beta[j])


def project_l1inf(w: _Tensor, radius: _Radius) -> tf.Tensor:
  """Exact Euclidean projection of a 2-D tensor onto {X : Σ_rows max_j |x_ij| <= radius}.

  Quattoni et al. (2009): the projection is X_ij = sign(w_ij)·min(|w_ij|, μ_i), whole rows
  vanish (μ_i = 0) when their ℓ1 norm is <= θ, and θ, μ are found by the breakpoint sweep
  of `_l1inf_theta`. Cost O(nm log(nm)) — one sort per row plus one global argsort; see
  `project_l1inf_bilevel` for the O(nm) approximation.

  Args:
    w: a 2-D floating-point tensor [groups, entries per group].
    radius: the ball's radius, >= 0 (a Python number or a scalar tensor).

  Returns:
    The projection, of w's shape and dtype; `w` itself (bit-identical) when
    ‖W‖_{1,∞} <= radius, zeros when radius is 0.

  Raises:
    TypeError: `w` is not floating-point.
    ValueError: `w` has a known rank other than 2, or a negative Python radius.
    tf.errors.InvalidArgumentError: a negative radius tensor, when it runs.
  """
  w = _check_input(w, matrix=True)
  radius = _check_radius(radius)

  def project():
    a = tf.abs(tf.cast(w, _F64))
    u = tf.sort(a, axis=1, direction="DESCENDING")
    s = tf.cumsum(u, axis=1)
    theta = _l1inf_theta(u, s, radius)
    k = tf.cast(tf.range(1, tf.shape(u)[1] + 1), _F64)
    mu = tf.nn.relu(tf.reduce_max((s - theta) / k, axis=1))
    return _clip_rows(w, mu)

  return _project_or_keep(w, radius, l1inf_norm(w), project)


def project_l1inf_bilevel(w: _Tensor, radius: _Radius) -> tf.Tensor:
  """Bilevel ℓ1,∞ projection: clip each row at the ℓ1 projection of the row maxima.

  Barlaud, Perez & Marmorat, "Linear time bi-level ℓ1,∞ projection; application to the
  sparsification of auto-encoders neural networks", arXiv:2407.16293 (2024):
    1. v_i = max_j |w_ij|;  2. u = P_{ℓ1}(v, radius);  3. X_ij = sign(w_ij)·min(|w_ij|, u_i).
  Rows with u_i = 0 vanish, and ‖X‖_{1,∞} = Σ u_i = radius when the input was outside.
  It is a projection onto the ball (idempotent, lands on it) but not the Euclidean one.
  O(nm) for the maxima and the clipping, plus an O(n log n) sort of the n maxima.

  Args:
    w: a 2-D floating-point tensor [groups, entries per group].
    radius: the ball's radius, >= 0 (a Python number or a scalar tensor).

  Returns:
    The projection, of w's shape and dtype; `w` itself (bit-identical) when
    ‖W‖_{1,∞} <= radius, zeros when radius is 0.

  Raises:
    TypeError: `w` is not floating-point.
    ValueError: `w` has a known rank other than 2, or a negative Python radius.
    tf.errors.InvalidArgumentError: a negative radius tensor, when it runs.
  """
  w = _check_input(w, matrix=True)
  radius = _check_radius(radius)

  def project():
    a = tf.abs(tf.cast(w, _F64))
    v = tf.reduce_max(tf.concat([a, tf.zeros([tf.shape(a)[0], 1], _F64)], axis=1), axis=1)
    tau = _l1_thresholds(v[None, :], radius[None])[0]
    return _clip_rows(w, tf.nn.relu(v - tau))

  return _project_or_keep(w, radius, l1inf_norm(w), project)
