"""Rate-distortion sweep of a classical codec over an image set.

  bin/bench --codec=jpeg --images='../shared/data/kodak/*.png' --output=jpeg.json \\
      [--qualities=10,30,50,70,90]

Writes CompressAI-layout JSON (tfcae.evaluation.results). For jpeg2000 the qualities are
compression ratios (higher = fewer bits); see tfcae/evaluation/classical.py.
"""
from absl import flags

from tfcae import TfcaeError

__all__ = ["main"]

FLAGS = flags.FLAGS
flags.DEFINE_string("codec", None, "One of jpeg, webp, jpeg2000, avif, heic.")
flags.DEFINE_string("images", None, "Comma-separated globs, folders or files.")
flags.DEFINE_string("output", None, "Results JSON to write.")
flags.DEFINE_string("qualities", None,
                    "Comma-separated qualities (jpeg2000: compression ratios); default: the "
                    "codec's standard sweep.")
flags.DEFINE_bool("progress", True, "Show a progress bar on stderr.")


def main():
  from tfcae.evaluation import classical
  from tfcae.evaluation.results import write_results
  from tfcae.io.fileio import expand_images
  for name in ("codec", "images", "output"):
    if not getattr(FLAGS, name):
      raise TfcaeError(f"--{name} is required")
  qualities = classical.parse_qualities(FLAGS.codec, FLAGS.qualities)
  paths = expand_images(FLAGS.images)
  if not paths:
    raise TfcaeError(f"no images match {FLAGS.images!r}")
  results = classical.sweep(FLAGS.codec, paths, qualities, progress=FLAGS.progress)
  try:
    write_results(FLAGS.output, results)
  except OSError as e:
    raise TfcaeError(f"{FLAGS.output}: cannot write ({e.strerror or e})") from None
  r = results["results"]
  print(f"{FLAGS.codec}: {len(paths)} images x {len(qualities)} qualities -> {FLAGS.output}")
  for q, b, p, m in zip(qualities, r["bpp"], r["psnr-rgb"], r["ms-ssim-rgb"]):
    print(f"  q={q:<4} bpp={b:.4f}  PSNR={p:.3f} dB  MS-SSIM={m:.5f}")
