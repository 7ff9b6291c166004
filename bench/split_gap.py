#!/usr/bin/env python3
"""Where a trained model's training and validation distortion differ.

  .venv/bin/python bench/split_gap.py --model_dir=runs/factorized_cpu6k_l0.01 \\
      --train_images=../shared/data/train --batches=60

D-CO constrains the distortion of the batches its multiplier sees. This measures, for one
trained model, the mean MSE (0..255) and its standard error on
  - random crops of the training images (what training batches are),
  - random crops of the held-out images (the validation images, training's crop rule),
  - the centre crops of the held-out images (what bin/train's validation reports),
each with the noisy quantisation proxy (training=True) and with rounding (training=False)
on the same batches, so that the quantiser's share of a train/validation gap is told apart
from the images'. The split is bin/train's (tfcae.training.loop.split_files). Prints a markdown
table; --output writes JSON.
"""
from tfcae import cli  # first: it quiets TensorFlow's start-up
import tensorflow as tf
from absl import flags
import numpy as np

from tfcae.data import images as data
from tfcae.io.fileio import atomic_write_json
from tfcae.training.export import load_trained
from tfcae.training.loop import split_files
from tfcae.training.rundir import RunDir

flags.DEFINE_string("model_dir", None, "Trained model directory (bin/train).")
flags.DEFINE_string("train_images", "../shared/data/train", "bin/train's --train_images.")
flags.DEFINE_string("val_images", "", "bin/train's --val_images (empty: the last tenth).")
flags.DEFINE_integer("batches", 60, "Batches of random crops per set.")
flags.DEFINE_integer("seed", 1, "Seed of the random crops.")
flags.DEFINE_string("output", "", "Write the JSON here (optional).")
flags.mark_flag_as_required("model_dir")
FLAGS = flags.FLAGS


def batch_mses(model, dataset, batches):
  """Per-batch MSE of the reconstructions (unclipped, as training measures it) with the
  noisy proxy and with rounding, on the same batches (a paired comparison)."""
  values = {"noise": [], "round": []}
  for x in dataset.take(batches):
    for mode, training in (("noise", True), ("round", False)):
      x_hat = model.forward(x, training=training)["x_hat"]
      values[mode].append(float(tf.reduce_mean(tf.math.squared_difference(x, x_hat))))
  return {mode: np.asarray(v) for mode, v in values.items()}


def main():
  config = RunDir(FLAGS.model_dir).read_config()
  model = load_trained(FLAGS.model_dir, for_compression=False)
  train_files, val_files = split_files(FLAGS.train_images, FLAGS.val_images)
  size, batch = config.patch_size, config.batch_size
  sets = {
      "training images, random crops": lambda: data.train_dataset(train_files, size, batch,
                                                                  FLAGS.seed),
      "held-out images, random crops": lambda: data.train_dataset(val_files, size, batch,
                                                                  FLAGS.seed),
      "held-out images, centre crops": lambda: data.validation_dataset(val_files, size, batch),
  }
  rows = []
  print(f"| crops ({len(train_files)} training / {len(val_files)} held-out images) | "
        "MSE, noisy proxy | MSE, rounding | rounding − proxy (paired) | batches |")
  print("|---|---|---|---|---|")
  for name, make in sets.items():
    values = batch_mses(model, make(), FLAGS.batches)
    row = {"set": name, "batches": len(values["noise"])}
    for mode, v in values.items():
      row[mode] = float(v.mean())
      row[f"{mode}_stderr"] = float(v.std(ddof=1) / np.sqrt(len(v)))
    diff = values["round"] - values["noise"]
    row["round_minus_noise"] = float(diff.mean())
    row["round_minus_noise_stderr"] = float(diff.std(ddof=1) / np.sqrt(len(diff)))
    rows.append(row)
    print(f"| {name} | {row['noise']:.1f} ± {row['noise_stderr']:.1f} | "
          f"{row['round']:.1f} ± {row['round_stderr']:.1f} | "
          f"{row['round_minus_noise']:+.1f} ± {row['round_minus_noise_stderr']:.1f} | "
          f"{row['batches']} |", flush=True)
  if FLAGS.output:
    atomic_write_json(FLAGS.output, {"model_dir": FLAGS.model_dir, "seed": FLAGS.seed,
                                     "rows": rows})


if __name__ == "__main__":
  cli.run(main)
