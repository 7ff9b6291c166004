#!/usr/bin/env python3
"""The TF-MOT magnitude-pruning baseline: prune a trained model's encoder to sparsity S.

  .venv/bin/python bench/tfmot_pruning.py --model_dir=runs/factorized_cpu21k_l0.01 \
      --out_dir=runs/tfmot_s0.84_l0.01 --sparsity=0.84 --steps=1500 \
      --train_images=../shared/data/train

prune_low_magnitude (PolynomialDecay 0 -> S over the first 2/3 of the steps) on the
encoder's convolutions, fine-tuning with the codec's R + λD objective (the model's own
train_step through model.fit and TF-MOT's UpdatePruningStep), then strip_pruning. The
result is a normal model_dir (checkpoint + SavedModel): bin/evaluate, bin/export and
bench/tflite_latency.py take it. --steps=0 prunes one-shot without fine-tuning.
"""
import json

from tfcae import cli  # first: it quiets TensorFlow's start-up
import tensorflow as tf  # noqa: F401
from absl import flags

from tfcae.deploy import pruning

flags.DEFINE_string("model_dir", None, "Trained, exported model to prune.")
flags.DEFINE_string("out_dir", None, "Where to write the pruned model_dir.")
flags.DEFINE_float("sparsity", 0.84, "Target fraction of zero encoder kernel weights (S).")
flags.DEFINE_integer("steps", 1500, "Fine-tuning steps (0: one-shot magnitude pruning).")
flags.DEFINE_string("train_images", "../shared/data/train", "Training images (glob/folder).")
flags.DEFINE_integer("patch_size", 128, "Crop size.")
flags.DEFINE_integer("batch_size", 8, "Batch size.")
flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate of the fine-tuning.")
flags.mark_flags_as_required(["model_dir", "out_dir"])
FLAGS = flags.FLAGS


def main():
  summary = pruning.magnitude_prune(
      FLAGS.model_dir, FLAGS.out_dir, FLAGS.sparsity, FLAGS.steps, FLAGS.train_images,
      patch_size=FLAGS.patch_size, batch_size=FLAGS.batch_size,
      learning_rate=FLAGS.learning_rate)
  model, _ = pruning.restore(FLAGS.out_dir)
  summary["live_filters"] = pruning.dense_filter_count(model.analysis_transform)
  print(json.dumps(summary, indent=2))


if __name__ == "__main__":
  cli.run(main)
