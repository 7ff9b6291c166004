"""Compress an image (PNG/JPEG/...) to a .tfcae file with an exported model.

  bin/compress --model=runs/quickstart --input=photo.png --output=photo.tfcae
  bin/compress --model=zoo:factorized/3 --input=photo.png --output=photo.tfcae
  bin/compress --tflite=encoder.tflite --model=runs/quickstart --input=photo.png \\
      --output=photo.tfcae      # device encoder (bin/export) + host-side range coding
  bin/compress --model=meanscale-vbr --quality=2.7 --input=photo.png --output=photo.tfcae
  bin/compress --model=meanscale-vbr --max_bytes=50000 ...   # or --target_bpp=0.5,
                                                             # --target_psnr=32

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
flags.DEFINE_integer("max_bytes", None, "Variable-rate models: the highest quality whose "
                     "file has at most this many bytes (bisection; the quality is printed).")
flags.DEFINE_float("target_bpp", None, "Variable-rate models: the highest quality whose file "
                   "has at most this many bits per pixel.")
flags.DEFINE_float("target_psnr", None, "Variable-rate models: the lowest quality whose "
                   "decoded image reaches this PSNR (dB): the smallest such file.")
cli.define_max_pixels_flag("input images")
flags.mark_flags_as_required(["input", "output"])
cli.define_tile_flag()
FLAGS = flags.FLAGS


def main():
  cli.check_output(FLAGS.input, FLAGS.output, (".tfcae",), "compress writes .tfcae files")
  model_dir = cli.model_dir_from_flags()
  if FLAGS.tflite_runtime:
    os.environ[tflite.RUNTIME_VARIABLE] = FLAGS.tflite_runtime
  coder = (hostcoding.HostCoder(FLAGS.tflite, model_dir, tile=FLAGS.tile) if FLAGS.tflite
           else codec.Codec(model_dir, FLAGS.tile))
  quality = None if FLAGS.tflite else cli.coding_quality_from_flags(model_dir)
  stats = codec.compress_file(coder, FLAGS.input, FLAGS.output, FLAGS.max_pixels,
                              quality=quality, max_bytes=FLAGS.max_bytes,
                              target_bpp=FLAGS.target_bpp, target_psnr=FLAGS.target_psnr)
  device = (f", device encoder on {coder.encoder.runtime}, {coder.encoder.num_threads} thread"
            if FLAGS.tflite else "")
  rate = ""
  if "quality" in stats:
    codings = stats["codings"]
    rate = f", quality {stats['quality']:.4f}" + (
        f" after {codings} codings" if codings > 1 else "")
  print(f"{FLAGS.output}: {stats['bytes']} bytes, {stats['bpp']:.4f} bpp "
        f"({stats['width']}x{stats['height']}{rate}, {stats['seconds']:.3f} s{device})")
