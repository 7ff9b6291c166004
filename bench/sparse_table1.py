#!/usr/bin/env python3
"""Table I of Gille, Guyard, Antonini & Barlaud ("Learning sparse auto-encoders for green
AI image coding") at zoo scale: sparsity, encoder MACs and memory, Kodak rate-distortion from
real files, the loss at equal bpp against the dense zoo curve and against a dense control,
and the encoder latency dense vs channel-reduced.

  .venv/bin/python bench/sparse_table1.py --reference=zoo:factorized \
      --sparse=l11_q5=runs/sparse/l11_r0.2_q5,l1_q5=runs/sparse/l1_q5 \
      --controls=dense_q5=runs/sparse/dense_q5 \
      --images='../shared/data/kodak/*.png' --output=docs/benchmark/sparse_table1_zoo

Every model (a bin/train directory, or a zoo folder) is scored once and cached in
CACHE_DIR/LABEL.json (--cache_dir, default OUTPUT_models; delete a file to score again), so
the command can be re-run as runs finish; --latency adds the latency columns (pin the
command to a core nothing else uses: `taskset -c 0 …`).

  * S, MACs, weight memory, peak activation memory: `tfcae.analysis.accounting` (encoder =
    analysis transform; "reduced" = after `tfcae.deploy.reduction`'s structured removal);
  * bpp (real file bytes), PSNR and MS-SSIM (RGB, mean over the images) through the
    exported SavedModel (`tfcae.evaluation.rd.evaluate_codec`, what bin/compress writes);
  * ΔPSNR at equal bpp (`tfcae.evaluation.green`): against the dense zoo curve --reference
    (linear in log-bpp between the neighbouring qualities) and against the dense control of
    the same λ (--controls: same warm start, same steps, no constraint), moved to the sparse
    model's rate along the curve;
  * the paper's relative loss 10·(log10 MSE_ref − log10 MSE) against the zoo model the run
    was warm-started from (its card's Kodak MSE is not stored: the reference is re-scored);
  * encoder latency (--latency, sparse models): median of --latency_runs interleaved calls
    of the analysis transform, dense vs reduced, on the first image (768×512 for Kodak), in a process of
    its own per thread count (--threads); TF (tf.function) and TFLite (XNNPACK; the device
    encoders bin/export writes).

`--prune_from=DIR --prune_to=DIR --prune=KIND:FRACTION` instead makes a sparse model
WITHOUT retraining: KIND l1 / l11 / l1inf projects every encoder conv kernel onto that ball
(l11 over output filters, l1inf over kernel positions) with radius = FRACTION × the
kernel's norm; KIND filters zeroes the FRACTION of filters with the smallest ℓ1 norm in
every conv but the latent one. The bias of every dead filter is zeroed, as the
double-descent mask does.

Writes OUTPUT.json (everything) and OUTPUT.md (the tables).
"""
import json
import os
import shutil
import subprocess
import sys
import time

from tfcae import cli  # first: it quiets TensorFlow's start-up
from absl import flags
# At module level, before cli.run (see its docstring); creating no context yet, so
# latency workers can still set the thread pools.
import tensorflow as tf

from tfcae.io.fileio import atomic_write_json
from tfcae.training.rundir import RunDir

flags.DEFINE_string("reference", "zoo:factorized", "The dense curve: zoo:<family> (its cards' "
                    "Kodak figures; --images must be Kodak) or comma-separated model dirs.")
flags.DEFINE_list("sparse", [], "Sparse models as label=dir (comma-separated).")
flags.DEFINE_list("controls", [], "Dense controls as label=dir, matched to sparse models "
                  "by λ.")
flags.DEFINE_bool("latency", False, "Also measure the encoder latencies.")
flags.DEFINE_string("cache_dir", "", "Per-model results (default: OUTPUT_models).")
flags.DEFINE_string("images", "../shared/data/kodak/*.png", "Evaluation images.")
flags.DEFINE_string("output", "docs/benchmark/sparse_table1_zoo", "Output prefix (.json, .md).")
flags.DEFINE_integer("max_images", 0, "Use only the first N images (0: all).")
flags.DEFINE_integer("latency_runs", 15, "Timed calls per latency measurement (median).")
flags.DEFINE_list("threads", ["1"], "Thread counts for the latency measurement.")
flags.DEFINE_bool("tflite", True, "Also time the TFLite (XNNPACK) encoders.")
flags.DEFINE_string("latency_worker", "", "(internal) time this model dir's encoders.")
flags.DEFINE_integer("worker_threads", 1, "(internal) thread count of a latency worker.")
flags.DEFINE_string("prune_from", "", "Make a pruned copy of this model dir (see doc).")
flags.DEFINE_string("prune_to", "", "Directory of the pruned copy.")
flags.DEFINE_string("prune", "l11:0.3", "KIND:FRACTION for --prune_from.")
FLAGS = flags.FLAGS

def _tf():
  return tf


# --------------------------------------------------------------------------- pruning

def prune_model(source, target, spec):
  """One-off projection of a trained model's encoder kernels (no retraining)."""
  tf = _tf()
  import numpy as np
  from tfcae.methods import constraints
  from tfcae.training.export import load_trained
  kind, fraction = spec.split(":")
  fraction = float(fraction)
  ball = {"filters": lambda: None,
          "l1": lambda: constraints.L1Ball(relative_radius=fraction),
          "l11": lambda: constraints.L11Ball(relative_radius=fraction, groups="output_filters"),
          "l1inf": lambda: constraints.L1InfBall(relative_radius=fraction,
                                                 groups="kernel_positions")}[kind]()
  model = load_trained(source, for_compression=False)
  convs = [l for l in model.analysis_transform.layers if isinstance(l, tf.keras.layers.Conv2D)]
  for layer in convs:
    if ball is None:  # "filters": zero the weakest filters of every conv but the latent one
      if layer is convs[-1]:
        continue
      kernel = layer.kernel.numpy()
      norms = np.abs(kernel).sum(axis=(0, 1, 2))
      kernel[..., np.argsort(norms)[:int(round(fraction * kernel.shape[-1]))]] = 0.
    else:
      kernel = ball(layer.kernel).numpy()
    layer.kernel.assign(kernel)
    bias = layer.bias.numpy()
    bias[~kernel.any(axis=(0, 1, 2))] = 0.
    layer.bias.assign(bias)
  if os.path.exists(target):
    shutil.rmtree(target)
  os.makedirs(target)
  settings = RunDir(source).read_config_dict()  # as stored: copied verbatim
  settings.update(model_dir=target, pruned_from=source, prune=spec)
  out = RunDir(target)
  out.write_config(settings)
  tf.train.CheckpointManager(tf.train.Checkpoint(model=model), out.checkpoint_dir, 1).save()
  return target


# --------------------------------------------------------------------------- latency

def latency_worker(model_dir, threads, image_path, runs, tflite):
  """Runs in its own process: TF's thread pools are set before any op runs."""
  tf = _tf()
  tf.config.threading.set_intra_op_parallelism_threads(threads)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  from tfcae.deploy import reduction, timing
  from tfcae.deploy import tflite as tfl
  from tfcae.io.fileio import load_rgb_image
  from tfcae.models import edge_pad
  from tfcae.training.export import load_trained
  model = load_trained(model_dir, for_compression=False)
  image = load_rgb_image(image_path)
  x = tf.cast(image, tf.float32)[None]
  x = edge_pad(x, *model.padded_shape(image.shape[0], image.shape[1]))
  reduced, _ = reduction.reduce_encoder(model)
  spec = [tf.TensorSpec(x.shape, tf.float32)]
  dense_fn = tf.function(lambda t: model.analysis_transform(t), input_signature=spec)
  reduced_fn = tf.function(lambda t: reduced(t), input_signature=spec)
  diff = float(tf.reduce_max(abs(dense_fn(x) - reduced_fn(x))))
  result = {"threads": threads, "shape": list(x.shape), "max_abs_latent_diff": diff}
  # Calls interleaved (dense, reduced, dense, …) so that both see the same background
  # load; two warm-up calls each (tracing, allocation).
  result["tf_dense_s"], result["tf_reduced_s"] = timing.interleaved_seconds(
      [lambda: dense_fn(x).numpy(), lambda: reduced_fn(x).numpy()], runs, warmup=2)
  if tflite:
    # Converted last: the converter leaves converted layers unusable in later graphs. The
    # device encoders bin/export writes (symbols out), dense and reduced.
    padded = x[0].numpy()
    encoders = [tfl.TFLiteEncoder(tfl.convert(model, "none", None, encoder), threads)
                for encoder in (model.analysis_transform, reduced)]
    for encoder in encoders:
      encoder.set_input(padded)
    result["tflite_dense_s"], result["tflite_reduced_s"] = timing.interleaved_seconds(
        [encoder.invoke for encoder in encoders], runs, warmup=2)
  print("LATENCY " + json.dumps(result), flush=True)


def measure_latency(model_dir, image_path):
  results = []
  for threads in FLAGS.threads:
    command = [sys.executable, os.path.abspath(__file__), f"--latency_worker={model_dir}",
               f"--worker_threads={threads}", f"--images={image_path}",
               f"--latency_runs={FLAGS.latency_runs}", f"--tflite={FLAGS.tflite}"]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [l for l in out.stdout.splitlines() if l.startswith("LATENCY ")]
    if out.returncode or not lines:
      raise RuntimeError(f"latency worker failed for {model_dir}: {out.stderr[-2000:]}")
    results.append(json.loads(lines[-1][len("LATENCY "):]))
  return results


# --------------------------------------------------------------------------- RD

def _settings(model_dir):
  run = RunDir(model_dir)
  return run.read_config_dict() if os.path.exists(run.config_path) else {}


def _cache_path(label):
  return os.path.join(FLAGS.cache_dir or FLAGS.output + "_models", label + ".json")


def score(label, model_dir, paths):
  """Accounting and Kodak RD of one model, cached in OUTPUT_models/LABEL.json."""
  cache = _cache_path(label)
  if os.path.exists(cache):
    with open(cache, encoding="utf-8") as f:
      cached = json.load(f)
    if cached["model_dir"] == model_dir and cached["images"] == len(paths):
      return cached
  import numpy as np
  from tfcae.analysis import accounting
  from tfcae.serving.codec import Codec
  from tfcae.evaluation.rd import evaluate_codec
  from tfcae.training.export import load_trained
  encoder = accounting.analyze(load_trained(model_dir, for_compression=False))["encoder"]["total"]
  records = evaluate_codec(Codec(model_dir), paths, progress=False)
  mean = lambda key: float(np.mean([r[key] for r in records]))
  mse = float(np.mean([(255. ** 2) * 10 ** (-r["psnr-rgb"] / 10) for r in records]))
  settings = _settings(model_dir)
  entry = {"label": label, "model_dir": model_dir, "images": len(paths),
           "lmbda": settings.get("lmbda"), "init_from": settings.get("init_from"),
           "objective": settings.get("objective", "beta"),
           "constraint": settings.get("sparsity_constraint", "none"),
           "radius": settings.get("sparsity_radius"),
           "bpp": mean("bpp"), "psnr": mean("psnr-rgb"), "ms_ssim": mean("ms-ssim-rgb"),
           "mse": mse, "per_image": records,
           **{k: encoder[k] for k in (
               "S", "maccs_per_pixel", "maccs_per_pixel_reduced", "macc_reduction",
               "memory_dense_bytes", "memory_sparse_bytes", "memory_reduced_bytes",
               "memory_reduction_sparse", "memory_reduction_reduced",
               "peak_activation_bytes_per_pixel", "peak_activation_bytes_per_pixel_reduced")}}
  run = RunDir(model_dir)
  if run.is_finished():  # a bin/train run (a zoo folder has no summary)
    s = run.read_summary()
    entry.update(validation=s.get("validation"), steps=s.get("steps"),
                 objective_state=s.get("objective_state"))
  os.makedirs(os.path.dirname(cache), exist_ok=True)
  atomic_write_json(cache, entry)
  return entry


def reference_curve(paths):
  """The dense curve (tfcae.evaluation.green.DenseCurve) and its points."""
  from tfcae import zoo
  from tfcae.evaluation import green
  if FLAGS.reference.startswith("zoo:"):
    family = FLAGS.reference[len("zoo:"):]
    cards = [c for c in zoo.list() if c["family"] == family]
    if not cards:
      raise SystemExit(f"no zoo family {family!r}")
    if any(c["kodak"]["images"] != len(paths) for c in cards):
      raise SystemExit(f"the {family} cards score {cards[0]['kodak']['images']} images, "
                       f"--images has {len(paths)}: use the same set")
    points = [{"label": c["name"], "model_dir": c["path"], "bpp": c["kodak"]["bpp"],
               "psnr": c["kodak"]["psnr-rgb"], "ms_ssim": c["kodak"]["ms-ssim-rgb"],
               "maccs_per_pixel": c["macs_per_pixel"]["encoder"], "lmbda": c["lmbda"]}
              for c in cards]
  else:
    points = [score(os.path.basename(os.path.normpath(d)), d, paths)
              for d in FLAGS.reference.split(",") if d]
  return green.DenseCurve([p["bpp"] for p in points], [p["psnr"] for p in points],
                          FLAGS.reference), points


def _warm_start_dir(init_from):
  from tfcae.io import zoo_index
  if init_from and init_from.startswith(zoo_index.PREFIX):
    return zoo_index.resolve(init_from)
  return init_from


def main():
  from tfcae.io.fileio import expand_images
  if FLAGS.latency_worker:
    latency_worker(FLAGS.latency_worker, FLAGS.worker_threads,
                   expand_images(FLAGS.images)[0], FLAGS.latency_runs, FLAGS.tflite)
    return
  if FLAGS.prune_from:
    print(prune_model(FLAGS.prune_from, FLAGS.prune_to, FLAGS.prune))
    return
  import numpy as np
  from tfcae.evaluation import green
  paths = expand_images(FLAGS.images)
  if FLAGS.max_images:
    paths = paths[:FLAGS.max_images]
  if not paths or not FLAGS.sparse:
    raise SystemExit("need --images and --sparse")
  start = time.time()
  curve, reference_points = reference_curve(paths)
  pairs = [("control", item) for item in FLAGS.controls] + [("sparse", i) for i in FLAGS.sparse]
  models = []
  for kind, item in pairs:
    label, model_dir = item.split("=", 1)
    entry = dict(score(label, model_dir, paths), kind=kind)
    entry["delta_psnr_zoo"] = green.delta_psnr_at_bpp(curve, entry["bpp"], entry["psnr"])
    models.append(entry)
    print(f"{label}: S {entry['S']:.1%} MACs -{entry['macc_reduction']:.1%} "
          f"{entry['bpp']:.4f} bpp {entry['psnr']:.2f} dB "
          f"Δzoo {green.fmt(entry['delta_psnr_zoo'], '+.2f')} dB", flush=True)
  green.attach_controls(models, curve)
  warm = {}
  for entry in models:
    source = _warm_start_dir(entry["init_from"])
    if source:
      if source not in warm:
        warm[source] = score("warm_start_" + os.path.basename(os.path.dirname(source)) +
                             "_" + os.path.basename(source), source, paths)
      entry["relative_loss_db"] = float(10 * (np.log10(warm[source]["mse"]) -
                                              np.log10(entry["mse"])))
    if FLAGS.latency and entry["kind"] == "sparse" and "latency" not in entry:
      entry["latency"] = measure_latency(entry["model_dir"], paths[0])
      cached = score(entry["label"], entry["model_dir"], paths)  # from the cache
      atomic_write_json(_cache_path(entry["label"]), dict(cached, latency=entry["latency"]))
  for entry in models:
    entry.pop("per_image", None)
  results = {"images": FLAGS.images, "num_images": len(paths),
             "reference": {"name": FLAGS.reference, "points": reference_points},
             "models": models, "paper": green.GILLE_TABLE_I,
             "date": time.strftime("%Y-%m-%d", time.gmtime()), "command": " ".join(sys.argv),
             "seconds": round(time.time() - start, 1)}
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
  with open(FLAGS.output + ".json", "w", encoding="utf-8") as f:
    json.dump(results, f, indent=2)
  with open(FLAGS.output + ".md", "w", encoding="utf-8") as f:
    f.write(green.table1_markdown(results))
  print(green.table1_markdown(results))
  print(f"wrote {FLAGS.output}.json and .md")


if __name__ == "__main__":
  cli.run(main)
