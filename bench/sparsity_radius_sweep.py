#!/usr/bin/env python3
"""Sparsity S and encoder MACs removed by one projection of a trained encoder vs the
relative radius: calibrates --sparsity_radius for double descent (the hook fixes radius ×
each layer's initial norm, so one projection of the warm start predicts the mask).

  .venv/bin/python bench/sparsity_radius_sweep.py --model_dir=zoo/factorized/5

Prints, per constraint, grouping and radius: S (zero fraction of the encoder kernels),
the dead filters per encoder layer and the encoder MACs per pixel removed by channel
removal (tfcae.analysis.accounting; dead filters' biases zeroed, as the mask does).
"""
from tfcae import cli  # first: it quiets TensorFlow's start-up
import numpy as np
import tensorflow as tf  # noqa: F401  (before cli.run: see its docstring)
from absl import flags

from tfcae.analysis import accounting
from tfcae.methods.double_descent import make_constraint
from tfcae.training.export import load_trained

flags.DEFINE_string("model_dir", "zoo/factorized/5", "The trained model (a directory).")

SWEEP = [("l1", "output_filters"), ("l11", "output_filters"), ("l1inf", "kernel_positions"),
         ("l1inf", "output_filters")]
RADII = [0.03, 0.05, 0.1, 0.15, 0.2, 0.3]


def main():
  model = load_trained(flags.FLAGS.model_dir, for_compression=False)
  layers = [layer for layer in model.encoder_layers() if hasattr(layer, "kernel")]
  original = [(layer.kernel.numpy(), layer.bias.numpy()) for layer in layers]
  for name, groups in SWEEP:
    norms = [float(make_constraint(name, groups, 1.0).norm(kernel)) for kernel, _ in original]
    for radius in RADII:
      zeros = total = 0
      dead = []
      for layer, (kernel, bias), norm in zip(layers, original, norms):
        projected = make_constraint(name, groups, radius * norm)(kernel).numpy()
        alive = projected.any(axis=(0, 1, 2))
        layer.kernel.assign(projected)
        layer.bias.assign(np.where(alive, bias, 0.))
        zeros += int((projected == 0).sum())
        total += projected.size
        dead.append(int((~alive).sum()))
      removed = accounting.analyze(model)["encoder"]["total"]["macc_reduction"]
      print(f"{name:5s} {groups:16s} r={radius:<5g} S={zeros / total:.3f} "
            f"dead filters {dead} MACs removed {removed:.1%}", flush=True)
  for layer, (kernel, bias) in zip(layers, original):
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)


if __name__ == "__main__":
  cli.run(main)
