#!/usr/bin/env python3
"""The rate-distortion cost of integer-safe scale indices (issue 16, part 2).

  .venv/bin/python bench/integer_hyperprior.py --out=runs/ihs \
      --output=docs/benchmark/integer_hyperprior.json

At each λ one float scale hyperprior (`--flagfile`, --base_minutes on one core) is the
common start of two arms that fine-tune it for the same number of steps: `float` goes on
as it is, `integer` replaces its hyper-synthesis by the integer network of
tfcae/models/integer.py (Ballé et al. 2019; --integer_hyper_synthesis, initialised from
the float weights). Same data, steps, optimizer and learning rate, so the difference is
the integer network's. Both arms are scored on Kodak from real files; the BD-rate of
`integer` against `float` (PSNR and MS-SSIM) and the mean decode times are printed and
written to --output, with the two curves as CompressAI-style results files beside it
(<output>_float.json, <output>_integer.json).

Jobs run two at a time, each pinned to one core (tfcae.jobs), and resume or skip when
re-run. Evaluation runs after the training, alone, so its decode times are one process's.
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from absl import app, flags  # noqa: E402

from tfcae import jobs  # noqa: E402
from tfcae.fileio import atomic_write_json, expand_images  # noqa: E402

flags.DEFINE_list("lambdas", ["0.0035", "0.0067", "0.013", "0.025"], "λ of the ladder.")
flags.DEFINE_string("flagfile_base", "configs/hyperprior_cpu.cfg", "Recipe of the bases.")
flags.DEFINE_float("base_minutes", 12., "Training time of each float base, on one core.")
flags.DEFINE_integer("finetune_epochs", 5, "Fine-tune epochs of each arm (× the steps).")
flags.DEFINE_integer("finetune_steps_per_epoch", 300, "Steps per fine-tune epoch.")
flags.DEFINE_string("finetune_lr", "1e-4", "Constant learning rate of the fine-tunes.")
flags.DEFINE_string("out", "runs/ihs", "Run directories.")
flags.DEFINE_string("images", "../shared/data/kodak/*.png", "Test images.")
flags.DEFINE_string("output", "docs/benchmark/integer_hyperprior.json", "Summary JSON.")
FLAGS = flags.FLAGS

ARMS = {"float": [], "integer": ["--integer_hyper_synthesis"]}


def _train(*args):
  return jobs.python(os.path.join(ROOT, "bin", "train"), *args, "--image_summaries=false")


def _done(model_dir):
  return lambda: os.path.exists(os.path.join(model_dir, "summary.json"))


def main(argv):
  del argv
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
          run + ".log", _done(base)))
  codes = jobs.run_pinned(todo, log=lambda m: print(m, flush=True))
  failed = [name for name, code in codes.items() if code != 0]
  if failed:
    raise SystemExit(f"failed: {', '.join(failed)} (see {FLAGS.out}/<name>.log)")

  # TensorFlow only now: the training processes had the cores to themselves.
  from tfcae import bdrate, evaluation
  from tfcae.results import write_results
  images = expand_images(FLAGS.images)
  stem = os.path.splitext(FLAGS.output)[0]
  curves = {}
  for arm in ARMS:
    dirs = [os.path.join(FLAGS.out, f"{arm}_{lmbda}") for lmbda in FLAGS.lambdas]
    curves[arm] = evaluation.evaluate_model_dirs(
        dirs, images, f"tfcae hyperprior ({arm} hyper-synthesis)",
        f"{arm} arm of bench/integer_hyperprior.py, {time.strftime('%Y-%m-%d')}",
        progress=sys.stderr.isatty())
    write_results(f"{stem}_{arm}.json", curves[arm])
  summary = {"date": time.strftime("%Y-%m-%d"), "lambdas": [float(v) for v in FLAGS.lambdas],
             "base_minutes": FLAGS.base_minutes,
             "finetune_steps": FLAGS.finetune_epochs * FLAGS.finetune_steps_per_epoch,
             "images": len(images), "arms": {}}
  for arm, res in curves.items():
    r = res["results"]
    summary["arms"][arm] = {k: r[k] for k in ("bpp", "psnr-rgb", "ms-ssim-rgb",
                                              "encoding_time", "decoding_time")}
  for metric in ("psnr", "ms-ssim"):
    summary[f"bd_rate_{metric}_percent"] = bdrate.bd_rate(
        *bdrate.curve(curves["float"], metric), *bdrate.curve(curves["integer"], metric))
  atomic_write_json(FLAGS.output, summary)
  print(f"{'λ':>7s} {'arm':8s} {'bpp':>7s} {'PSNR':>6s} {'MS-SSIM':>8s} {'dec s':>6s}")
  for i, lmbda in enumerate(FLAGS.lambdas):
    for arm in ARMS:
      a = summary["arms"][arm]
      print(f"{lmbda:>7s} {arm:8s} {a['bpp'][i]:7.4f} {a['psnr-rgb'][i]:6.2f} "
            f"{a['ms-ssim-rgb'][i]:8.5f} {a['decoding_time'][i]:6.3f}")
  print(f"BD-rate integer vs float: {summary['bd_rate_psnr_percent']:+.2f} % (PSNR), "
        f"{summary['bd_rate_ms-ssim_percent']:+.2f} % (MS-SSIM); wrote {FLAGS.output}")
  print(json.dumps({k: v for k, v in summary.items() if k.startswith("bd_")}))


if __name__ == "__main__":
  app.run(main)
