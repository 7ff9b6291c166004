#!/usr/bin/env python3
"""Table 1 of Laakom et al. (bottleneck decorrelation) on MNIST, and the n = 2 embedding.

  .venv/bin/python bench/mnist_decorrelation.py --mnist_dir=../shared/data/mnist \\
      --epochs=100 --workers=2 --threads=1 --runs_dir=runs/mnist100   # ≈ 76 min, 2 cores

Protocol (tfcae.training.mnist): for each bottleneck n in --bottlenecks, the standard loss (BCE) and
BCE + α·Σ_{i≠j} C_ij²; α is chosen from --alphas by the validation RMSE (the last 10k
training images) of seed 0; then both losses are trained with every seed and the TEST RMSE
is reported as mean ± std (population std, numpy's default) over seeds. Each run is a
model_dir under --runs_dir; a run whose summary.json exists is reused, so an interrupted
benchmark resumes. With --workers=K, K runs train at once, each in its own process with
--threads threads (on 2 cores: --workers=2 --threads=1, twice the throughput of one run with
2 threads for this small MLP). Writes --output (JSON: every run, the table, the paper's numbers) and
--plot (the n = 2 test-set embedding of both losses, seed 0), and prints the markdown table.
"""
import concurrent.futures
import multiprocessing
import os

from tfcae import cli  # first: it quiets TensorFlow's start-up
import tensorflow as tf
from absl import flags
import numpy as np

from tfcae.evaluation import plotting
from tfcae.io.fileio import atomic_write_json
from tfcae.training import mnist
from tfcae.training.rundir import RunDir

flags.DEFINE_string("mnist_dir", "../shared/data/mnist", "Folder of the MNIST IDX .gz files.")
flags.DEFINE_bool("use_tfds", False, "Read a prepared TFDS 'mnist' instead.")
flags.DEFINE_list("bottlenecks", ["8", "4", "2"], "Bottleneck sizes n.")
flags.DEFINE_list("alphas", ["0.001", "0.005", "0.01"], "Candidate α (chosen on validation).")
flags.DEFINE_integer("seeds", 3, "Seeds per (n, loss).")
flags.DEFINE_integer("epochs", 100, "Epochs per run (the paper: 100).")
flags.DEFINE_integer("threads", 2, "TensorFlow intra-op threads per run.")
flags.DEFINE_integer("workers", 1, "Runs trained at once, each in its own process.")
flags.DEFINE_string("runs_dir", "runs/mnist_decorrelation", "One model_dir per run here.")
flags.DEFINE_string("output", "docs/benchmark/mnist_decorrelation.json", "Results JSON.")
flags.DEFINE_string("plot", "docs/benchmark/mnist_embedding.png", "n = 2 embedding PNG.")
FLAGS = flags.FLAGS

# Laakom et al., Table 1: test RMSE (mean ± std over 3 runs), 100 epochs.
PAPER = {8: ((0.1289, 0.0002), (0.1284, 0.0003)),
         4: ((0.1688, None), (0.1676, None)),
         2: ((0.1974, None), (0.1969, None))}


def _model_dir(runs_dir, n, alpha, seed):
  return os.path.join(runs_dir, f"n{n}_a{alpha:g}_s{seed}")


def _finished(runs_dir, epochs, n, alpha, seed):
  """The summary of a finished run with these settings, else None."""
  run = RunDir(_model_dir(runs_dir, n, alpha, seed))
  if not run.is_finished():
    return None
  summary = run.read_summary()
  return summary if summary["settings"]["epochs"] == epochs else None


_SPLITS = {}  # per process: the data, loaded once


def _setup(threads, mnist_dir, use_tfds):
  tf.config.threading.set_intra_op_parallelism_threads(threads)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  _SPLITS["splits"] = mnist.load_splits(mnist.MnistConfig(mnist_dir=mnist_dir,
                                                          use_tfds=use_tfds))


def _train(job):
  """Trains one run (in this process or a worker's) -> its summary."""
  runs_dir, epochs, n, alpha, seed = job
  config = mnist.MnistConfig(model_dir=_model_dir(runs_dir, n, alpha, seed), bottleneck=n,
                             decorrelation_weight=alpha, epochs=epochs, seed=seed)
  _, summary = mnist.train_mnist(config, _SPLITS["splits"])
  return summary


def run_all(keys):
  """Summaries of the runs keys = [(n, α, seed)], in order; the unfinished ones are trained,
  --workers at a time."""
  jobs = [(FLAGS.runs_dir, FLAGS.epochs) + key for key in keys]
  todo = [job for job in jobs if _finished(*job) is None]
  if FLAGS.workers > 1 and len(todo) > 1:
    # spawn, not fork: a forked child would inherit this process's TensorFlow runtime.
    pool = concurrent.futures.ProcessPoolExecutor(
        min(FLAGS.workers, len(todo)), mp_context=multiprocessing.get_context("spawn"),
        initializer=_setup, initargs=(FLAGS.threads, FLAGS.mnist_dir, FLAGS.use_tfds))
    with pool:
      futures = {pool.submit(_train, job): job for job in todo}
      for future in concurrent.futures.as_completed(futures):
        _report(futures[future], future.result())
  else:
    for job in todo:
      _report(job, _train(job))
  return [_finished(*job) for job in jobs]


def _report(job, summary):
  _, _, n, alpha, seed = job
  print(f"n={n} α={alpha:g} seed={seed}: val RMSE {summary['validation_rmse']:.4f} test "
        f"RMSE {summary['test_rmse']:.4f} ({summary['train_seconds']:.0f} s)", flush=True)


def mean_std(values):
  return float(np.mean(values)), float(np.std(values))


def fmt(mean, std):
  return f"{mean:.4f} ± {std:.4f}" if std is not None else f"{mean:.4f}"


def main():
  _setup(FLAGS.threads, FLAGS.mnist_dir, FLAGS.use_tfds)
  splits = _SPLITS["splits"]
  bottlenecks = [int(n) for n in FLAGS.bottlenecks]
  alphas = [float(a) for a in FLAGS.alphas]
  # 1. α on validation, seed 0 (these seed-0 runs are also the table's first seed).
  first = run_all([(n, a, 0) for n in bottlenecks for a in [0.] + alphas])
  runs = list(first)
  chosen = {}
  for i, n in enumerate(bottlenecks):
    candidates = dict(zip(alphas, first[i * (len(alphas) + 1) + 1:][:len(alphas)]))
    chosen[n] = min(alphas, key=lambda a: candidates[a]["validation_rmse"])
    print(f"n={n}: α = {chosen[n]:g} (validation RMSE "
          + ", ".join(f"{a:g}: {s['validation_rmse']:.4f}" for a, s in candidates.items())
          + ")", flush=True)
  # 2. Every seed with the standard loss and with the chosen α; test RMSE.
  labelled = [(n, label, alpha) for n in bottlenecks
              for label, alpha in (("standard", 0.), ("decorrelation", chosen[n]))]
  rest = run_all([(n, alpha, seed) for n, _, alpha in labelled
                  for seed in range(1, FLAGS.seeds)])
  runs.extend(rest)
  table = []
  for i, (n, label, alpha) in enumerate(labelled):
    summaries = [_finished(FLAGS.runs_dir, FLAGS.epochs, n, alpha, 0)]
    summaries += rest[i * (FLAGS.seeds - 1):(i + 1) * (FLAGS.seeds - 1)]
    if label == "standard":
      table.append({"bottleneck": n})
    table[-1][label] = {
        "alpha": alpha,
        "test_rmse": mean_std([s["test_rmse"] for s in summaries]),
        "validation_rmse": mean_std([s["validation_rmse"] for s in summaries]),
        "offdiag_cov_sq": mean_std([s["test_codes"]["offdiag_cov_sq"] for s in summaries]),
        "mean_abs_corr": (mean_std([s["test_codes"]["mean_abs_corr"] for s in summaries])
                          if n > 1 else None),
        "per_seed_test_rmse": [s["test_rmse"] for s in summaries]}
  # 3. The n = 2 embedding of the test set, seed 0, both losses.
  if 2 in bottlenecks:
    test_x, test_labels = splits["test"]
    panels = []
    for label, alpha in (("standard loss", 0.), (f"with decorrelation, α = {chosen[2]:g}",
                                                 chosen[2])):
      model = mnist.load_trained(_model_dir(FLAGS.runs_dir, 2, alpha, 0))
      codes = mnist.bottleneck(model, test_x)
      corr = np.corrcoef(codes, rowvar=False)[0, 1]
      panels.append((f"{label}\ntest RMSE {mnist.rmse(model, test_x):.4f}, "
                     f"corr(y₁, y₂) = {corr:+.3f}", codes))
    plotting.plot_embeddings(panels, test_labels, FLAGS.plot)
    print(f"wrote {FLAGS.plot}")
  atomic_write_json(FLAGS.output, {
      "what": "Laakom et al. Table 1 on MNIST: test RMSE, standard loss vs + decorrelation",
      "epochs": FLAGS.epochs, "seeds": FLAGS.seeds, "alphas": alphas,
      "chosen_alpha": {str(n): a for n, a in chosen.items()},
      "table": table, "paper": {str(n): v for n, v in PAPER.items()},
      "runs": [{k: r[k] for k in ("model", "objective", "validation_rmse", "test_rmse",
                                  "test_codes", "train_seconds")}
               | {"seed": r["settings"]["seed"]} for r in runs]})
  print(f"wrote {FLAGS.output}\n")
  print("| 784 → n | α (validation) | standard: test RMSE | with penalty: test RMSE | "
        "paper standard | paper with penalty |")
  print("|---|---|---|---|---|---|")
  for row in table:
    n = row["bottleneck"]
    paper = PAPER.get(n, ((float("nan"), None),) * 2)
    print(f"| {n} | {row['decorrelation']['alpha']:g} | {fmt(*row['standard']['test_rmse'])} "
          f"| {fmt(*row['decorrelation']['test_rmse'])} | {fmt(*paper[0])} | "
          f"{fmt(*paper[1])} |")


if __name__ == "__main__":
  cli.run(main)
