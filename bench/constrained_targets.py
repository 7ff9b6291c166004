"""D-CO and R-CO with default settings: targets against reached values.

  .venv/bin/python bench/constrained_targets.py --runs_dir=runs/targets

Two settings, each first trained with the β objective R + β·D (the reference), then with
`--objective=dco` at distortion targets 30 % above and 20 % below the reference's
validation MSE, and `--objective=rco` at rate targets 30 % above and 20 % below its
validation bpp — every multiplier setting left at its default (tfcae.methods.dco's auto rule):

- scratch: configs/quickstart.cfg (1,500 steps from scratch on the shipped images);
- warm:    2,000 steps from zoo:factorized/2 on BSDS500, configs/dco_cpu.cfg's recipe
           without its hand-tuned multiplier settings (β = the zoo model's λ, 0.0018).

Every run is a plain `bin/train` (two at a time, one core each). The table reports the
validation distortion and bpp (real quantizer, coding tables: summary.json) against the
target, the final λ and whether every logged λ was finite.
"""
import csv
import json
import math
import os

from tfcae import cli  # first: it quiets TensorFlow's start-up
from absl import flags

from tfcae.io.fileio import atomic_write_json
from tfcae.training import jobs
from tfcae.training.rundir import RunDir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_string("runs_dir", "runs/targets", "Where the runs go.")
flags.DEFINE_list("settings", ["scratch", "warm"], "Which settings to run.")
flags.DEFINE_list("factors", ["1.3", "0.8"], "Targets as multiples of the β run's value.")
flags.DEFINE_integer("parallel", 2, "Trainings at a time (one core each).")
flags.DEFINE_bool("paper_control", True, "Also the first scratch D-CO target with the "
                  "paper's multiplier settings and training signal (the paper's own protocol).")
flags.DEFINE_string("output", "docs/benchmark/constrained_targets.json", "The results.")
FLAGS = flags.FLAGS

WARM = ["--architecture=factorized", "--num_filters=128", "--latent_channels=128",
        "--init_from=zoo:factorized/2", "--lmbda=0.0018", "--train_images=../shared/data/train",
        "--patch_size=128", "--batch_size=8", "--epochs=20", "--steps_per_epoch=100",
        "--validation_batches=6", "--learning_rate=1e-4", "--clip_gradient_norm=1.0",
        "--lr_schedule=constant", "--image_summaries=false"]
SETTINGS = {
    "scratch": [f"--flagfile={os.path.join(REPO, 'configs', 'quickstart.cfg')}",
                f"--train_images={os.path.join(REPO, 'data', 'sample', 'train')}"],
    "warm": WARM,
}


def _train(name, flags_):
  model_dir = os.path.join(FLAGS.runs_dir, name)
  argv = jobs.python(os.path.join(REPO, "bin", "train"), *flags_, f"--model_dir={model_dir}",
                     "--verbose=2")
  return name, argv, os.path.join(model_dir, "train.log"), None


def _summary(name):
  return RunDir(os.path.join(FLAGS.runs_dir, name)).read_summary()


def _lambdas(name):
  with open(RunDir(os.path.join(FLAGS.runs_dir, name)).history_path, encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  return [float(r[c]) for r in rows for c in ("lambda", "val_lambda") if r.get(c)]


def main():
  os.makedirs(FLAGS.runs_dir, exist_ok=True)
  done = lambda n: RunDir(os.path.join(FLAGS.runs_dir, n)).is_finished()  # noqa: E731
  reference = [_train(f"{s}_beta", SETTINGS[s]) for s in FLAGS.settings
               if not done(f"{s}_beta")]
  codes = jobs.run_pinned(reference, FLAGS.parallel)
  if any(codes.values()):
    raise SystemExit(f"β runs failed: {codes}")
  constrained, plan = [], []
  for s in FLAGS.settings:
    beta = _summary(f"{s}_beta")["validation"]
    for factor in FLAGS.factors:
      f = float(factor)
      for objective, flag, measure in (("dco", "target_distortion", "mse"),
                                       ("rco", "target_bpp", "bpp")):
        target = round(beta[measure] * f, 4 if measure == "bpp" else 1)
        name = f"{s}_{objective}_x{factor}"
        plan.append((s, objective, measure, f, target, name))
        if not done(name):
          constrained.append(_train(name, SETTINGS[s] + [f"--objective={objective}",
                                                        f"--{flag}={target}"]))
        if FLAGS.paper_control and s == "scratch" and objective == "dco" and (
            factor == FLAGS.factors[0]):
          name = f"{name}_paper"
          plan.append((s, "dco", measure, f, target, name))
          if not done(name):
            constrained.append(_train(name, SETTINGS[s] + [
                "--objective=dco", f"--{flag}={target}", "--multiplier_rule=paper",
                "--multiplier_signal=train"]))
  codes = jobs.run_pinned(constrained, FLAGS.parallel)
  if any(codes.values()):
    raise SystemExit(f"constrained runs failed: {codes}")
  rows = []
  for s, objective, measure, factor, target, name in plan:
    summary = _summary(name)
    state = summary["objective_state"][objective]
    lambdas = _lambdas(name)
    reached = summary["validation"][measure]
    rows.append({
        "setting": s, "objective": objective, "measure": measure, "factor": factor,
        "target": target, "reached": reached, "error": reached / target - 1.,
        "within_5pct": abs(reached / target - 1.) <= 0.05,
        "target_met": state["target_met"], "lambda": state["lambda"],
        "lambda_finite": all(math.isfinite(v) for v in lambdas),
        "validation": summary["validation"], "steps": summary["steps"],
        "reference": _summary(f"{s}_beta")["validation"], "run": name})
  atomic_write_json(FLAGS.output, {"rows": rows})
  print("| setting | objective | target | reached | error | met (≤ tol) | λ final | λ finite |")
  print("|---|---|---|---|---|---|---|---|")
  for r in rows:
    unit = "MSE" if r["measure"] == "mse" else "bpp"
    label = r["objective"] + (" (paper rule)" if r["run"].endswith("_paper") else "")
    print(f"| {r['setting']} | {label} ×{r['factor']:g} | {unit} {r['target']:g} | "
          f"{r['reached']:.4g} | {100 * r['error']:+.1f} % | {r['target_met']} | "
          f"{r['lambda']:.4g} | {r['lambda_finite']} |")
  print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
  cli.run(main)
