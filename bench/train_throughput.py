#!/usr/bin/env python3
"""Training throughput (optimizer steps per second) of tfcae models on this machine.

  .venv/bin/python bench/train_throughput.py [--steps=40] [--images=data/sample/train]

Runs tfcae.training.loop.train (the code path of bin/train) for two epochs per setting and
reports the second epoch's steps/s (the first includes tracing). Prints a markdown table
for docs/results.md.
"""
import tempfile

from tfcae import cli  # first: it quiets TensorFlow's start-up
import tensorflow as tf  # noqa: F401  (before cli.run: see its docstring)
from absl import flags

from tfcae.training import loop as training
from tfcae.training.config import TrainConfig
from tfcae.training.rundir import RunDir

flags.DEFINE_integer("steps", 40, "Steps per epoch (two epochs per setting).")
flags.DEFINE_string("images", "data/sample/train", "Training images.")
flags.DEFINE_string("settings", "factorized:64:128:8,factorized:128:256:8,hyperprior:128:256:8",
                    "model:num_filters:patch_size:batch_size, comma-separated.")
FLAGS = flags.FLAGS


def measure(model, num_filters, patch, batch):
  with tempfile.TemporaryDirectory() as model_dir:
    training.train(TrainConfig(
        model_dir=model_dir, architecture=model, num_filters=num_filters, train_images=FLAGS.images,
        patch_size=patch, batch_size=batch, epochs=2, steps_per_epoch=FLAGS.steps,
        validation_batches=1, verbose=0, image_summaries=False))
    return float(RunDir(model_dir).read_history()[-1]["steps_per_sec"])


def main():
  rows = []
  for setting in FLAGS.settings.split(","):
    model, n, patch, batch = setting.split(":")
    rate = measure(model, int(n), int(patch), int(batch))
    rows.append(f"| {model} | {n} | {patch}² | {batch} | {rate:.2f} | "
                f"{rate * int(batch) * int(patch) ** 2 / 1e6:.2f} |")
    print(rows[-1], flush=True)
  print("\n| model | N | patch | batch | steps/s | Mpixel/s |\n|---|---|---|---|---|---|")
  print("\n".join(rows))


if __name__ == "__main__":
  cli.run(main)
