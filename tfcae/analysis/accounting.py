"""Sparse-encoder accounting: parameters, zeros, MACCs and memory, per layer and in total.

What Gille, Guyard, Antonini & Barlaud ("Learning sparse auto-encoders for green AI image
coding") report in Table I, for any tfcae model: the sparsity S, the multiply-accumulates
saved by removing the structured zeros and the memory saved by storing the weights
sparse. `analyze(model)` returns a dict (JSON-ready); `format_report` renders it as a
table. A trained model of a bin/train directory is restored by tfcae.training.export.load_trained
(the one loader of run directories).

Counting conventions (stated once, used everywhere):

* MACCs per input pixel. A Conv2D with a k×k kernel, C_in -> C_out, whose output lies at
  cumulative stride s (s² input pixels per output position): k²·C_in·C_out / s². A
  Conv2DTranspose does k²·C_in·C_out per INPUT position, at its input's cumulative stride
  s: k²·C_in·C_out / s². GDN / IGDN: C² per position (the 1×1 "convolution" of |x| with
  γ). Element-wise work (bias, Rescaling, |x|, +β, the division, activations) is not
  counted: it is O(C) per position against O(k²·C²).
* "Reduced" = after structured removal as `tfcae.deploy.reduction` performs it on the analysis
  transform (dead filters, GDN rows/columns, dead input channels; dead latent channels
  become re-inserted constants). Other parts (hyper-analysis, decoders) are counted as
  they are (reduced = dense): their zeros are reported but not removed.
* Memory. Dense: every parameter as float32 (4 bytes). Sparse: per tensor, float32
  values of the non-zeros plus a 1-bit-per-weight occupancy bitmap,
  4·nnz + ⌈n/8⌉ bytes. Reduced: the parameters the reduced encoder keeps, as dense float32.
  GDN parameters are counted as their values β (C) and γ (C²), not the re-parameterised
  variables (same count).
* S (Table I's sparsity): the fraction of exactly-zero weights of the encoder's conv
  kernels (what the norm-ball projections act on). The zero fraction over all parameters
  (kernels, biases, β, γ) is reported as well.
* Peak activation memory (encoder only): the largest input + output of one layer, as
  float32 feature maps, per input pixel (a layer of C output channels at cumulative stride
  s holds 4·C/s² bytes per input pixel; the image enters as 3 float32 channels). It is what
  a device must hold at once when it runs the layers one after the other without tiling;
  times the pixel count for one image (a 768×512 Kodak image: ×393,216). "Reduced" counts
  the channels the reduced encoder keeps (its re-inserted constant latents included).
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tfcae.deploy import reduction
from tfcae.methods.constraints import sparsity_report
from tfcae.models.integer import IntegerConv2DTranspose

# Transposed convolutions: k²·C_in·C_out per input position. The integer hyper-synthesis'
# layers (tfcae.models.integer) compute what a Conv2DTranspose of the same kernel does.
_TRANSPOSED = (tf.keras.layers.Conv2DTranspose, IntegerConv2DTranspose)

__all__ = ["FLOAT_BYTES", "KODAK_PIXELS", "analyze", "format_report", "format_tradeoff"]

FLOAT_BYTES = 4
KODAK_PIXELS = 768 * 512


def _sparse_bytes(values):
  values = np.asarray(values)
  return FLOAT_BYTES * int(np.count_nonzero(values)) + math.ceil(values.size / 8)


def _tensors(layer):
  """The parameter tensors of a layer as NumPy values (GDN: β and γ values)."""
  if isinstance(layer, tfc.GDN):
    return [layer.beta.numpy(), layer.gamma.numpy()]
  return [w for w in layer.get_weights()]


def _conv_geometry(layer):
  kernel = layer.kernel.numpy()
  k = int(np.prod(kernel.shape[:2]))
  if isinstance(layer, _TRANSPOSED):
    c_out, c_in = kernel.shape[2], kernel.shape[3]
    kernel = np.swapaxes(kernel, 2, 3)  # -> [kh, kw, in, out] for sparsity_report
  else:
    c_in, c_out = kernel.shape[2], kernel.shape[3]
  return k, int(c_in), int(c_out), kernel


def _layer_row(layer, prefix, stride_in, plan=None):
  """One layer's accounting at input cumulative stride `stride_in`; returns (row, stride_out)."""
  tensors = _tensors(layer)
  params = int(sum(t.size for t in tensors))
  zeros = int(sum(t.size - np.count_nonzero(t) for t in tensors))
  row = {"layer": prefix + layer.name, "type": type(layer).__name__, "params": params,
         "zeros": zeros, "zero_fraction": zeros / params if params else 0.,
         "kernel_params": 0, "kernel_zeros": 0, "zero_filters": 0, "zero_input_channels": 0,
         "dead_not_removable": 0, "stride_in": stride_in,
         "memory_dense_bytes": FLOAT_BYTES * params,
         "memory_sparse_bytes": sum(_sparse_bytes(t) for t in tensors)}
  stride_out, maccs, maccs_reduced, params_reduced = stride_in, 0., 0., params
  if isinstance(layer, (tf.keras.layers.Conv2D, IntegerConv2DTranspose)):
    k, c_in, c_out, kernel = _conv_geometry(layer)
    report = sparsity_report(kernel)
    row.update(kernel_params=int(kernel.size), kernel_zeros=int(kernel.size -
                                                                 np.count_nonzero(kernel)),
               zero_filters=int(report["zero_output_filters"]),
               zero_input_channels=int(report["zero_input_channels"]),
               kernel=f"{layer.kernel.shape[0]}x{layer.kernel.shape[1]}", c_in=c_in,
               c_out=c_out)
    step = int(np.ravel(layer.strides)[0])
    if isinstance(layer, _TRANSPOSED):
      maccs = k * c_in * c_out / stride_in ** 2
      stride_out = stride_in / step
    else:
      stride_out = stride_in * step
      maccs = k * c_in * c_out / stride_out ** 2
    maccs_reduced = maccs
    if plan is not None:
      n_in, n_out = len(plan.keep_in), len(plan.keep_out)
      maccs_reduced = k * n_in * n_out / stride_out ** 2
      params_reduced = k * n_in * n_out + (n_out if layer.use_bias else 0)
      row["dead_not_removable"] = len(plan.dead_kept)
      row["kept_in"], row["kept_out"] = n_in, n_out
  elif isinstance(layer, tfc.GDN):
    c = int(layer.beta.shape[0])
    row.update(c_in=c, c_out=c)
    maccs = maccs_reduced = c * c / stride_in ** 2
    if plan is not None:
      n = len(plan.keep_out)
      maccs_reduced = n * n / stride_in ** 2
      params_reduced = n + n * n
      row["kept_in"] = row["kept_out"] = n
  if "c_out" in row:
    kept = row.get("kept_out", row["c_out"])
    row["activation_bytes_per_pixel"] = FLOAT_BYTES * row["c_out"] / stride_out ** 2
    row["activation_bytes_per_pixel_reduced"] = FLOAT_BYTES * kept / stride_out ** 2
  row.update(stride_out=stride_out, maccs_per_pixel=maccs, maccs_per_pixel_reduced=maccs_reduced,
             params_reduced=params_reduced, memory_reduced_bytes=FLOAT_BYTES * params_reduced)
  return row, stride_out


def _chains(model):
  """(part, prefix, layers, plans-or-None, input stride) for encoder and decoder chains."""
  plans = reduction.plan_reduction(model)
  analysis = list(model.analysis_transform.layers)
  latent_stride = 1
  for layer in analysis:
    if isinstance(layer, tf.keras.layers.Conv2D):
      latent_stride *= int(layer.strides[0])
  chains = [("encoder", "", analysis, plans, 1)]
  decoder = [("decoder", "", list(model.synthesis_transform.layers), None, latent_stride)]
  hyper = model.hyper_transforms()
  if hyper is not None:
    hyper_analysis, hyper_synthesis = hyper
    chains.append(("encoder", "hyper_analysis/", list(hyper_analysis.layers), None,
                   latent_stride))
    # The hyper-synthesis runs on both sides (the sender needs the scale indexes).
    # (An integer hyper-synthesis holds its layers in `stack`.)
    layers = getattr(hyper_synthesis, "stack", None) or hyper_synthesis.layers
    decoder.insert(0, ("decoder", "hyper_synthesis/", list(layers), None,
                       model.stride))
  return chains + decoder


_SUMMED = ("params", "zeros", "kernel_params", "kernel_zeros", "zero_filters",
           "zero_input_channels", "dead_not_removable", "maccs_per_pixel",
           "maccs_per_pixel_reduced", "params_reduced", "memory_dense_bytes",
           "memory_sparse_bytes", "memory_reduced_bytes")


def _total(rows):
  total = {k: sum(r[k] for r in rows) for k in _SUMMED}
  total["zero_fraction"] = total["zeros"] / total["params"] if total["params"] else 0.
  total["S"] = total["kernel_zeros"] / total["kernel_params"] if total["kernel_params"] else 0.
  dense = total["maccs_per_pixel"]
  total["macc_reduction"] = 1. - total["maccs_per_pixel_reduced"] / dense if dense else 0.
  mem = total["memory_dense_bytes"]
  total["memory_reduction_sparse"] = 1. - total["memory_sparse_bytes"] / mem if mem else 0.
  total["memory_reduction_reduced"] = 1. - total["memory_reduced_bytes"] / mem if mem else 0.
  return total


def _peak_activations(rows, latent_channels=0):
  """The peak input + output bytes per input pixel over a chain of layers, dense and
  reduced (layers without channels, e.g. Rescaling, pass their input through). The
  reduced encoder ends by re-inserting the dead latent channels as constants
  (reduction.ChannelInsert), so its output holds all `latent_channels`."""
  peaks = {}
  for key in ("activation_bytes_per_pixel", "activation_bytes_per_pixel_reduced"):
    previous, peak = 3. * FLOAT_BYTES, 0.
    for row in rows:
      current = row.get(key, previous)
      peak, previous = max(peak, previous + current), current
    if key.endswith("reduced") and latent_channels and rows:
      full = FLOAT_BYTES * latent_channels / rows[-1]["stride_out"] ** 2
      peak = max(peak, previous + full)
    peaks["peak_" + key] = peak
  return peaks


def analyze(model: tf.keras.Model) -> dict[str, Any]:
  """Per-layer and total accounting of the encoder and the decoder (see module doc).

  Args:
    model: a built tfcae compression model (tfcae.models), e.g. from
      tfcae.training.export.load_trained.

  Returns:
    {"architecture": the model's config, "encoder": {"layers": [one row per layer],
    "total": {...}}, "decoder": {...}, "conventions": str}. The encoder's total also
    holds S, the MACC and memory reductions and the peak activation memory (dense and
    reduced); the encoder counts the hyper-analysis, the decoder the hyper-synthesis.
  """
  parts = {"encoder": [], "decoder": []}
  for part, prefix, layers, plans, stride in _chains(model):
    for i, layer in enumerate(layers):
      plan = plans[i] if plans is not None else None
      row, stride = _layer_row(layer, prefix, stride, plan)
      parts[part].append(row)
  report = {"architecture": model.get_config()}
  for part, rows in parts.items():
    report[part] = {"layers": rows, "total": _total(rows)}
  report["encoder"]["total"].update(_peak_activations(
      [r for r in parts["encoder"] if not r["layer"].startswith("hyper_")],
      latent_channels=int(getattr(model, "latent_channels", 0) or 0)))
  report["conventions"] = (
      "MACCs per input pixel (conv k²·Cin·Cout/s², GDN C²/s², element-wise ops not counted); "
      "reduced = after tfcae.deploy.reduction's structured removal (analysis transform only); "
      "memory: dense float32, sparse = 4·nnz + ceil(n/8) bytes (values + bitmap), "
      "reduced = kept parameters as float32; S = zero fraction of the encoder's conv kernels")
  return report


def format_report(report: dict[str, Any]) -> str:
  """A readable text table of `analyze`'s result.

  Args:
    report: the dict `analyze` returns.

  Returns:
    One table per part (encoder, decoder) with a total line and its reductions, then a
    legend and the counting conventions; lines joined by newlines.
  """
  lines = [f"architecture: {json.dumps(report['architecture'])}"]
  head = (f"{'layer':24s} {'type':16s} {'shape':>14s} {'params':>8s} {'S':>6s} {'0filt':>5s} "
          f"{'0in':>4s} {'dead*':>5s} {'MACC/px':>9s} {'reduced':>9s} {'mem B':>8s} "
          f"{'sparse B':>8s} {'reduc. B':>8s}")
  for part in ("encoder", "decoder"):
    lines += ["", f"{part}:", head, "-" * len(head)]
    rows = report[part]["layers"]
    for r in rows:
      if "c_in" in r:
        shape = f"{r.get('kernel', '1x1')} {r['c_in']}>{r['c_out']}"
      else:
        shape = "-"
      lines.append(
          f"{r['layer'][:24]:24s} {r['type'][:16]:16s} {shape:>14s} {r['params']:8d} "
          f"{r['zero_fraction']:6.1%} {r['zero_filters']:5d} {r['zero_input_channels']:4d} "
          f"{r['dead_not_removable']:5d} {r['maccs_per_pixel']:9.1f} "
          f"{r['maccs_per_pixel_reduced']:9.1f} {r['memory_dense_bytes']:8d} "
          f"{r['memory_sparse_bytes']:8d} {r['memory_reduced_bytes']:8d}")
    t = report[part]["total"]
    lines.append(
        f"{'total':24s} {'':16s} {'':>14s} {t['params']:8d} {t['zero_fraction']:6.1%} "
        f"{t['zero_filters']:5d} {t['zero_input_channels']:4d} {t['dead_not_removable']:5d} "
        f"{t['maccs_per_pixel']:9.1f} {t['maccs_per_pixel_reduced']:9.1f} "
        f"{t['memory_dense_bytes']:8d} {t['memory_sparse_bytes']:8d} "
        f"{t['memory_reduced_bytes']:8d}")
    lines.append(
        f"{part}: S (conv kernels) {t['S']:.1%}, MACC reduction {t['macc_reduction']:.1%}, "
        f"memory reduction {t['memory_reduction_sparse']:.1%} sparse / "
        f"{t['memory_reduction_reduced']:.1%} reduced")
    if "peak_activation_bytes_per_pixel" in t:
      lines.append(
          f"{part}: peak activation memory {t['peak_activation_bytes_per_pixel']:.1f} → "
          f"{t['peak_activation_bytes_per_pixel_reduced']:.1f} bytes per pixel "
          f"({t['peak_activation_bytes_per_pixel'] * KODAK_PIXELS / 2 ** 20:.1f} → "
          f"{t['peak_activation_bytes_per_pixel_reduced'] * KODAK_PIXELS / 2 ** 20:.1f} MiB "
          f"for a 768×512 image)")
  lines += ["", "S: zero fraction of the layer's parameters; 0filt/0in: all-zero output "
            "filters / input channels; dead*: dead filters that must still be computed "
            "(constant through GDN).", "Conventions: " + report["conventions"]]
  return "\n".join(lines)


def format_tradeoff(report: dict[str, Any], card: dict[str, Any]) -> str:
  """What the encoder costs and what it buys, for a model of the zoo.

  Args:
    report: `analyze`'s report of the model.
    card: the model's zoo card (its "kodak" block; a sparse model's "encoder" block,
      tfcae.zoo.sparse, names its dense sibling).

  Returns:
    Two lines: the encoder's cost, dense -> reduced, and the Kodak result; a third with
    the dense sibling's result and ΔPSNR at equal bpp for a sparse model.
  """
  t = report["encoder"]["total"]
  k = card["kodak"]
  mib = KODAK_PIXELS / 2 ** 20
  lines = [
      f"encoder cost: {t['maccs_per_pixel'] / 1e3:.2f} -> {t['maccs_per_pixel_reduced'] / 1e3:.2f} "
      f"kMAC/px ({t['macc_reduction']:.1%} removed), weights {t['memory_dense_bytes'] / 1e6:.2f} -> "
      f"{t['memory_reduced_bytes'] / 1e6:.2f} MB, peak activations "
      f"{t['peak_activation_bytes_per_pixel'] * mib:.1f} -> "
      f"{t['peak_activation_bytes_per_pixel_reduced'] * mib:.1f} MiB per 768x512 image",
      f"buys on Kodak ({k['images']} images, {card['name']}): {k['bpp']:.3f} bpp, "
      f"{k['psnr-rgb']:.2f} dB PSNR, MS-SSIM {k['ms-ssim-rgb']:.4f}"]
  encoder = card.get("encoder")
  if encoder:
    sibling = encoder["dense_sibling_kodak"]
    delta = encoder.get("delta_psnr_at_equal_bpp")
    lines.append(
        f"dense sibling {encoder['dense_sibling']}: {sibling['bpp']:.3f} bpp, "
        f"{sibling['psnr-rgb']:.2f} dB; this model at equal bpp: "
        + ("outside the dense curve" if delta is None else f"{delta:+.2f} dB"))
  return "\n".join(lines)
