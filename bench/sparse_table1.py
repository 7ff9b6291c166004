#!/usr/bin/env python3
"""Table I of Gille, Guyard, Antonini & Barlaud ("Learning sparse auto-encoders for green
AI image coding") for tfcae models: sparsity, MACC and memory reduction of the encoder,
rate-distortion on Kodak, and measured encoder latency dense vs channel-reduced.

  .venv/bin/python bench/sparse_table1.py \
      --reference=runs/factorized_cpu21k_l0.003,runs/factorized_cpu21k_l0.01,\
runs/factorized_cpu21k_l0.03,runs/factorized_cpu21k_l0.06 \
      --sparse='l11=runs/dd_l11_l0.01,l1=runs/dd_l1_l0.01' \
      --images='/work/shared/data/kodak/*.png' --output=docs/benchmark/sparse_table1

For every sparse model (a bin/train directory; see tfcae.training.export.load_trained):
  * S, MACC reduction, memory reduction: `tfcae.analysis.accounting.analyze` (encoder = analysis
    transform; memory "sparse" = float32 non-zeros + 1-bit map, "reduced" = the kept
    parameters of the channel-reduced encoder as dense float32);
  * bpp (real file bytes) and PSNR (RGB, mean over images) on the images, coding with the
    channel-REDUCED encoder (`tfcae.deploy.reduction.ReducedCompressor`); every file is compared
    byte for byte with the unreduced model's `compress` (column "same bits");
  * ΔPSNR at matched bpp: the dense reference curve's PSNR at the sparse model's bpp
    (PCHIP in log-bpp through the reference points) minus the sparse model's PSNR;
  * the paper's relative loss 10·(log10 MSE_ref − log10 MSE), MSE averaged over the
    images, against the reference with the same λ (train_config.json `lmbda`);
  * encoder latency: median of --latency_runs calls of the analysis transform, dense vs
    reduced (calls interleaved, so both see the same background load:
    `tfcae.deploy.timing.interleaved_seconds`), on the first image (768×512 for Kodak), at 1 and
    2 threads, each thread count in its own process (TensorFlow's thread pools are fixed
    at start-up); TF (tf.function) and TFLite (XNNPACK delegate; the device encoders of
    `tfcae.deploy.tflite.convert`, as bin/export writes them: symbols round(y − o) out).

`--prune_from=DIR --prune_to=DIR --prune=KIND:FRACTION` instead makes a sparse model
WITHOUT retraining (for developing the benchmark before trained sparse models exist):
KIND l1 projects every encoder conv kernel onto the ℓ1 ball, l11 onto the ℓ1,1 ball
(groups = output filters), l1inf onto the ℓ1,∞ ball (groups = kernel positions), each
with radius = FRACTION × the kernel's norm; KIND filters zeroes the FRACTION of filters
with the smallest ℓ1 norm in every conv but the latent one (plain structured magnitude
pruning). The bias of every dead filter is zeroed, as the double-descent mask does.

Writes OUTPUT.json (everything) and OUTPUT.md (the table).
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from absl import app, flags  # noqa: E402
# At module level, before app.run (see tfcae/cli.py `run`); creating no context yet, so
# latency workers can still set the thread pools.
import tensorflow as tf  # noqa: E402

flags.DEFINE_list("reference", [], "Dense reference model dirs (the RD curve).")
flags.DEFINE_list("sparse", [], "Sparse models as label=dir (comma-separated).")
flags.DEFINE_string("images", "/work/shared/data/kodak/*.png", "Evaluation images.")
flags.DEFINE_string("output", "docs/benchmark/sparse_table1", "Output prefix (.json, .md).")
flags.DEFINE_integer("max_images", 0, "Use only the first N images (0: all).")
flags.DEFINE_integer("latency_runs", 15, "Timed calls per latency measurement (median).")
flags.DEFINE_list("threads", ["1", "2"], "Thread counts for the latency measurement.")
flags.DEFINE_bool("tflite", True, "Also time the TFLite (XNNPACK) encoders.")
flags.DEFINE_bool("latency_only", False, "Only measure the sparse models' latencies "
                  "(no RD evaluation); writes OUTPUT_latency.json.")
flags.DEFINE_string("latency_worker", "", "(internal) time this model dir's encoders.")
flags.DEFINE_integer("worker_threads", 1, "(internal) thread count of a latency worker.")
flags.DEFINE_string("prune_from", "", "Make a pruned copy of this model dir (see doc).")
flags.DEFINE_string("prune_to", "", "Directory of the pruned copy.")
flags.DEFINE_string("prune", "l11:0.3", "KIND:FRACTION for --prune_from.")
FLAGS = flags.FLAGS

PAPER = [  # Gille et al., Table I (encoder only, S ≈ 83%)
    {"method": "ℓ1", "S": 0.83, "macc_reduction": 0.0, "memory_reduction": 0.81,
     "relative_loss_db": -1.15},
    {"method": "ℓ1,1", "S": 0.83, "macc_reduction": 0.27, "memory_reduction": 0.82,
     "relative_loss_db": -1.2},
    {"method": "ℓ1,∞", "S": 0.83, "macc_reduction": 0.40, "memory_reduction": 0.84,
     "relative_loss_db": -1.7},
]


def _tf():
  return tf


def _lmbda(model_dir):
  from tfcae.training.rundir import RunDir
  run = RunDir(model_dir)
  if not os.path.exists(run.config_path):
    return None
  return run.read_config_dict().get("lmbda")


# --------------------------------------------------------------------------- pruning

def prune_model(source, target, spec):
  """One-off projection of a trained model's encoder kernels (no retraining)."""
  tf = _tf()
  import numpy as np
  from tfcae.methods import constraints
  from tfcae.training.export import load_trained
  from tfcae.training.rundir import RunDir
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

def evaluate(model_dir, paths, reduce):
  """bpp, PSNR, MSE over the images; with `reduce`, coded by the reduced encoder."""
  tf = _tf()
  import numpy as np
  from tfcae.deploy import reduction
  from tfcae.io.fileio import load_rgb_image
  from tfcae.objectives import metrics
  from tfcae.training.export import load_trained
  model = load_trained(model_dir)
  compressor = reduction.ReducedCompressor(model) if reduce else None
  rows = []
  for path in paths:
    image = load_rgb_image(path)
    data = model.compress(tf.constant(image)).numpy()
    same = None
    if compressor is not None:
      reduced_data = compressor.compress(tf.constant(image)).numpy()
      same = reduced_data == data
      data = reduced_data
    decoded = model.decompress(tf.constant(data)).numpy()
    mse = metrics.mse(image, decoded)
    rows.append({"image": os.path.basename(path), "bytes": len(data),
                 "bpp": metrics.bpp(len(data), *image.shape[:2]), "mse": mse,
                 "psnr": 10 * np.log10(255. ** 2 / max(mse, 1e-10)), "same_bits": same})
  summary = {"model_dir": model_dir, "lmbda": _lmbda(model_dir),
             "bpp": float(np.mean([r["bpp"] for r in rows])),
             "psnr": float(np.mean([r["psnr"] for r in rows])),
             "mse": float(np.mean([r["mse"] for r in rows])), "images": rows}
  if reduce:
    summary["same_bits"] = int(sum(r["same_bits"] for r in rows))
  return summary


def psnr_at(reference, bpp):
  """PSNR of the dense curve at `bpp` (PCHIP in log-bpp); None outside its range."""
  import math
  from tfcae.evaluation.bdrate import value_at_rate
  value = value_at_rate([r["bpp"] for r in reference], [r["psnr"] for r in reference], bpp,
                        "pchip")
  return None if math.isnan(value) else value


def _fmt(value, spec, missing="–"):
  return missing if value is None else format(value, spec)


def markdown(results):
  lines = ["| model | S | MACC red. | mem. red. (sparse / reduced) | bpp | PSNR (dB) | "
           "ΔPSNR @ bpp (dB) | rel. loss vs same-λ (dB) | same bits | enc. TF 1t dense→reduced "
           "(ms) | TF 2t | TFLite 1t | TFLite 2t |", "|" + "---|" * 13]
  for r in results["sparse"]:
    lat = {l["threads"]: l for l in r["latency"]}

    def pair(threads, kind):
      l = lat.get(threads)
      if not l or f"{kind}_dense_s" not in l:
        return "–"
      return f"{1e3 * l[f'{kind}_dense_s']:.0f}→{1e3 * l[f'{kind}_reduced_s']:.0f}"
    lines.append(
        f"| {r['label']} | {r['S']:.1%} | {r['macc_reduction']:.1%} | "
        f"{r['memory_reduction_sparse']:.1%} / {r['memory_reduction_reduced']:.1%} | "
        f"{r['bpp']:.3f} | {r['psnr']:.2f} | {_fmt(r['psnr_loss_at_bpp'], '.2f')} | "
        f"{_fmt(r['relative_loss_db'], '.2f')} | {r['same_bits']}/{len(r['images'])} | "
        f"{pair(1, 'tf')} | {pair(2, 'tf')} | {pair(1, 'tflite')} | {pair(2, 'tflite')} |")
  lines += ["", "Paper (Gille et al., Table I, encoder only):", "",
            "| method | S | MACC red. | mem. red. | rel. loss (dB) |", "|---|---|---|---|---|"]
  lines += [f"| {p['method']} | {p['S']:.0%} | {p['macc_reduction']:.0%} | "
            f"{p['memory_reduction']:.0%} | {p['relative_loss_db']} |" for p in PAPER]
  lines += ["", "Dense reference (same images): " + ", ".join(
      f"λ={r['lmbda']}: {r['bpp']:.3f} bpp / {r['psnr']:.2f} dB" for r in results["reference"])]
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  if FLAGS.latency_worker:
    from tfcae.io.fileio import expand_images
    latency_worker(FLAGS.latency_worker, FLAGS.worker_threads,
                   expand_images(FLAGS.images)[0], FLAGS.latency_runs, FLAGS.tflite)
    return
  if FLAGS.prune_from:
    print(prune_model(FLAGS.prune_from, FLAGS.prune_to, FLAGS.prune))
    return
  from tfcae.analysis import accounting
  from tfcae.io.fileio import expand_images
  from tfcae.training.export import load_trained
  paths = expand_images(FLAGS.images)
  if FLAGS.max_images:
    paths = paths[:FLAGS.max_images]
  if FLAGS.latency_only:
    latency = {}
    for item in FLAGS.sparse:
      label, model_dir = item.split("=", 1)
      latency[label] = measure_latency(model_dir, paths[0])
      print(label, json.dumps(latency[label]), flush=True)
    with open(FLAGS.output + "_latency.json", "w", encoding="utf-8") as f:
      json.dump({"command": " ".join(sys.argv), "latency": latency}, f, indent=2)
    return
  if not paths or not FLAGS.reference or not FLAGS.sparse:
    raise SystemExit("need --images, --reference and --sparse")
  start = time.time()
  reference = [evaluate(d, paths, reduce=False) for d in FLAGS.reference]
  for r in reference:
    print(f"reference {r['model_dir']}: {r['bpp']:.4f} bpp {r['psnr']:.2f} dB", flush=True)
  results = {"images": FLAGS.images, "num_images": len(paths), "reference": reference,
             "sparse": [], "paper": PAPER,
             "date": time.strftime("%Y-%m-%d", time.gmtime()), "command": " ".join(sys.argv)}
  for item in FLAGS.sparse:
    label, model_dir = item.split("=", 1)
    total = accounting.analyze(load_trained(model_dir, for_compression=False))
    total = total["encoder"]["total"]
    rd = evaluate(model_dir, paths, reduce=True)
    same_lmbda = [r for r in reference if r["lmbda"] == rd["lmbda"]]
    entry = dict(rd, label=label, S=total["S"], macc_reduction=total["macc_reduction"],
                 memory_reduction_sparse=total["memory_reduction_sparse"],
                 memory_reduction_reduced=total["memory_reduction_reduced"],
                 maccs_per_pixel=total["maccs_per_pixel"],
                 maccs_per_pixel_reduced=total["maccs_per_pixel_reduced"])
    ref_psnr = psnr_at(reference, rd["bpp"])
    entry["psnr_loss_at_bpp"] = None if ref_psnr is None else ref_psnr - rd["psnr"]
    import numpy as np
    entry["relative_loss_db"] = (float(10 * (np.log10(same_lmbda[0]["mse"])
                                             - np.log10(rd["mse"]))) if same_lmbda else None)
    entry["latency"] = measure_latency(model_dir, paths[0])
    results["sparse"].append(entry)
    print(f"{label}: S {entry['S']:.1%} MACC -{entry['macc_reduction']:.1%} "
          f"{rd['bpp']:.4f} bpp {rd['psnr']:.2f} dB same bits {rd['same_bits']}/{len(paths)} "
          f"latency {entry['latency']}", flush=True)
  results["seconds"] = round(time.time() - start, 1)
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
  with open(FLAGS.output + ".json", "w", encoding="utf-8") as f:
    json.dump(results, f, indent=2)
  with open(FLAGS.output + ".md", "w", encoding="utf-8") as f:
    f.write(markdown(results))
  print(markdown(results))
  print(f"wrote {FLAGS.output}.json and .md")


if __name__ == "__main__":
  app.run(main)
