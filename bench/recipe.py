#!/usr/bin/env python3
"""Training recipes side by side at equal wall-clock time.

  .venv/bin/python bench/recipe.py --arms=tfc_example,base,lr5e-4_cosine,... \
      --budget_minutes=12 --parallel=2 --out=runs/recipe

Every arm trains tfcae.training.loop.train (the code path of bin/train) for the same training
time (`--time_budget_minutes`: the learning-rate schedule runs over the time, so it
completes whatever the arm's speed) on ../shared/data/train at one λ, then is scored on
Kodak from real files (bpp from the bytes, PSNR, MS-SSIM). With --parallel=2 two arms run
at once, each pinned to its own core with taskset (every arm gets one core: equal CPU).

The anchor arm `tfc_example` is TFC's own example recipe, written here with TFC's layers
as its models/bls2017.py uses them: `tfc.SignalConv2D` (default RDFT kernel
parameterisation), `tfc.GDN`, Adam 1e-4 constant, 256² crops, batch 8, no clipping.

One-λ arms land at different rates, so the table compares them at equal bpp through the
project's JPEG curve (docs/benchmark/jpeg.json): ΔPSNR_JPEG is an arm's PSNR minus JPEG's
at the arm's bpp (log-rate interpolation), and "vs anchor" is its difference to the
anchor's ΔPSNR_JPEG (dB at equal bpp, to first order; above JPEG's highest measured
rate, 2.3 bpp, its curve is extended along its last segment). Results: OUT/recipe.json, a
markdown table on stdout (docs/results.md "Recipe study").
"""
import glob
import json
import os
import time

from tfcae import TfcaeError, cli  # cli first: it quiets TensorFlow's start-up
import tensorflow as tf  # noqa: F401  (before cli.run: see its docstring)
from absl import flags

from tfcae.evaluation.bdrate import quality_at_rate
from tfcae.training import jobs

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

flags.DEFINE_string("arms", "", "Comma-separated arm names (see ARMS); empty: all.")
flags.DEFINE_float("budget_minutes", 12., "Training time of every arm.")
flags.DEFINE_integer("parallel", 2, "Arms at once, each pinned to one core (taskset).")
flags.DEFINE_string("out", "runs/recipe", "Output folder (one model_dir per arm).")
flags.DEFINE_string("train_images", "../shared/data/train", "Training images.")
flags.DEFINE_string("kodak", "../shared/data/kodak/*.png", "Test images.")
flags.DEFINE_float("lmbda", 0.01, "λ of every arm.")
flags.DEFINE_string("jpeg", os.path.join(ROOT, "docs/benchmark/jpeg.json"),
                    "JPEG results (the equal-bpp reference curve).")
flags.DEFINE_string("plot", "", "Also draw the arms' Kodak points beside JPEG's curve here.")
flags.DEFINE_string("run_arm", "", "(internal) train and score this one arm.")
flags.DEFINE_list("time_curve", None, "Instead of training: recipe JSONs of several budgets; "
                  "prints and plots (--plot) ΔPSNR_JPEG against training time per width.")
FLAGS = flags.FLAGS

# Each arm: TrainConfig overrides on top of BASE. "base" is tfcae's model with TFC's
# example optimisation; the others change one or two things at a time.
BASE = dict(architecture="factorized", num_filters=128, latent_channels=128, patch_size=256,
            batch_size=8, learning_rate=1e-4, lr_schedule="constant", clip_gradient_norm=1.0,
            steps_per_epoch=200, epochs=100000, validation_batches=4, image_summaries=False,
            verbose=2)
HIGH_LR = dict(learning_rate=5e-4, lr_schedule="cosine", lr_warmup=0.02)
# 128² crops won the first rounds by far (4× the steps of 256² in the same time), so the
# remaining factors are measured on top of them.
CROP128 = dict(HIGH_LR, patch_size=128)
ARMS = {
    "tfc_example": dict(clip_gradient_norm=0.),  # + TFC's layers, see TFCExampleModel
    "base": {},
    "lr5e-4_cosine": HIGH_LR,
    "lr1e-3_cosine": dict(HIGH_LR, learning_rate=1e-3),
    "crop128": CROP128,
    "crop128_batch16": dict(CROP128, batch_size=16),
    "n64_crop128": dict(CROP128, num_filters=64, latent_channels=64),
    "lr5e-4_step": dict(CROP128, lr_schedule="step"),
    "crop128_lr1e-3": dict(CROP128, learning_rate=1e-3),
    "n192": dict(CROP128, num_filters=192, latent_channels=192),
    "mixed": dict(CROP128, decoder_quantization="mixed"),
    "gdn_original": dict(CROP128, gdn="original"),
    "xla": dict(CROP128, jit_compile=True),
    "hyperprior": dict(CROP128, architecture="hyperprior"),
    "meanscale": dict(CROP128, architecture="meanscale"),
    # The zoo recipe (lr5e-4_step) with the transforms in bfloat16 (float32 master weights,
    # entropy models and losses): ≈ 1.9× the steps on a CPU with AVX512-BF16/AMX.
    "bf16": dict(CROP128, lr_schedule="step", precision="mixed_bfloat16"),
}


def tfc_example_model(num_filters, objective):
  """TFC's models/bls2017.py transforms (SignalConv2D + GDN) inside tfcae's
  FactorizedModel (same prior, entropy model, bitstream and export)."""
  import tensorflow_compression as tfc
  from tfcae.models import FactorizedModel

  class TFCExampleModel(FactorizedModel):
    architecture = "tfc_example"

    def __init__(self, num_filters, objective):
      super().__init__(num_filters=num_filters, objective=objective)
      n = num_filters
      conv = lambda filters, kernel, stride, name, act=None, bias=True: tfc.SignalConv2D(
          filters, (kernel, kernel), name=name, corr=True, strides_down=stride,
          padding="same_zeros", use_bias=bias, activation=act)
      deconv = lambda filters, kernel, stride, name, act=None: tfc.SignalConv2D(
          filters, (kernel, kernel), name=name, corr=False, strides_up=stride,
          padding="same_zeros", use_bias=True, activation=act)
      self.analysis_transform = tf.keras.Sequential([
          tf.keras.layers.Rescaling(1. / 255.),
          conv(n, 9, 4, "layer_0", tfc.GDN(name="gdn_0")),
          conv(n, 5, 2, "layer_1", tfc.GDN(name="gdn_1")),
          conv(n, 5, 2, "layer_2", bias=False)], name="analysis")
      self.synthesis_transform = tf.keras.Sequential([
          deconv(n, 5, 2, "layer_0", tfc.GDN(name="igdn_0", inverse=True)),
          deconv(n, 5, 2, "layer_1", tfc.GDN(name="igdn_1", inverse=True)),
          deconv(3, 9, 4, "layer_2"),
          tf.keras.layers.Rescaling(255.)], name="synthesis")
      self.build((None, None, None, 3))

    def get_config(self):
      return {"architecture": self.architecture, "num_filters": self.num_filters}

  return TFCExampleModel(num_filters, objective)


def run_arm(name):
  """Child process: trains one arm and scores it on Kodak; writes OUT/name/result.json."""
  from tfcae.serving.codec import Codec
  from tfcae.evaluation import rd as evaluation
  from tfcae.training import loop as training
  from tfcae.training.config import TrainConfig

  model_dir = os.path.join(FLAGS.out, name)
  settings = dict(BASE, **ARMS[name])
  config = TrainConfig(model_dir=model_dir, train_images=FLAGS.train_images,
                       lmbda=FLAGS.lmbda, time_budget_minutes=FLAGS.budget_minutes,
                       **settings)
  model_fn = None
  if name == "tfc_example":
    model_fn = lambda objective: tfc_example_model(config.num_filters, objective)
  summary = training.train(config, model_fn=model_fn)
  images = sorted(glob.glob(FLAGS.kodak))
  records = evaluation.evaluate_codec(Codec(model_dir), images, progress=False)
  mean = lambda k: sum(r[k] for r in records) / len(records)
  steps = summary["steps"]
  result = {
      "arm": name, "settings": settings, "lmbda": FLAGS.lmbda,
      "budget_minutes": FLAGS.budget_minutes, "train_seconds": summary["train_seconds"],
      "steps": steps, "steps_per_sec": steps / summary["train_seconds"],
      "mpixel_per_sec": steps * config.batch_size * config.patch_size ** 2 /
                        summary["train_seconds"] / 1e6,
      "kodak": {"bpp": mean("bpp"), "psnr-rgb": mean("psnr-rgb"),
                "ms-ssim-rgb": mean("ms-ssim-rgb"), "images": len(records)},
      "validation": summary["validation"], "fingerprint": summary["fingerprint"],
  }
  with open(os.path.join(model_dir, "result.json"), "w", encoding="utf-8") as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result["kodak"]), flush=True)


def table(results, jpeg):
  anchor = next((r for r in results if r["arm"] == "tfc_example"), None)
  delta = lambda r: r["kodak"]["psnr-rgb"] - quality_at_rate(
      jpeg, "psnr", r["kodak"]["bpp"], extrapolate=True)
  lines = ["| arm | steps | steps/s | Mpixel/s | Kodak bpp | PSNR | MS-SSIM | ΔPSNR_JPEG | "
           "vs anchor (dB) |", "|---|---|---|---|---|---|---|---|---|"]
  for r in sorted(results, key=delta, reverse=True):
    k = r["kodak"]
    vs = f"{delta(r) - delta(anchor):+.2f}" if anchor else "–"
    lines.append(f"| {r['arm']} | {r['steps']} | {r['steps_per_sec']:.2f} | "
                 f"{r['mpixel_per_sec']:.2f} | {k['bpp']:.3f} | {k['psnr-rgb']:.2f} | "
                 f"{k['ms-ssim-rgb']:.4f} | {delta(r):+.2f} | {vs} |")
  return "\n".join(lines)


def time_curve(paths, jpeg, output_png=""):
  """ΔPSNR_JPEG (dB at equal bpp) against training minutes, one line per width N, from the
  recipe JSONs of several budgets (each arm of the zoo's recipe family: 128² crops, step
  or cosine decay)."""
  series = {}
  for path in paths:
    with open(path, encoding="utf-8") as f:
      study = json.load(f)
    for r in study["arms"]:
      s = r["settings"]
      # "model": the deprecated key of "architecture" (TrainConfig.RENAMED).
      architecture = s.get("architecture", s.get("model", "factorized"))
      if s.get("patch_size") != 128 or s.get("batch_size", 8) != 8 or (
          architecture != "factorized") or s.get("learning_rate") != 5e-4:
        continue
      if s["num_filters"] == 128 and s.get("lr_schedule") != "step":
        continue  # N = 128 was confirmed with the step decay only
      delta = r["kodak"]["psnr-rgb"] - quality_at_rate(jpeg, "psnr", r["kodak"]["bpp"],
                                                       extrapolate=True)
      series.setdefault(s["num_filters"], []).append((study["budget_minutes"], delta,
                                                      r["arm"]))
  series = {n: p for n, p in series.items() if len(p) > 1}  # widths measured at one budget: no curve
  lines = ["| width | " + " | ".join(f"{m:g} min" for m, _, _ in sorted(series[128])) + " |",
           "|---|" + "---|" * len(series[128])]
  for n, points in sorted(series.items()):
    points.sort()
    lines.append(f"| N = {n} | " + " | ".join(f"{d:+.2f} ({a})" for _, d, a in points) + " |")
  print("\n".join(lines))
  if output_png:
    from tfcae.evaluation.plotting import plot_series
    plot_series([(f"N = {n}", [m for m, _, _ in p], [d for _, d, _ in p])
                 for n, p in sorted(series.items())],
                "training time on one core (minutes)", "PSNR − JPEG's at equal bpp (dB)",
                output_png, "Recipe study: Kodak, one λ per run", logx=True, hline=0.)


def main():
  if FLAGS.time_curve:
    with open(FLAGS.jpeg, encoding="utf-8") as f:
      return time_curve(FLAGS.time_curve, json.load(f), FLAGS.plot)
  if FLAGS.run_arm:
    return run_arm(FLAGS.run_arm)
  names = [a for a in FLAGS.arms.split(",") if a] or list(ARMS)
  unknown = [a for a in names if a not in ARMS]
  if unknown:
    raise TfcaeError(f"unknown arms {unknown}; available: {', '.join(ARMS)}")
  os.makedirs(FLAGS.out, exist_ok=True)
  work = []
  for name in names:
    if os.path.exists(os.path.join(FLAGS.out, name, "result.json")):
      continue  # scored already; an unfinished arm resumes from its checkpoint
    argv = jobs.python(os.path.abspath(__file__), f"--run_arm={name}",
                       f"--budget_minutes={FLAGS.budget_minutes}", f"--out={FLAGS.out}",
                       f"--train_images={FLAGS.train_images}", f"--kodak={FLAGS.kodak}",
                       f"--lmbda={FLAGS.lmbda}")
    work.append((name, argv, os.path.join(FLAGS.out, name, "train.log"), None))
  jobs.run_pinned(work, FLAGS.parallel, log=lambda line: print(line, flush=True))
  results = []
  for name in names:
    path = os.path.join(FLAGS.out, name, "result.json")
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        results.append(json.load(f))
  with open(FLAGS.jpeg, encoding="utf-8") as f:
    jpeg = json.load(f)
  with open(os.path.join(FLAGS.out, "recipe.json"), "w", encoding="utf-8") as f:
    json.dump({"date": time.strftime("%Y-%m-%d"), "budget_minutes": FLAGS.budget_minutes,
               "parallel": FLAGS.parallel, "lmbda": FLAGS.lmbda, "arms": results}, f,
              indent=2)
  print(table(results, jpeg))
  if FLAGS.plot:
    from tfcae.evaluation.plotting import plot_rd
    points = [{"name": r["arm"], "results": {"bpp": [r["kodak"]["bpp"]],
                                             "psnr-rgb": [r["kodak"]["psnr-rgb"]]}}
              for r in results]
    plot_rd([jpeg] + points, "psnr", FLAGS.plot,
            f"Recipes at {FLAGS.budget_minutes:g} min on one core each (Kodak, λ {FLAGS.lmbda})")


if __name__ == "__main__":
  cli.run(main)
