#!/usr/bin/env python3
"""The rate-distortion cost of integer-safe scale indices.

  .venv/bin/python bench/integer_hyperprior.py --out=runs/ihs \
      --output=docs/benchmark/integer_hyperprior.json

At each λ one float scale hyperprior (`--flagfile`, --base_minutes on one core) is the
common start of two arms that fine-tune it for the same number of steps: `float` goes on
as it is, `integer` replaces its hyper-synthesis by the integer network of
tfcae/models/integer.py (Ballé et al. 2019; --integer_hyper_synthesis, initialised from
the float weights). Same data, steps, optimizer and learning rate, so the difference is
the integer network's. A third arm, `ptq`, is the float arm converted without training
(tfcae.training.loop.convert_to_integer_hyper_synthesis: its steps calibrated on one training
batch): the same transforms as `float`, so the same pixels, and only the rate differs.
All arms are scored on Kodak from real files; printed and written to --output: the BD-rate
of each integer arm against `float` (PSNR and MS-SSIM), the rate change at each λ (and
their geometric mean, which needs no curve fit: undertrained bases give curves too flat
for one), and the decode times; the curves are CompressAI-style results files beside it
(<output>_<arm>.json).

Jobs run two at a time, each pinned to one core (tfcae.training.jobs), and resume or skip when
re-run. The decode time is measured apart (`--stages=time`, after the training, alone):
the float and the integer model of each λ decode the same files in turn, one thread
each, on --timing_images, median of --timing_repeats rounds.

  .venv/bin/python bench/integer_hyperprior.py --stages=time   # decode times only
"""
import json
import os
import sys
import time

from tfcae import cli  # first: it quiets TensorFlow's start-up
import numpy as np
import tensorflow as tf  # noqa: F401  (before cli.run: see its docstring)
from absl import flags

from tfcae.io.fileio import atomic_write_json, expand_images
from tfcae.training import jobs
from tfcae.training.rundir import RunDir

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

flags.DEFINE_list("lambdas", ["0.0035", "0.0067", "0.013", "0.025"], "λ of the ladder.")
flags.DEFINE_string("flagfile_base", "configs/hyperprior_cpu.cfg", "Recipe of the bases.")
flags.DEFINE_float("base_minutes", 22., "Training time of each float base, on one core.")
flags.DEFINE_integer("finetune_epochs", 5, "Fine-tune epochs of each arm (× the steps).")
flags.DEFINE_integer("finetune_steps_per_epoch", 300, "Steps per fine-tune epoch.")
flags.DEFINE_string("finetune_lr", "1e-4", "Constant learning rate of the fine-tunes.")
flags.DEFINE_string("out", "runs/ihs", "Run directories.")
flags.DEFINE_string("images", "../shared/data/kodak/*.png", "Test images.")
flags.DEFINE_string("output", "docs/benchmark/integer_hyperprior.json", "Summary JSON.")
flags.DEFINE_list("stages", ["train", "convert", "evaluate", "time"],
                  "What to run (in this order).")
flags.DEFINE_string("timing_images", "../shared/data/kodak/kodim0[1-4].png",
                    "Images whose decode is timed.")
flags.DEFINE_integer("timing_repeats", 5, "Timed rounds per image.")
FLAGS = flags.FLAGS

ARMS = {"float": [], "integer": ["--integer_hyper_synthesis"]}  # trained
EVALUATED = ("float", "integer", "ptq")  # + the float arm converted without training


def _train(*args):
  return jobs.python(os.path.join(ROOT, "bin", "train"), *args, "--image_summaries=false")


def _trained(model_dir, minutes):
  """Whether the base has finished training for `minutes` (a shorter earlier run's
  summary does not count: re-running with more minutes extends the base first)."""
  run = RunDir(model_dir)

  def ready():
    return run.is_finished() and (
        run.read_summary()["settings"]["time_budget_minutes"] == minutes)
  return ready


def train():
  flagfile = os.path.join(ROOT, FLAGS.flagfile_base)
  todo = []
  for lmbda in FLAGS.lambdas:
    base = os.path.join(FLAGS.out, f"base_{lmbda}")
    todo.append((f"base_{lmbda}", _train(
        f"--flagfile={flagfile}", f"--lmbda={lmbda}", f"--model_dir={base}",
        "--epochs=100000", f"--time_budget_minutes={FLAGS.base_minutes}"),
        base + ".log", None))
  for lmbda in FLAGS.lambdas:
    base = os.path.join(FLAGS.out, f"base_{lmbda}")
    for arm, extra in ARMS.items():
      run = os.path.join(FLAGS.out, f"{arm}_{lmbda}")
      todo.append((f"{arm}_{lmbda}", _train(
          f"--flagfile={flagfile}", f"--lmbda={lmbda}", f"--model_dir={run}",
          f"--init_from={base}", f"--learning_rate={FLAGS.finetune_lr}",
          "--lr_schedule=constant", f"--epochs={FLAGS.finetune_epochs}",
          f"--steps_per_epoch={FLAGS.finetune_steps_per_epoch}", *extra),
          run + ".log", _trained(base, FLAGS.base_minutes)))
  codes = jobs.run_pinned(todo, log=lambda m: print(m, flush=True))
  failed = [name for name, code in codes.items() if code != 0]
  if failed:
    raise SystemExit(f"failed: {', '.join(failed)} (see {FLAGS.out}/<name>.log)")


def _run_dirs(arm):
  return [os.path.join(FLAGS.out, f"{arm}_{lmbda}") for lmbda in FLAGS.lambdas]


def _read_summary():
  if not os.path.exists(FLAGS.output):
    return {}
  with open(FLAGS.output, encoding="utf-8") as f:
    return json.load(f)


def convert():
  """The `ptq` arm: each float arm's hyper-synthesis made integer, no training."""
  from tfcae.data import images as data
  from tfcae.training import loop as training
  from tfcae.serving.export import export_model
  # The training data and crops the float arms used, from their own run configs.
  config = RunDir(_run_dirs("float")[0]).read_config()
  files, _ = training.split_files(config.train_images, config.val_images)
  batch = next(iter(data.train_dataset(files, config.patch_size, config.batch_size, seed=0)))
  for float_dir, ptq_dir in zip(_run_dirs("float"), _run_dirs("ptq")):
    export_model(training.convert_to_integer_hyper_synthesis(float_dir, batch), ptq_dir)
    print(f"converted {float_dir} -> {ptq_dir}", flush=True)


def evaluate():
  from tfcae.evaluation import bdrate
  from tfcae.evaluation import rd as evaluation
  from tfcae.evaluation.results import write_results
  images = expand_images(FLAGS.images)
  stem = os.path.splitext(FLAGS.output)[0]
  curves = {}
  for arm in EVALUATED:
    curves[arm] = evaluation.evaluate_model_dirs(
        _run_dirs(arm), images, f"tfcae hyperprior ({arm} hyper-synthesis)",
        f"{arm} arm of bench/integer_hyperprior.py, {time.strftime('%Y-%m-%d')}",
        progress=sys.stderr.isatty())
    write_results(f"{stem}_{arm}.json", curves[arm])
  summary = {**_read_summary(), "date": time.strftime("%Y-%m-%d"),
             "lambdas": [float(v) for v in FLAGS.lambdas], "base_minutes": FLAGS.base_minutes,
             "finetune_steps": FLAGS.finetune_epochs * FLAGS.finetune_steps_per_epoch,
             "images": len(images), "arms": {}}
  for arm, res in curves.items():
    r = res["results"]
    summary["arms"][arm] = {k: r[k] for k in ("bpp", "psnr-rgb", "ms-ssim-rgb")}
  anchor = summary["arms"]["float"]["bpp"]
  for arm in EVALUATED[1:]:
    a = summary["arms"][arm]
    for metric in ("psnr", "ms-ssim"):
      # A Bjøntegaard fit needs quality rising with rate on both curves; None otherwise.
      pair = [bdrate.curve(curves[name], metric) for name in ("float", arm)]
      rising = all(np.all(np.diff(q[np.argsort(r)]) > 0) for r, q in pair)
      a[f"bd_rate_{metric}_percent"] = bdrate.bd_rate(*pair[0], *pair[1]) if rising else None
    ratios = np.asarray(a["bpp"]) / np.asarray(anchor)
    a["rate_change_percent"] = [float(100 * (r - 1)) for r in ratios]
    a["mean_rate_change_percent"] = float(100 * (np.exp(np.mean(np.log(ratios))) - 1))
  atomic_write_json(FLAGS.output, summary)
  print(f"{'λ':>7s} {'arm':8s} {'bpp':>7s} {'PSNR':>6s} {'MS-SSIM':>8s} {'Δrate':>7s}")
  for i, lmbda in enumerate(FLAGS.lambdas):
    for arm in EVALUATED:
      a = summary["arms"][arm]
      change = f"{a['rate_change_percent'][i]:+6.2f}%" if "rate_change_percent" in a else ""
      print(f"{lmbda:>7s} {arm:8s} {a['bpp'][i]:7.4f} {a['psnr-rgb'][i]:6.2f} "
            f"{a['ms-ssim-rgb'][i]:8.5f} {change:>7s}")
  for arm in EVALUATED[1:]:
    a = summary["arms"][arm]
    bd = {m: ("n/a (quality not rising with rate)" if a[f"bd_rate_{m}_percent"] is None
              else f"{a[f'bd_rate_{m}_percent']:+.2f} %") for m in ("psnr", "ms-ssim")}
    print(f"{arm} vs float: rate {a['mean_rate_change_percent']:+.2f} % (geometric mean over "
          f"λ); BD-rate {bd['psnr']} (PSNR), {bd['ms-ssim']} (MS-SSIM)")
  print(f"wrote {FLAGS.output}")


def time_decoding():
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  from tfcae.deploy import timing
  from tfcae.serving.codec import Codec
  from tfcae.io.fileio import load_rgb_image
  images = [load_rgb_image(p) for p in expand_images(FLAGS.timing_images)]
  rows = {arm: [] for arm in EVALUATED}
  for i, lmbda in enumerate(FLAGS.lambdas):
    codecs = [Codec(_run_dirs(arm)[i]) for arm in EVALUATED]
    per_image = []
    for image in images:
      files = [c.compress(image) for c in codecs]
      per_image.append(timing.interleaved_seconds(
          [lambda c=c, d=d: c.decompress(d) for c, d in zip(codecs, files)],
          FLAGS.timing_repeats))
    for arm, seconds in zip(EVALUATED, zip(*per_image)):
      rows[arm].append(float(sum(seconds) / len(seconds)))
    print(f"λ {lmbda}: decode s/image " + ", ".join(
        f"{arm} {rows[arm][-1]:.3f}" for arm in EVALUATED), flush=True)
  summary = _read_summary()
  summary["decode_seconds"] = {"images": FLAGS.timing_images, "threads": 1,
                               "repeats": FLAGS.timing_repeats, **rows}
  atomic_write_json(FLAGS.output, summary)


def main():
  stages = {"train": train, "convert": convert, "evaluate": evaluate, "time": time_decoding}
  unknown = set(FLAGS.stages) - set(stages)
  if unknown:
    raise SystemExit(f"unknown --stages {sorted(unknown)}; choose from {sorted(stages)}")
  for name in stages:
    if name in FLAGS.stages:
      stages[name]()


if __name__ == "__main__":
  cli.run(main)
