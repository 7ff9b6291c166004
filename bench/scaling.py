"""Training throughput by strategy, precision and XLA on this machine.

  .venv/bin/python bench/scaling.py --out=runs/scaling        # ≈ 10 min, idle machine

Every arm is a plain `bin/train` of the factorized (or hyperprior) model, N = 128, 128²
crops, for --epochs × --steps_per_epoch steps; steps/s is the mean of the Throughput
callback's epochs after the first (tracing and the tf.data warm-up excluded), and
Mpixel/s counts the global batch. Arms:

  default_1core      --strategy=default, pinned to core 0 (taskset)
  default_2cores     --strategy=default, both cores
  workers_2x1core    --strategy=multi_worker, two processes on localhost (TF_CONFIG), one
                     core each, the same global batch (each worker half of it)
  workers_2x1core_b16  the same with a global batch of 16 (8 per worker)
  jit / bf16 / fp16  --jit_compile, --precision=mixed_bfloat16|mixed_float16, both cores

The arms run one after another (never two at once) and the figures are written to
--output (JSON) and printed as a markdown table.
"""
import csv
import json
import os
import shutil
import subprocess
import sys

from tfcae import cli  # first: it quiets TensorFlow's start-up
from absl import flags

from tfcae.io.fileio import atomic_write_json
from tfcae.training import jobs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_string("out", "runs/scaling", "Where the runs go (removed and rewritten).")
flags.DEFINE_string("train_images", "../shared/data/train", "Training images.")
flags.DEFINE_integer("epochs", 4, "Epochs per arm (the first is not counted).")
flags.DEFINE_integer("steps_per_epoch", 60, "Steps per epoch.")
flags.DEFINE_list("arms", ["default_1core", "default_2cores", "workers_2x1core",
                           "workers_2x1core_b16", "jit", "bf16", "fp16",
                           "hyperprior", "hyperprior_jit", "hyperprior_bf16"],
                  "Arms to run.")
flags.DEFINE_string("output", "docs/benchmark/scaling.json", "Results JSON.")
FLAGS = flags.FLAGS

PATCH = 128
ARMS = {  # name: (extra flags, cores per process or None for all, workers, global batch)
    "default_1core": ([], [0], 1, 8),
    "default_2cores": ([], None, 1, 8),
    "workers_2x1core": (["--strategy=multi_worker"], [0], 2, 8),
    "workers_2x1core_b16": (["--strategy=multi_worker"], [0], 2, 16),
    "jit": (["--jit_compile"], None, 1, 8),
    "bf16": (["--precision=mixed_bfloat16"], None, 1, 8),
    "fp16": (["--precision=mixed_float16"], None, 1, 8),
    "hyperprior": (["--architecture=hyperprior"], None, 1, 8),
    "hyperprior_jit": (["--architecture=hyperprior", "--jit_compile"], None, 1, 8),
    "hyperprior_bf16": (["--architecture=hyperprior", "--precision=mixed_bfloat16"], None, 1, 8),
}


def _steps_per_sec(model_dir):
  with open(os.path.join(model_dir, "history.csv"), encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  values = [float(r["steps_per_sec"]) for r in rows[1:]]
  return sum(values) / len(values)


def run_arm(name):
  extra, cores, workers, batch = ARMS[name]
  model_dir = os.path.join(FLAGS.out, name)
  shutil.rmtree(model_dir, ignore_errors=True)  # a fresh run, never a resume
  argv = [sys.executable, os.path.join(REPO, "bin", "train"), "--architecture=factorized",
          "--num_filters=128", f"--train_images={FLAGS.train_images}", f"--patch_size={PATCH}",
          f"--batch_size={batch}", f"--epochs={FLAGS.epochs}",
          f"--steps_per_epoch={FLAGS.steps_per_epoch}", "--validation_batches=1",
          "--image_summaries=false", "--verbose=2", f"--model_dir={model_dir}", *extra]
  ports = jobs.free_ports(workers)
  procs = []
  for index in range(workers):
    env = dict(os.environ)
    if workers > 1:
      env["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                                     "task": {"type": "worker", "index": index}})
    pin = ["taskset", "-c", str(cores[0] + index)] if cores else []
    log = open(os.path.join(FLAGS.out, f"{name}.{index}.log"), "w", encoding="utf-8")
    procs.append((subprocess.Popen(pin + argv, env=env, stdout=log, stderr=subprocess.STDOUT),
                  log))
  for proc, log in procs:
    proc.wait()
    log.close()
    if proc.returncode:
      raise SystemExit(f"{name} failed (exit {proc.returncode}); see {log.name}")
  steps = _steps_per_sec(model_dir)
  return {"arm": name, "flags": extra, "processes": workers,
          "cores": "1 per process" if cores else "all (2)", "global_batch": batch,
          "steps_per_sec": steps, "mpixel_per_sec": steps * batch * PATCH * PATCH / 1e6}


def main():
  os.makedirs(FLAGS.out, exist_ok=True)
  rows = [run_arm(name) for name in FLAGS.arms]
  atomic_write_json(FLAGS.output, {"patch_size": PATCH, "num_filters": 128, "rows": rows})
  print("| arm | flags | processes × cores | global batch | steps/s | Mpixel/s |")
  print("|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['arm']} | {' '.join(r['flags']) or '—'} | {r['processes']} × {r['cores']} | "
          f"{r['global_batch']} | {r['steps_per_sec']:.2f} | {r['mpixel_per_sec']:.2f} |")


if __name__ == "__main__":
  cli.run(main)
