"""Keras kernel constraints that project a layer's kernel onto an ℓ1, ℓ1,1 or ℓ1,∞ ball.

Gille, Guyard, Antonini & Barlaud, "Learning sparse auto-encoders for green AI image
coding" (arXiv:2209.04448) train the encoder under a norm-ball constraint by projecting
its kernels after every gradient step. Keras (2.14) does exactly that for a
`kernel_constraint`: the optimizer assigns `var.constraint(var)` after each
`apply_gradients` (step 4 of the objective seam in docs/design.md). So

    analysis_transform(..., kernel_constraint=L11Ball(groups="output_filters", radius=...))

is projected gradient descent on the constrained problem.

Groups. The mixed norms act on a matrix whose rows are groups (`tfcae.methods.projections`);
`to_groups` / `from_groups` view a kernel that way and back (exact inverses: transposes
and reshapes only). For a conv kernel [kh, kw, in, out] (or a dense one [in, out]):

  "output_filters"    one group per output channel o: kernel[..., o]  -> [out, kh·kw·in].
                      A zeroed group is a filter that can be removed, with its bias and the
                      next layer's matching input channel.
  "input_channels"    one group per input channel i: kernel[:, :, i, :] -> [in, kh·kw·out].
                      A zeroed group means the previous layer's channel i is unused.
  "kernel_positions"  one group per (h, w, i) position, across all output filters
                      -> [kh·kw·in, out]; the grouping Gille et al. use for ℓ1,∞. For a
                      dense kernel it coincides with "input_channels".

Transposed-convolution kernels ([kh, kw, out, in]) would need the last two names swapped;
these constraints are meant for the encoder's Conv2D/Dense layers.

Radius. `radius=` is absolute; `relative_radius=` is a fraction of the kernel's norm (in
that ball's norm) at the time of each projection. Because Keras applies a constraint after
EVERY step, a relative radius < 1 shrinks the kernel by that factor every step (0.3^k after
k steps): use it for a one-off projection of trained weights, and an absolute `radius`
(e.g. computed once as a fraction of the trained kernel's norm, as Gille et al. fix η)
for training under the constraint.
"""
from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np
import tensorflow as tf

from tfcae.methods import projections

_Tensor = Union[tf.Tensor, tf.Variable, np.ndarray]

GROUPINGS = ("output_filters", "input_channels", "kernel_positions")

__all__ = ["GROUPINGS", "to_groups", "from_groups", "L1Ball", "L11Ball", "L1InfBall",
           "sparsity_report"]


def _check_groups(groups):
  if groups not in GROUPINGS:
    raise ValueError(f"groups must be one of {GROUPINGS}, got {groups!r}.")
  return groups


def _rank(kernel):
  rank = kernel.shape.rank
  if rank is None or rank < 2:
    raise ValueError(f"Expected a kernel of known rank >= 2 ([..., in, out]), got shape "
                     f"{kernel.shape}.")
  return rank


def _permutation(groups, rank):
  """The transpose that puts the group axis first (None: no transpose needed)."""
  if groups == "output_filters":
    return [rank - 1] + list(range(rank - 1))
  if groups == "input_channels":
    return [rank - 2] + list(range(rank - 2)) + [rank - 1]
  return None  # kernel_positions: rows are already the leading (h, w, in) axes


def to_groups(kernel: _Tensor, groups: str) -> tf.Tensor:
  """A kernel as a 2-D matrix whose rows are the groups (see the module docstring).

  Args:
    kernel: a [..., in, out] kernel of known rank >= 2.
    groups: one of GROUPINGS.

  Returns:
    The [groups, entries per group] matrix, of the kernel's dtype.

  Raises:
    ValueError: an unknown grouping, or a kernel of unknown rank or rank < 2.
  """
  kernel = tf.convert_to_tensor(kernel)
  groups = _check_groups(groups)
  rank = _rank(kernel)
  perm = _permutation(groups, rank)
  if perm is None:
    return tf.reshape(kernel, [-1, tf.shape(kernel)[-1]])
  moved = tf.transpose(kernel, perm)
  return tf.reshape(moved, [tf.shape(moved)[0], -1])


def from_groups(matrix: _Tensor, groups: str,
                kernel_shape: Sequence[int] | tf.Tensor) -> tf.Tensor:
  """Inverse of `to_groups`: the group matrix back to a kernel.

  Args:
    matrix: a group matrix as `to_groups` returns it.
    groups: the grouping it was made with (one of GROUPINGS).
    kernel_shape: the kernel's shape, a vector of known length >= 2.

  Returns:
    The kernel, of shape `kernel_shape`.

  Raises:
    ValueError: an unknown grouping, or a shape of unknown length or length < 2.
  """
  groups = _check_groups(groups)
  kernel_shape = tf.convert_to_tensor(kernel_shape, tf.int32)
  rank = kernel_shape.shape[0]
  if rank is None or rank < 2:
    raise ValueError("kernel_shape must be a vector of known length >= 2.")
  perm = _permutation(groups, rank)
  if perm is None:
    return tf.reshape(matrix, kernel_shape)
  moved = tf.reshape(matrix, tf.gather(kernel_shape, perm))
  return tf.transpose(moved, np.argsort(perm).tolist())


class _BallConstraint(tf.keras.constraints.Constraint):
  """Shared radius handling, grouping and (de)serialisation of the ball constraints.

  Args:
    radius: the absolute radius, >= 0.
    relative_radius: the radius as a fraction (>= 0) of the kernel's norm at each
      projection (exactly one of radius and relative_radius).
    groups: one of GROUPINGS.

  Raises:
    ValueError: both or neither radius given, a negative radius, or an unknown grouping.
  """

  _norm_name = None

  def __init__(self, radius: float | None = None, relative_radius: float | None = None,
               groups: str = "output_filters"):
    if (radius is None) == (relative_radius is None):
      raise ValueError("Give exactly one of radius= and relative_radius=.")
    if radius is not None and not float(radius) >= 0.:
      raise ValueError(f"radius must be >= 0, got {radius}.")
    if relative_radius is not None and not float(relative_radius) >= 0.:
      raise ValueError(f"relative_radius must be >= 0, got {relative_radius}.")
    self.radius = None if radius is None else float(radius)
    self.relative_radius = None if relative_radius is None else float(relative_radius)
    self.groups = _check_groups(groups)

  def _norm(self, matrix):
    raise NotImplementedError

  def _project(self, matrix, radius):
    raise NotImplementedError

  def _radius(self, matrix):
    if self.radius is not None:
      return tf.constant(self.radius, tf.float64)
    return self.relative_radius * self._norm(matrix)

  def norm(self, kernel: _Tensor) -> tf.Tensor:
    """The kernel's norm in this ball's norm and grouping.

    Args:
      kernel: a [..., in, out] kernel.

    Returns:
      The norm, a float64 scalar tensor.
    """
    return self._norm(to_groups(kernel, self.groups))

  def radius_for(self, kernel: _Tensor) -> tf.Tensor:
    """The absolute radius this constraint would project `kernel` onto.

    Args:
      kernel: a [..., in, out] kernel.

    Returns:
      `radius`, or `relative_radius` times the kernel's norm, as a float64 scalar tensor.
    """
    return self._radius(to_groups(kernel, self.groups))

  def project(self, kernel: _Tensor, radius: float | tf.Tensor) -> tf.Tensor:
    """`kernel` projected onto this ball (norm and grouping) of an explicit radius.

    Double descent keeps the radii fixed at the values it measured once
    (tfcae.methods.double_descent) and passes them here, instead of the constraint's own
    `radius`/`relative_radius`.

    Args:
      kernel: a [..., in, out] kernel.
      radius: the absolute radius, a float64 scalar that may be a tensor read in the
        graph.

    Returns:
      The projected kernel, of the kernel's shape and dtype.
    """
    matrix = to_groups(kernel, self.groups)
    return from_groups(self._project(matrix, radius), self.groups, tf.shape(kernel))

  def __call__(self, w):
    matrix = to_groups(w, self.groups)  # once: the radius and the projection share it
    projected = self._project(matrix, self._radius(matrix))
    return from_groups(projected, self.groups, tf.shape(w))

  def get_config(self) -> dict[str, Any]:
    return {"radius": self.radius, "relative_radius": self.relative_radius,
            "groups": self.groups}

  def __repr__(self):
    args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if v is not None)
    return f"{type(self).__name__}({args})"


@tf.keras.utils.register_keras_serializable(package="tfcae")
class L1Ball(_BallConstraint):
  """Projects the whole kernel onto {‖W‖₁ <= radius} (Duchi et al. 2008; unstructured).

  The ℓ1 ball does not depend on a grouping (every view has the same ℓ1 norm and the same
  projection); `groups` is accepted only so that the three constraints share one
  signature. Zeros land anywhere, so whole filters are rarely removed.

  Args:
    radius, relative_radius, groups: as for every ball constraint: exactly one of an
      absolute radius and a fraction of the kernel's norm, and one of GROUPINGS
      (default "output_filters").

  Raises:
    ValueError: both or neither radius given, a negative radius, or an unknown grouping.
  """

  def _norm(self, matrix):
    return projections.l1_norm(matrix)

  def _project(self, matrix, radius):
    return projections.project_l1(matrix, radius)


@tf.keras.utils.register_keras_serializable(package="tfcae")
class L11Ball(_BallConstraint):
  """Bilevel ℓ1,1 projection of the kernel's groups (Gille et al., Algorithm 1).

  Zeroes whole groups (e.g. whole output filters) and sparsifies the surviving ones;
  ‖W‖_{1,1} = radius afterwards when the kernel was outside the ball.

  Args:
    radius: the absolute radius, >= 0.
    relative_radius: the radius as a fraction (>= 0) of the kernel's ℓ1,1 norm at each
      projection (exactly one of radius and relative_radius).
    groups: one of GROUPINGS (default "output_filters").

  Raises:
    ValueError: both or neither radius given, a negative radius, or an unknown grouping.
  """

  def _norm(self, matrix):
    return projections.l11_norm(matrix)

  def _project(self, matrix, radius):
    return projections.project_l11(matrix, radius)


@tf.keras.utils.register_keras_serializable(package="tfcae")
class L1InfBall(_BallConstraint):
  """Projection onto {Σ_groups max |w| <= radius}: whole groups vanish, the rest are clipped.

  Args:
    radius: the absolute radius, >= 0.
    relative_radius: the radius as a fraction (>= 0) of the kernel's ℓ1,∞ norm at each
      projection (exactly one of radius and relative_radius).
    groups: one of GROUPINGS; default "kernel_positions", the grouping Gille et al. use.
    method: "exact": the Euclidean projection (Quattoni et al. 2009, O(nm log nm));
      "bilevel": clip each group at the ℓ1 projection of the group maxima (Barlaud,
      Perez & Marmorat 2024, O(nm)).

  Raises:
    ValueError: both or neither radius given, a negative radius, an unknown grouping or
      an unknown method.
  """

  METHODS = ("exact", "bilevel")

  def __init__(self, radius: float | None = None, relative_radius: float | None = None,
               groups: str = "kernel_positions", method: str = "exact"):
    super().__init__(radius=radius, relative_radius=relative_radius, groups=groups)
    if method not in self.METHODS:
      raise ValueError(f"method must be one of {self.METHODS}, got {method!r}.")
    self.method = method

  def _norm(self, matrix):
    return projections.l1inf_norm(matrix)

  def _project(self, matrix, radius):
    if self.method == "exact":
      return projections.project_l1inf(matrix, radius)
    return projections.project_l1inf_bilevel(matrix, radius)

  def get_config(self) -> dict[str, Any]:
    return dict(super().get_config(), method=self.method)


def sparsity_report(kernel: _Tensor) -> dict[str, np.number]:
  """Zeros in a kernel, as NumPy values (for tests and accounting).

  Args:
    kernel: a [..., in, out] kernel (a tensor, a variable or an array).

  Returns:
    dict(zero_fraction, zero_output_filters, zero_input_channels, output_filters,
    input_channels): the fraction of exactly-zero weights, and how many output filters
    (kernel[..., o]) / input channels (kernel[..., i, :]) are entirely zero, out of how
    many.

  Raises:
    ValueError: a kernel of rank < 2.
  """
  k = np.asarray(kernel.numpy() if hasattr(kernel, "numpy") else kernel)
  if k.ndim < 2:
    raise ValueError(f"Expected a kernel of rank >= 2 ([..., in, out]), got shape {k.shape}.")
  zero = k == 0
  out_axes = tuple(range(k.ndim - 1))
  in_axes = tuple(range(k.ndim - 2)) + (k.ndim - 1,)
  return {
      "zero_fraction": np.float64(zero.mean()) if zero.size else np.float64(0.),
      "zero_output_filters": np.int64(np.all(zero, axis=out_axes).sum()),
      "zero_input_channels": np.int64(np.all(zero, axis=in_axes).sum()),
      "output_filters": np.int64(k.shape[-1]),
      "input_channels": np.int64(k.shape[-2]),
  }
