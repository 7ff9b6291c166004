#!/usr/bin/env python3
"""Encode/decode time of tfcae's full codec vs the bare TFC layers, on the same weights.

  .venv/bin/python bench/codec_speed.py --model_dir=runs/factorized_cpu_l0.01 \
      [--images='../shared/data/kodak/*.png'] [--repeats=3]

"bare" = analysis transform + entropy_model.compress in one tf.function (what TFC's
bls2017 does); "tfcae" = the exported `compress` signature (padding, range coding, the
in-graph header and CRC-32), loaded from the SavedModel as bin/compress does. Likewise for
decoding. Reports the median over images of the best of `repeats` calls, in seconds.
"""
from tfcae import cli  # first: it quiets TensorFlow's start-up
import numpy as np
import tensorflow as tf
from absl import flags

from tfcae.serving.codec import Codec
from tfcae.deploy.timing import seconds_per_call
from tfcae.io.fileio import expand_images, load_rgb_image
from tfcae.training.export import load_trained

flags.DEFINE_string("model_dir", None, "A trained and exported model directory.")
flags.DEFINE_string("images", "../shared/data/kodak/*.png", "Images.")
flags.DEFINE_integer("repeats", 3, "Calls per image; the fastest counts.")
flags.mark_flag_as_required("model_dir")
FLAGS = flags.FLAGS


def best_time(fn, repeats):
  """The fastest of `repeats` calls (the functions are warmed up in main)."""
  return seconds_per_call(fn, repeats, warmup=0, statistic="min")


def main():
  model = load_trained(FLAGS.model_dir)  # the checkpoint's weights, with coding tables
  architecture = model.get_config()
  (coder, *_) = model.entropy_models()

  @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
  def bare_encode(x):
    return coder.compress(model.analysis_transform(x))

  @tf.function(input_signature=[tf.TensorSpec([1], tf.string), tf.TensorSpec([2], tf.int32)])
  def bare_decode(strings, shape):
    return model.synthesis_transform(coder.decompress(strings, shape))

  codec = Codec(FLAGS.model_dir)
  rows = {"bare_encode": [], "tfcae_encode": [], "bare_decode": [], "tfcae_decode": []}
  for path in expand_images(FLAGS.images):
    image = load_rgb_image(path)
    x = tf.constant(image[None].astype(np.float32))
    strings = bare_encode(x)
    shape = tf.constant([image.shape[0] // model.stride, image.shape[1] // model.stride])
    data = codec.compress(image)
    bare_decode(strings, shape), codec.decompress(data)  # warm up both
    rows["bare_encode"].append(best_time(lambda: bare_encode(x), FLAGS.repeats))
    rows["tfcae_encode"].append(best_time(lambda: codec.compress(image), FLAGS.repeats))
    rows["bare_decode"].append(best_time(lambda: bare_decode(strings, shape), FLAGS.repeats))
    rows["tfcae_decode"].append(best_time(lambda: codec.decompress(data), FLAGS.repeats))
  print(f"{len(rows['bare_encode'])} images, {architecture}")
  for key, values in rows.items():
    print(f"{key:14s} median {np.median(values):.4f} s  (min {np.min(values):.4f}, "
          f"max {np.max(values):.4f})")


if __name__ == "__main__":
  cli.run(main)
