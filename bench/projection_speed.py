#!/usr/bin/env python3
"""Time of the kernel projections on the encoder of a factorized N=128 model (CPU).

  .venv/bin/python bench/projection_speed.py [--repeats=20] [--relative_radius=0.3]
      [--threads=0] [--markdown]

The three analysis kernels of `tfcae.models.factorized` with num_filters=128 —
[9,9,3,128], [5,5,128,128], [5,5,128,128] — are projected by each constraint of
`tfcae.methods.constraints` (ℓ1; bilevel ℓ1,1; exact and bilevel ℓ1,∞) under each grouping, in a
`tf.function` (as Keras runs constraints inside the train step), after one warm-up call.
Kernels are Gaussian with per-filter and per-position scales (so groups differ in norm, as
in trained kernels) and lie outside the ball (`relative_radius` < 1), so every call does
the full projection. Reports the median over `repeats` calls, in milliseconds, per layer
and for the whole encoder (the sum), plus the fraction of weights left non-zero.
"""
import time

from tfcae import cli  # first: it quiets TensorFlow's start-up
import numpy as np
import tensorflow as tf
from absl import flags

from tfcae.deploy.timing import seconds_per_call
from tfcae.methods import constraints

flags.DEFINE_integer("repeats", 20, "Timed calls per (kernel, method); the median counts.")
flags.DEFINE_float("relative_radius", 0.3, "Radius as a fraction of each kernel's norm.")
flags.DEFINE_integer("threads", 0, "TF intra-op threads (0: TensorFlow's default).")
flags.DEFINE_integer("num_filters", 128, "N of the factorized model.")
FLAGS = flags.FLAGS


def encoder_kernel_shapes(n):
  """The analysis kernels of tfcae.models.factorized (conv_0, conv_1, conv_2)."""
  return [(9, 9, 3, n), (5, 5, n, n), (5, 5, n, n)]


def trained_like_kernel(shape, seed):
  rng = np.random.default_rng(seed)
  scale = (rng.uniform(0.05, 1., size=shape[:-1] + (1,)) * rng.uniform(0.05, 1., size=shape[-1]))
  return tf.constant((rng.normal(size=shape) * scale).astype(np.float32))


def methods(relative_radius):
  r = relative_radius
  yield "l1", "(any)", constraints.L1Ball(relative_radius=r)
  for groups in constraints.GROUPINGS:
    yield "l11 (bilevel)", groups, constraints.L11Ball(relative_radius=r, groups=groups)
  for groups in constraints.GROUPINGS:
    yield "l1inf exact", groups, constraints.L1InfBall(relative_radius=r, groups=groups)
  for groups in constraints.GROUPINGS:
    yield "l1inf bilevel", groups, constraints.L1InfBall(relative_radius=r, groups=groups,
                                                        method="bilevel")


def time_call(fn, kernel, repeats):
  """Median seconds of fn(kernel), after one call that traces and warms up."""
  return seconds_per_call(lambda: fn(kernel).numpy(), repeats, warmup=1)


def main():
  if FLAGS.threads:
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
  shapes = encoder_kernel_shapes(FLAGS.num_filters)
  kernels = [trained_like_kernel(s, i) for i, s in enumerate(shapes)]
  names = [f"conv_{i} {'x'.join(map(str, s))}" for i, s in enumerate(shapes)]
  print(f"TF {tf.__version__}, CPU, median of {FLAGS.repeats}, relative_radius "
        f"{FLAGS.relative_radius}, {time.strftime('%Y-%m-%d')}")
  print(f"| method | groups | {' ms | '.join(names)} ms | encoder ms | non-zero weights |")
  print("|---|---|" + "---|" * (len(names) + 2))
  for method, groups, constraint in methods(FLAGS.relative_radius):
    fn = tf.function(constraint)  # one trace per kernel shape, as in a model
    per_layer = [time_call(fn, k, FLAGS.repeats) for k in kernels]
    nonzero = sum(int(np.count_nonzero(fn(k).numpy())) for k in kernels)
    total = sum(int(np.prod(s)) for s in shapes)
    cells = " | ".join(f"{1e3 * t:.1f}" for t in per_layer)
    print(f"| {method} | {groups} | {cells} | {1e3 * sum(per_layer):.1f} | "
          f"{nonzero / total:.1%} |", flush=True)


if __name__ == "__main__":
  cli.run(main)
