"""Compress an image (PNG/JPEG/...) to a .tfcae file with an exported model.

  bin/compress --model=runs/quickstart --input=photo.png --output=photo.tfcae
  bin/compress --model=zoo:factorized/3 --input=photo.png --output=photo.tfcae
  bin/compress --tflite=encoder.tflite --model=runs/quickstart --input=photo.png \\
      --output=photo.tfcae      # device encoder (bin/export) + host-side range coding

--model_dir=DIR and --model=<family> --quality=<q> name a model too.
"""
import os

from absl import flags

from tfcae import cli
import tensorflow as tf  # noqa: F401  (before cli.run: see its docstring)
from tfcae.deploy import hostcoding, tflite
from tfcae.serving import codec

__all__ = ["main"]

cli.define_model_flags()
flags.DEFINE_string("input", None, "Image to compress (8-bit RGB; grayscale is converted, "
                    "opaque RGBA accepted, transparency refused).")
flags.DEFINE_string("output", None, "Output .tfcae file (written atomically; never the input).")
flags.DEFINE_string("tflite", "", "Encode with this TFLite encoder (bin/export) and range-code "
                    "its latents here with the model's entropy model; same file format.")
flags.DEFINE_enum("tflite_runtime", None, list(tflite.RUNTIMES), "With --tflite: the "
                  "interpreter that runs it: LiteRT (ai-edge-litert, the runtime devices "
                  "ship), TensorFlow's bundled one, or auto (LiteRT when installed; default, "
                  f"or ${tflite.RUNTIME_VARIABLE}).")
cli.define_max_pixels_flag("input images")
flags.mark_flags_as_required(["input", "output"])
FLAGS = flags.FLAGS


def main():
  cli.check_output(FLAGS.input, FLAGS.output, (".tfcae",), "compress writes .tfcae files")
  model_dir = cli.model_dir_from_flags()
  if FLAGS.tflite_runtime:
    os.environ[tflite.RUNTIME_VARIABLE] = FLAGS.tflite_runtime
  coder = (hostcoding.HostCoder(FLAGS.tflite, model_dir) if FLAGS.tflite
           else codec.Codec(model_dir))
  stats = codec.compress_file(coder, FLAGS.input, FLAGS.output, FLAGS.max_pixels)
  device = (f", device encoder on {coder.encoder.runtime}, {coder.encoder.num_threads} thread"
            if FLAGS.tflite else "")
  print(f"{FLAGS.output}: {stats['bytes']} bytes, {stats['bpp']:.4f} bpp "
        f"({stats['width']}x{stats['height']}, {stats['seconds']:.3f} s{device})")
