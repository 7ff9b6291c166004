"""Decompress a .tfcae file to PNG with the model that wrote it.

  bin/decompress --input=photo.tfcae --output=photo.png   # a zoo model's file: found by
                                                          # the fingerprint in its header
  bin/decompress --model=runs/quickstart --input=photo.tfcae --output=photo.png
"""
from absl import flags

from tfcae import cli
import tensorflow as tf  # noqa: F401  (before cli.run: see its docstring)
from tfcae.serving import codec

__all__ = ["main"]

cli.define_model_flags("the exported model that wrote the file (default: the zoo model "
                       "whose fingerprint the file carries)")
flags.DEFINE_string("input", None, "A .tfcae file.")
flags.DEFINE_string("output", None, "Output PNG (written atomically, only on success; never "
                    "the input).")
cli.define_max_pixels_flag("files whose header claims an image")
flags.mark_flags_as_required(["input", "output"])
cli.define_tile_flag()
FLAGS = flags.FLAGS


def main():
  cli.check_output(FLAGS.input, FLAGS.output, (".png",), "decompress writes .png files")
  model_dir = cli.model_dir_from_flags(required=False)
  # Without a model: the zoo model whose fingerprint the file carries.
  stats = codec.decompress_file(codec.Codec(model_dir, FLAGS.tile) if model_dir else None,
                                FLAGS.input, FLAGS.output, FLAGS.max_pixels,
                                tile=FLAGS.tile)
  print(f"{FLAGS.output}: {stats['width']}x{stats['height']} ({stats['seconds']:.3f} s)")
