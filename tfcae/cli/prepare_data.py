"""Write a training set as sharded TFRecord files with a manifest (tfcae/data/records.py).

  bin/prepare_data --images='../shared/data/train/*.jpg' --output=data/bsds_records
  bin/prepare_data --images=... --output=... --crop=256 --examples_per_shard=2048
  bin/train --train_images=data/bsds_records ...      # reads the manifest, streams shards

The images are listed, decoded and checked once here (an unreadable one is skipped with a
warning line naming it); the last --holdout of them by name become the validation split.
"""
import sys

from absl import flags

from tfcae import cli
import tensorflow as tf  # noqa: F401  (before cli.run: see its docstring)
from tfcae import TfcaeError
from tfcae.data import records
from tfcae.io.fileio import expand_images

__all__ = ["main"]

flags.DEFINE_string("images", None, "Images: folder, glob or comma list.")
flags.DEFINE_string("output", None, "The records folder to create.")
flags.DEFINE_integer("crop", 0, "Cut each image into non-overlapping crop×crop tiles "
                     "(PNG); 0 stores whole images (their files' own bytes).")
flags.DEFINE_integer("examples_per_shard", 1024, "Records per shard file (a set for N "
                     "workers needs at least N training shards).")
flags.DEFINE_float("holdout", 0.1, "Fraction of the images (last by name) that validate.")
flags.mark_flags_as_required(["images", "output"])
FLAGS = flags.FLAGS


def main():
  images = expand_images(FLAGS.images)
  if not images:
    raise TfcaeError(f"no images found for {FLAGS.images!r}")
  manifest = records.write(images, FLAGS.output, FLAGS.crop, FLAGS.examples_per_shard,
                           FLAGS.holdout, progress=sys.stdout.isatty())
  splits = manifest["splits"]
  print(f"{FLAGS.output}: {splits['train']['examples']} training and "
        f"{splits['validation']['examples']} validation records in "
        f"{len(splits['train']['shards'])} + {len(splits['validation']['shards'])} shards "
        f"from {manifest['images']} images ({len(manifest['skipped'])} skipped)")
