"""Sparsity S of one projection of a trained encoder vs the relative radius (calibrates
--sparsity_radius for double descent). Usage: python bench/sparsity_radius_sweep.py [model_dir]"""
import sys
import json, numpy as np, tensorflow as tf
from tfcae.models import build_model
from tfcae.sparsity import make_constraint
from tfcae.config import TrainConfig
d = sys.argv[1] if len(sys.argv) > 1 else "runs/factorized_cpu21k_l0.01"
cfg = TrainConfig(**json.load(open(d + "/train_config.json")))
m = build_model(cfg.architecture())
tf.train.Checkpoint(model=m).restore(tf.train.latest_checkpoint(d + "/checkpoints")).expect_partial()
layers = [l for l in m.encoder_layers() if hasattr(l, "kernel")]
for name, groups in [("l1", "output_filters"), ("l11", "output_filters"), ("l1inf", "kernel_positions"), ("l1inf", "output_filters")]:
  for r in [0.05, 0.1, 0.15, 0.2, 0.3]:
    zeros = total = 0; dead = []
    for l in layers:
      k = l.kernel
      c = make_constraint(name, groups, 1.0)
      c = make_constraint(name, groups, r * float(c.norm(k)))
      p = c(k).numpy()
      zeros += (p == 0).sum(); total += p.size
      dead.append(int(np.all(p == 0, axis=(0, 1, 2)).sum()))
    print(name, groups, r, "S=%.3f" % (zeros / total), "dead filters", dead, flush=True)
