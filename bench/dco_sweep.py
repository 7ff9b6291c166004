#!/usr/bin/env python3
"""D-CO vs hinge vs β on BSDS500: van Rozendaal et al.'s Fig. 1 on our data.

  .venv/bin/python bench/dco_sweep.py --targets=300,330,360,420 --signals=validation \
      --betas=0.003 --hinge_targets=360 --runs_dir=runs/dco --jobs=2 \
      --test_images='../shared/data/kodak/*.png'        # the 2026-11-28 table (the defaults)

Trains one short CPU model per D-CO target and multiplier signal (`train`: the paper's
dual ascent on training batches, runs dco_c<T>; `validation`: on held-out batches with the
real quantizer, runs dcoval_c<T>; see tfcae.methods.dco.DualAscent), per β (the codec core's
R + λ·D) and per hinge target, all with configs/dco_cpu.cfg's settings (the objective
flags are overridden per run), two at a time; a run whose summary.json exists is not
trained again. Then reports, per run, the final validation MSE (real quantizer) against
the target, the training MSE of the last epoch, the rate, the final λ and, with
--test_images, MSE and bpp (file bytes) on a third image set no run has seen; and writes

  docs/benchmark/dco_sweep.json   every number of the table
  docs/benchmark/dco_rd.png       rate vs validation MSE of the three methods, targets marked
  docs/benchmark/dco_lambda.png   the D-CO runs' λ trajectories (the paper's Fig. 3)
"""
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from tfcae import TfcaeError, cli  # cli first: it quiets TensorFlow's start-up
from absl import flags

from tfcae.evaluation import plotting
from tfcae.io.fileio import atomic_write_json
from tfcae.training.rundir import RunDir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_string("config", "configs/dco_cpu.cfg", "Shared flagfile of every run.")
flags.DEFINE_list("targets", ["300", "330", "360", "420"], "D-CO MSE targets c_D.")
flags.DEFINE_list("signals", ["validation"], "Multiplier signals for --targets (train, "
                  "validation).")
flags.DEFINE_list("train_signal_targets", [], "More D-CO targets with the train signal.")
flags.DEFINE_string("test_images", "", "Glob of test images (e.g. Kodak) to code with "
                    "every run; empty: none.")
flags.DEFINE_list("betas", ["0.003"], "λ of the R + λ·D baseline.")
flags.DEFINE_list("hinge_targets", ["360"], "Hinge baseline MSE targets.")
flags.DEFINE_float("hinge_lambda", 10., "The hinge's fixed λ.")
flags.DEFINE_list("extra_lambda_runs", [], "More label=model_dir runs for the λ plot (e.g. "
                  "the paper's multiplier lr).")
flags.DEFINE_string("runs_dir", "runs/dco", "Where the runs go.")
flags.DEFINE_integer("jobs", 2, "Trainings at a time.")
flags.DEFINE_string("output_dir", "docs/benchmark", "Where the JSON and plots go.")
FLAGS = flags.FLAGS


RUN_PREFIX = {"train": "dco", "validation": "dcoval"}


def planned_runs():
  dco = [(signal, t) for signal in FLAGS.signals for t in FLAGS.targets]
  dco += [("train", t) for t in FLAGS.train_signal_targets if ("train", t) not in dco]
  runs = [(f"{RUN_PREFIX[signal]}_c{t}", RUN_PREFIX[signal], float(t),
           ["--objective=dco", f"--target_distortion={t}", f"--multiplier_signal={signal}"])
          for signal, t in dco]
  runs += [(f"beta_l{b}", "beta", None, ["--objective=beta", f"--lmbda={b}"])
           for b in FLAGS.betas]
  runs += [(f"hinge_c{t}", "hinge", float(t),
            ["--objective=hinge", f"--target_distortion={t}",
             f"--hinge_lambda={FLAGS.hinge_lambda:g}"]) for t in FLAGS.hinge_targets]
  return runs


def train(name, args):
  model_dir = os.path.join(FLAGS.runs_dir, name)
  if RunDir(model_dir).is_finished():
    return name, 0.
  start = time.time()
  with open(f"{model_dir}.log", "w", encoding="utf-8") as log:
    subprocess.run([sys.executable, os.path.join(REPO, "bin", "train"),
                    f"--flagfile={FLAGS.config}", f"--model_dir={model_dir}", "--verbose=2",
                    *args], stdout=log, stderr=subprocess.STDOUT, check=True, cwd=REPO)
  return name, time.time() - start


def last_epoch(model_dir):
  return RunDir(model_dir).read_history()[-1]


def test_point(model_dir, paths):
  """Mean MSE (8-bit decoded, 0..255) and mean bpp (file bytes) over `paths`."""
  import numpy as np
  from tfcae.serving.codec import Codec
  from tfcae.io.fileio import load_rgb_image
  from tfcae.objectives import metrics
  codec = Codec(model_dir)
  mse, bpp = [], []
  for path in paths:
    image = load_rgb_image(path)
    data = codec.compress(image)
    mse.append(metrics.mse(image, codec.decompress(data)))
    bpp.append(metrics.bpp(len(data), *image.shape[:2]))
  return float(np.mean(mse)), float(np.mean(bpp))


def main():
  unknown = set(FLAGS.signals) - set(RUN_PREFIX)
  if unknown:
    raise TfcaeError(f"--signals: unknown {sorted(unknown)}; expected train, validation")
  os.makedirs(FLAGS.runs_dir, exist_ok=True)
  runs = planned_runs()
  with ThreadPoolExecutor(FLAGS.jobs) as pool:
    for name, seconds in pool.map(lambda r: train(r[0], r[3]), runs):
      if seconds:
        print(f"trained {name} in {seconds / 60:.1f} min", flush=True)

  rows = []
  for name, method, target, _ in runs:
    model_dir = os.path.join(FLAGS.runs_dir, name)
    summary = RunDir(model_dir).read_summary()
    state = next(iter(summary.get("objective_state", {}).values()), {})
    train_logs = last_epoch(model_dir)
    rows.append({
        "run": name, "method": method, "target": target,
        "lmbda": (state.get("lambda") if method != "beta"
                  else summary["settings"]["lmbda"]),
        "val_mse": summary["validation"]["mse"], "val_bpp": summary["validation"]["bpp"],
        "train_mse": float(train_logs["mse"]), "train_bpp": float(train_logs["bpp"]),
        "val_gap": None if target is None else summary["validation"]["mse"] / target - 1.,
        "train_gap": None if target is None else float(train_logs["mse"]) / target - 1.,
        "target_met": state.get("target_met"), "lambda_at_clip": state.get("lambda_at_clip"),
        "steps": summary["epochs_completed"] * summary["settings"]["steps_per_epoch"],
    })
  if FLAGS.test_images:
    import glob
    paths = sorted(glob.glob(FLAGS.test_images))
    if not paths:
      raise TfcaeError(f"--test_images={FLAGS.test_images!r} matches no file")
    for r in rows:
      r["test_mse"], r["test_bpp"] = test_point(os.path.join(FLAGS.runs_dir, r["run"]), paths)
      r["test_gap"] = None if r["target"] is None else r["test_mse"] / r["target"] - 1.

  test = bool(FLAGS.test_images)
  print("| run | target c_D | final λ | train MSE (last epoch) | train MSE/c − 1 | "
        "val MSE | val MSE/c − 1 | val bpp |" + (" test MSE | test MSE/c − 1 | test bpp |"
                                                 if test else ""))
  print("|---" * (11 if test else 8) + "|")
  for r in rows:
    pct = lambda v: "—" if v is None else f"{100 * v:+.1f}%"
    line = (f"| {r['run']} | {r['target'] or '—'} | {r['lmbda']:.4g} | {r['train_mse']:.1f} | "
            f"{pct(r['train_gap'])} | {r['val_mse']:.1f} | {pct(r['val_gap'])} | "
            f"{r['val_bpp']:.4f} |")
    if test:
      line += f" {r['test_mse']:.1f} | {pct(r['test_gap'])} | {r['test_bpp']:.4f} |"
    print(line)

  os.makedirs(FLAGS.output_dir, exist_ok=True)
  atomic_write_json(os.path.join(FLAGS.output_dir, "dco_sweep.json"),
                    {"config": FLAGS.config, "test_images": FLAGS.test_images, "runs": rows})
  plot_rd(rows, os.path.join(FLAGS.output_dir, "dco_rd.png"))
  trajectories = [
      (f"c_D = {r['target']:g} ({r['method']})",
       *plotting.read_lambda_trajectory(os.path.join(FLAGS.runs_dir, r["run"])))
      for r in rows if r["method"] in ("dco", "dcoval")]
  for item in FLAGS.extra_lambda_runs:
    label, _, path = item.rpartition("=")
    trajectories.append((label or path, *plotting.read_lambda_trajectory(path)))
  plotting.plot_lambda_trajectories(trajectories, os.path.join(FLAGS.output_dir,
                                                               "dco_lambda.png"),
                                    lambda_max=1e3)
  print(f"wrote {FLAGS.output_dir}/dco_sweep.json, dco_rd.png, dco_lambda.png")


def plot_rd(rows, output_png):
  """Validation rate vs validation MSE per method; D-CO/hinge targets as vertical ticks."""
  plt = plotting.pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  try:
    styles = {"dco": ("o", "D-CO, train signal"), "dcoval": ("D", "D-CO, validation signal"),
              "hinge": ("s", "hinge (λ fixed)"), "beta": ("^", "β: R + λD")}
    for method, (marker, label) in styles.items():
      points = sorted((r["val_mse"], r["val_bpp"]) for r in rows if r["method"] == method)
      if points:
        ax.plot(*zip(*points), marker=marker, linewidth=1, label=label)
    for r in rows:
      if r["method"] in ("dco", "dcoval"):
        ax.axvline(r["target"], color="gray", linewidth=0.6, linestyle=":")
    ax.set_xlabel("validation MSE (0..255, real quantizer); dotted: D-CO targets")
    ax.set_ylabel("validation bits per pixel")
    ax.set_title("D-CO vs hinge vs β (factorized N=64, BSDS500 128² crops)")
    ax.grid(True, alpha=0.4)
    ax.legend()
    plotting.save_figure(fig, output_png, 120)
  finally:
    plt.close(fig)


if __name__ == "__main__":
  cli.run(main)
