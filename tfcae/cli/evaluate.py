"""Evaluate exported models on images: real file bpp, PSNR, MS-SSIM, timings (JSON).

  bin/evaluate --model=runs/a,runs/b --images='../shared/data/kodak/*.png' --output=kodak.json
  bin/evaluate --model=zoo:factorized/3,zoo:factorized/5 --images=... --output=...
  bin/evaluate --model=factorized [--quality=1,2,3] --images=... --output=...  (a zoo ladder)
  bin/evaluate --model=meanscale-vbr [--quality=1,1.5,2] --images=... --output=...
  bin/evaluate --model=meanscale-vbr --target_bpp=0.25,0.5 ...  (every image at one rate)
"""
import sys

from absl import flags

from tfcae import cli
import tensorflow as tf  # noqa: F401  (before cli.run: see its docstring)
from tfcae import TfcaeError
from tfcae.evaluation import rd as evaluation
from tfcae.evaluation.results import write_results
from tfcae.io import zoo_index
from tfcae.io.fileio import expand_images

__all__ = ["main"]

flags.DEFINE_list("model", None, "Models (comma-separated), each one rate-distortion point: "
                  "a directory or zoo:<family>/<quality>; a zoo family alone is its ladder "
                  "(or, with --quality, those qualities of it).")
flags.DEFINE_list("model_dir", None, "Exported model directories (comma-separated), as "
                  "--model.")
flags.DEFINE_list("quality", None, "With --model=<family>: these qualities (default: all "
                  "shipped); with one variable-rate model, the qualities it codes at, one "
                  "point each (default: 1, 2, ..., K).")
flags.DEFINE_list("target_bpp", None, "With one variable-rate model: one point per rate, "
                  "each image coded at the highest quality within it (rate control).")
flags.DEFINE_string("images", None, "Images: folder, glob or comma list.")
flags.DEFINE_string("output", None, "Results JSON (CompressAI layout).")
flags.DEFINE_string("name", "tfcae", "Name recorded in the JSON (legend of plots).")
flags.DEFINE_string("description", "", "Free-text description recorded in the JSON.")
cli.define_tile_flag()
flags.DEFINE_enum("energy", "auto", ["auto", "off"], "Encoder joules per image: the encoding "
                  "time × the CPU power codecarbon measures over the run (offline; auto: when "
                  "it can, with one warning line where it cannot).")
flags.mark_flags_as_required(["images", "output"])
FLAGS = flags.FLAGS


def main():
  paths = expand_images(FLAGS.images)
  if not paths:
    raise TfcaeError(f"no images found for {FLAGS.images!r}")
  if bool(FLAGS.model) == bool(FLAGS.model_dir):
    raise TfcaeError("give --model (directories or zoo models) or --model_dir")
  if FLAGS.model_dir and FLAGS.quality and not (
      len(FLAGS.model_dir) == 1 and cli.is_variable_rate(FLAGS.model_dir[0])):
    raise TfcaeError("--quality goes with a zoo family: --model=<family> --quality=<q>")
  qualities, target_bpps = FLAGS.quality, _numbers(FLAGS.target_bpp, "--target_bpp")
  single = (FLAGS.model or FLAGS.model_dir or [])
  variable = len(single) == 1 and cli.is_variable_rate(single[0])
  if variable:
    model_dirs = [cli.resolve_model(single[0])]
    qualities = _numbers(FLAGS.quality, "--quality")
  else:
    if target_bpps:
      raise TfcaeError("--target_bpp goes with one variable-rate model (e.g. "
                       "--model_dir=DIR of a meanscale-vbr run)")
    model_dirs = (cli.resolve_models(FLAGS.model, FLAGS.quality) if FLAGS.model
                  else [zoo_index.resolve(d) for d in FLAGS.model_dir])
    qualities = None
  results = evaluation.evaluate_model_dirs(model_dirs, paths, FLAGS.name,
                                           FLAGS.description, progress=sys.stderr.isatty(),
                                           qualities=qualities, target_bpps=target_bpps,
                                           energy=FLAGS.energy == "auto", tile=FLAGS.tile)
  write_results(FLAGS.output, results)
  r = results["results"]
  joules = "encoder_joules" in r
  print(f"{'model':40s} {'bpp':>7s} {'est.bpp':>7s} {'PSNR':>6s} {'MS-SSIM':>8s} "
        f"{'enc s':>6s} {'dec s':>6s}" + (f" {'enc J':>6s}" if joules else ""))
  for i, point in enumerate(results["points"]):
    print(f"{point['label'][-40:]:40s} {r['bpp'][i]:7.4f} {r['estimated_bpp'][i]:7.4f} "
          f"{r['psnr-rgb'][i]:6.2f} {r['ms-ssim-rgb'][i]:8.5f} {r['encoding_time'][i]:6.3f} "
          f"{r['decoding_time'][i]:6.3f}" + (f" {r['encoder_joules'][i]:6.2f}" if joules else ""))
  if joules:
    print(f"encoder joules: encoding time × {results['energy']['cpu_power_w']:.1f} W CPU "
          f"({results['energy']['power_source']})")
  print(f"wrote {FLAGS.output}")


def _numbers(values, flag):
  if not values:
    return None
  try:
    return [float(v) for v in values]
  except ValueError:
    raise TfcaeError(f"{flag} takes numbers, got {','.join(values)}") from None
