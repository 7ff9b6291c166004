#!/usr/bin/env python3
"""Sparsity S of one projection of a trained encoder vs the relative radius: calibrates
--sparsity_radius for double descent (the hook fixes radius × each layer's initial norm).

  .venv/bin/python bench/sparsity_radius_sweep.py runs/factorized_cpu_l0.01

Prints, per constraint and radius, S (zero fraction of the encoder kernels) and the number
of dead filters per encoder layer.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np  # noqa: E402

from tfcae.methods.double_descent import make_constraint  # noqa: E402
from tfcae.training.export import load_trained  # noqa: E402

SWEEP = [("l1", "output_filters"), ("l11", "output_filters"), ("l1inf", "kernel_positions"),
         ("l1inf", "output_filters")]
RADII = [0.03, 0.05, 0.1, 0.15, 0.2, 0.3]


def main(model_dir):
  model = load_trained(model_dir, for_compression=False)
  kernels = [layer.kernel for layer in model.encoder_layers() if hasattr(layer, "kernel")]
  for name, groups in SWEEP:
    norms = [float(make_constraint(name, groups, 1.0).norm(kernel)) for kernel in kernels]
    for radius in RADII:
      zeros = total = 0
      dead = []
      for kernel, norm in zip(kernels, norms):
        projected = make_constraint(name, groups, radius * norm)(kernel).numpy()
        zeros += int((projected == 0).sum())
        total += projected.size
        dead.append(int(np.all(projected == 0, axis=(0, 1, 2)).sum()))
      print(f"{name:5s} {groups:16s} r={radius:<5g} S={zeros / total:.3f} "
            f"dead filters {dead}", flush=True)


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "runs/factorized_cpu_l0.01")
