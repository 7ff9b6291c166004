"""Layers shared by the architectures.

`GDN` is TFC's generalized divisive normalization (Ballé, Laparra & Simoncelli 2016) made
known to TF-MOT: `tfmot.sparsity.keras.prune_low_magnitude` refuses any layer that is not
a built-in Keras layer or a `PrunableLayer`, so without this a TFC encoder cannot be
wrapped for the magnitude-pruning baseline. It is the same layer (same variables, same
names, same checkpoint structure), so a checkpoint written with tfc.GDN restores into it
unchanged.
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_compression as tfc
import tensorflow_model_optimization as tfmot

__all__ = ["GDN", "GDN_FORMS", "gdn"]


@tf.keras.utils.register_keras_serializable(package="tfcae")
class GDN(tfc.GDN, tfmot.sparsity.keras.PrunableLayer):
  """tfc.GDN implementing `PrunableLayer`, with no prunable weights.

  Why none: the only candidate is γ (the C×C normalisation pool; β is per channel, α and ε
  scalars). Pruning it would change what the baseline's sparsity S means: the ℓ1,1 method
  it is compared with constrains the convolution kernels only (`conv_*`), and S, the MACC
  count and the removable channels are all defined over those kernels. A sparse γ also buys
  nothing on the device (GDN's pool is a dense 1×1 convolution in TFLite, and XNNPACK
  does not exploit unstructured sparsity), and at N = 64 it is 4,096 weights per layer
  against 102,400 in a 5×5 kernel. So GDN can be wrapped (prune_low_magnitude accepts the
  whole encoder) but stays dense.
  """

  def get_prunable_weights(self) -> list:
    return []


# The two GDN forms (Ballé et al. 2016; Johnston et al. 2019) as TFC parameterises them:
# y_i = x_i / (β_i + Σ_j γ_ij |x_j|^α)^ε with α, ε fixed.
GDN_FORMS = {"simplified": {"alpha_parameter": 1, "epsilon_parameter": 1},
             "original": {"alpha_parameter": 2, "epsilon_parameter": .5}}


def gdn(form: str, name: str, inverse: bool = False) -> tfc.GDN:
  """A GDN or inverse GDN layer of the given form.

  Args:
    form: a key of GDN_FORMS: "simplified" or "original".
    name: the layer's name.
    inverse: an inverse GDN (tfc.GDN; only the encoder's forward GDN needs to be
      TF-MOT-wrappable).

  Returns:
    A GDN (this module's, TF-MOT-wrappable) or an inverse tfc.GDN.

  Raises:
    ValueError: an unknown form.
  """
  if form not in GDN_FORMS:
    raise ValueError(f"unknown GDN form {form!r}; available: {', '.join(GDN_FORMS)}")
  cls = tfc.GDN if inverse else GDN
  return cls(inverse=inverse, name=name, **GDN_FORMS[form])
