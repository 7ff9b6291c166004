"""A decoded tfcae file next to a classical codec at the same file size.

  bin/compare --original=photo.png --file=photo.tfcae --decoded=photo.png.out \\
      [--codec=jpeg]

Prints the tfcae file's bpp, PSNR and MS-SSIM, and those of the largest --codec file of
the original that is no bigger (quality found by bisection).
"""
import os

from absl import flags

from tfcae import TfcaeError, cli
from tfcae.evaluation import classical
from tfcae.io.fileio import load_rgb_image
from tfcae.objectives import metrics

__all__ = ["main"]

flags.DEFINE_string("original", None, "The original image.")
flags.DEFINE_string("file", None, "The .tfcae file written from it.")
flags.DEFINE_string("decoded", None, "The file's decoded image (bin/decompress output).")
flags.DEFINE_enum("codec", "jpeg", ["jpeg", "webp", "avif", "heic"], "Classical codec.")
flags.mark_flags_as_required(["original", "file", "decoded"])
FLAGS = flags.FLAGS


def main():
  original, decoded = load_rgb_image(FLAGS.original), load_rgb_image(FLAGS.decoded)
  if original.shape != decoded.shape:
    raise TfcaeError(f"{FLAGS.decoded} is {decoded.shape[1]}x{decoded.shape[0]}, "
                     f"{FLAGS.original} {original.shape[1]}x{original.shape[0]}")
  size = os.path.getsize(FLAGS.file)
  height, width = original.shape[:2]
  row = lambda name, n, image: print(
      f"{name:22s} {n:7d} bytes  {metrics.bpp(n, height, width):.3f} bpp  "
      f"{metrics.psnr(original, image):6.2f} dB PSNR  MS-SSIM {metrics.ms_ssim(original, image):.4f}")
  row("tfcae", size, decoded)
  quality, data = classical.at_size(original, FLAGS.codec, size)
  if quality is None:
    print(f"{FLAGS.codec}: even quality 1 is larger than {size} bytes")
  else:
    row(f"{FLAGS.codec} (quality {quality})", len(data), classical.decode(data, FLAGS.codec))
