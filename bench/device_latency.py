#!/usr/bin/env python3
"""Device-encoder latency on each TFLite runtime: LiteRT (ai-edge-litert, what devices ship)
and the interpreter bundled in TensorFlow 2.14, at 1 and 2 threads.

  .venv/bin/python bench/device_latency.py \\
      --models=zoo:factorized/5,zoo:factorized-l11/5 --output=docs/benchmark/device_latency.json

For each model, its float32 and int8 encoders (int8: GDNs in int8 but for the division, and,
as `int8-float-gdn`, wholly in float; --int8_gdn): the zoo folder's encoder.tflite and
encoder_int8.tflite when it ships them, else converted here as `tfcae export --target=tflite`
does (the reduced encoder when the model has dead filters; int8 calibrated on crops of
--representative_images), cached in --cache_dir. Each encoder runs on --image (Kodak's
kodim23, 768×512) in every installed runtime; at one thread count all the arms (model ×
precision × runtime) are interleaved, one invoke each in turn, after one warm-up, and the
median of --repeats is reported, so a machine busy with other work slows every arm alike.
Also: encoder MACs per pixel (reduced), the flatbuffer's bytes, Kodak bpp / PSNR through a
shipped flatbuffer and host coding (from the zoo card), and joules per image: the
arm's time × the CPU power codecarbon measured (offline, tfcae.training.energy) over that
thread count's interleaved loop — RAPL where readable, else its load × TDP estimate, which
the JSON names. Writes the JSON and a Markdown table (<output>.md).
"""
import json
import os

from tfcae import cli  # first: it quiets TensorFlow's start-up
import tensorflow as tf  # noqa: F401  (before cli.run: see its docstring)
from absl import flags

from tfcae import zoo
from tfcae.analysis import accounting
from tfcae.deploy import tflite
from tfcae.deploy.hostcoding import pad_to_stride
from tfcae.evaluation import green
from tfcae.io.fileio import atomic_write_json, load_rgb_image
from tfcae.serving import open_model

flags.DEFINE_string("models", "zoo:factorized/5,zoo:factorized-l11/5",
                    "Comma-separated model references (directories or zoo:<family>/<q>).")
flags.DEFINE_string("image", "data/sample/eval/kodim23.png", "The image the encoders run on.")
flags.DEFINE_string("representative_images", "data/sample/train",
                    "int8 calibration images, for models without shipped int8 encoders.")
flags.DEFINE_string("int8_gdn", "integer,float",
                    "int8 arms: how their GDNs run (tfcae export --int8_gdn): integer is "
                    "`int8`, float `int8-float-gdn`.")
flags.DEFINE_string("threads", "1,2", "Thread counts.")
flags.DEFINE_bool("stages", False, "Also time each model's int8 encoder cut after each "
                  "convolution (calibrated, integer GDN; LiteRT, one thread, interleaved): "
                  "where the time goes, layer by layer. Each prefix ends in the symbol output "
                  "(DEQUANTIZE, ROUND, CAST) of its last convolution.")
flags.DEFINE_integer("repeats", 15, "Timed invokes per arm (median).")
flags.DEFINE_string("cache_dir", "runs/device_latency", "Converted encoders.")
flags.DEFINE_string("output", "docs/benchmark/device_latency.json", "JSON output.")
FLAGS = flags.FLAGS

SHIPPED = {"float32": "encoder.tflite", "int8": "encoder_int8.tflite"}
# Arm -> (export's quantize, its int8_gdn).
ARMS = {"float32": ("none", None), "int8": ("int8", "integer"),
        "int8-float-gdn": ("int8", "float")}


def _int8_gdn(path):
  """How a flatbuffer's GDNs run, from its .json (exports that predate the option: float)."""
  with open(path + ".json", encoding="utf-8") as f:
    return json.load(f).get("int8_gdn", "float")


def _cache_folder(reference):
  """The folder of a model's converted flatbuffers under --cache_dir."""
  folder = os.path.join(FLAGS.cache_dir, reference.replace(":", "_").replace("/", "_"))
  os.makedirs(folder, exist_ok=True)
  return folder


def encoders(reference):
  """{arm: path} of a model's device encoders: the zoo folder's when it ships the arm's
  flatbuffer, else converted here as `tfcae export` does (cached)."""
  exported = open_model(reference)
  wanted = ["float32"] + [arm for arm, (_, gdn) in ARMS.items()
                          if gdn in FLAGS.int8_gdn.split(",")]
  found = {}
  for arm in wanted:
    quantize, gdn = ARMS[arm]
    path = exported.join(SHIPPED.get(arm, "-"))
    if not os.path.isfile(path) or (gdn and _int8_gdn(path) != gdn):
      path = os.path.join(_cache_folder(reference), f"encoder_{arm}.tflite")
      if not os.path.isfile(path):
        options = {"int8_gdn": gdn} if gdn else {}
        tflite.export_tflite(exported, path, quantize,
                             FLAGS.representative_images if gdn else "", **options)
    found[arm] = path
  return exported, found


def stage_arms(reference, padded):
  """[((reference, last conv), .tflite path, padded)]: the int8 encoder cut after each conv."""
  import numpy as np
  import tensorflow as tf
  from tfcae.deploy import qat, reduction
  model = open_model(reference).restore_keras()
  encoder, _ = tflite.device_encoder(model)
  layers = [l for l in encoder.layers if not isinstance(l, reduction.ChannelInsert)]
  representative = tflite.representative_crops(tflite.image_paths(FLAGS.representative_images))
  folder = _cache_folder(reference)
  arms = []
  for end, layer in enumerate(layers):
    if isinstance(layer, tf.keras.layers.Conv2D):
      prefix = tf.keras.Sequential([tf.keras.Input([None, None, 3])] + layers[:end + 1])
      integer = qat.integer_encoder(prefix, np.zeros(layer.filters, np.float32))
      qat.calibrate(integer, representative)
      path = os.path.join(folder, f"stage_{layer.name}.tflite")
      with open(path, "wb") as f:
        f.write(tflite.convert_integer(integer))
      arms.append(((reference, layer.name), path, padded))
  return arms


def main():
  image = load_rgb_image(FLAGS.image)
  installed = tflite.runtimes()
  for runtime in ("litert", "tensorflow"):
    if runtime not in dict(installed):
      print(f"{runtime}: not installed, skipped")
  models, arms = [], []
  for reference in FLAGS.models.split(","):
    exported, paths = encoders(reference)
    report = accounting.analyze(exported.restore_keras(for_compression=False))
    total = report["encoder"]["total"]
    # Kodak through the shipped flatbuffers and host coding, from the zoo card, and its
    # ΔPSNR at equal bpp against the dense family's curve.
    card = exported.card or {}
    shipped = card.get("device_encoders", {})
    kodak = {arm: dict(shipped[SHIPPED[arm]]["kodak"]) for arm in paths
             if SHIPPED.get(arm) in shipped and os.path.dirname(paths[arm]) == exported.path}
    if kodak:
      dense = card.get("encoder", {}).get("dense_sibling", card.get("name", "")).split("/")[0]
      curve = green.curve_of_cards([c for c in zoo.list() if c["family"] == dense])
      for result in kodak.values():
        result["delta_psnr_at_equal_bpp"] = green.delta_psnr_at_bpp(curve, result["bpp"],
                                                                    result["psnr-rgb"])
    models.append({"model": reference, "macs_per_pixel": total["maccs_per_pixel"],
                   "macs_per_pixel_reduced": total["maccs_per_pixel_reduced"],
                   "bytes": {k: os.path.getsize(p) for k, p in paths.items()},
                   "kodak": kodak})
    padded = pad_to_stride(image, exported.stride)
    for precision, path in paths.items():
      arms.append((reference, precision, path, padded))
  rows = []
  threads = [int(t) for t in FLAGS.threads.split(",")]
  for row in tflite.measure_latency([((reference, precision), path, padded)
                                     for reference, precision, path, padded in arms],
                                    threads, FLAGS.repeats):
    (reference, precision), joules = row.pop("key"), row["joules"]
    rows.append(dict(model=reference, precision=precision, **row))
    print(f"{reference} {precision:14s} {row['runtime']:24s} {row['threads']} thread(s): "
          f"{row['ms']:7.1f} ms" + (f", {joules:.2f} J" if joules else ""))
  result = {"image": FLAGS.image, "shape": list(image.shape), "repeats": FLAGS.repeats,
            "cpu": tflite.cpu_name(), "models": models, "latency": rows}
  if FLAGS.stages:
    stages = [arm for reference in FLAGS.models.split(",")
              for arm in stage_arms(reference, pad_to_stride(image, open_model(reference).stride))]
    result["stages"] = [{"model": r["key"][0], "through": r["key"][1], "ms": r["ms"]}
                        for r in tflite.measure_latency(stages, (1,), FLAGS.repeats)
                        if r["runtime"].startswith("LiteRT")]
    for r in result["stages"]:
      print(f"{r['model']} int8 through {r['through']}: {r['ms']:.1f} ms")
  atomic_write_json(FLAGS.output, result)
  with open(os.path.splitext(FLAGS.output)[0] + ".md", "w", encoding="utf-8") as f:
    f.write(markdown(result))
    if result.get("stages"):
      f.write("\n| model | int8 encoder through | LiteRT, 1 thread |\n|---|---|---|\n")
      f.writelines(f"| {r['model']} | {r['through']} | {r['ms']:.1f} ms |\n"
                   for r in result["stages"])
  print(f"wrote {FLAGS.output}")


def markdown(result):
  """One row per model, precision and runtime: ms at each thread count, and int8/float32."""
  ms = {(r["model"], r["precision"], r["runtime"], r["threads"]): r["ms"]
        for r in result["latency"]}
  threads = sorted({r["threads"] for r in result["latency"]})
  names = list(dict.fromkeys(r["runtime"] for r in result["latency"]))
  joules = {(r["model"], r["precision"], r["runtime"], r["threads"]): r.get("joules")
            for r in result["latency"]}
  lines = ["| model | MACs/px (reduced) | encoder | .tflite bytes | runtime | "
           + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in threads)
           + " | int8 / float32 (1 thread) | J/image (1 thread) | Kodak bpp / PSNR "
           "(ΔPSNR @ bpp vs dense) |",
           "|---|---|---|---|---|" + "---|" * len(threads) + "---|---|---|"]
  for model in result["models"]:
    for precision in model["bytes"]:
      for name in names:
        key = (model["model"], precision, name)
        cells = " | ".join(f"{ms[key + (t,)]:.1f} ms" for t in threads)
        ratio = ""
        if precision != "float32":
          int8 = ms[key + (threads[0],)]
          ratio = f"{int8 / ms[(model['model'], 'float32', name, threads[0])]:.2f}"
        j = joules[key + (threads[0],)]
        kodak = model.get("kodak", {}).get(precision)
        rd = ""
        if kodak:
          delta = kodak.get("delta_psnr_at_equal_bpp")
          rd = (f"{kodak['bpp']:.4f} / {kodak['psnr-rgb']:.2f}"
                + ("" if delta is None else f" ({delta:+.2f} dB)"))
        lines.append(f"| {model['model']} | {model['macs_per_pixel_reduced']:,.0f} | "
                     f"{precision} | {model['bytes'][precision]:,} | {name} | {cells} | "
                     f"{ratio} | {'' if j is None else f'{j:.2f}'} | {rd} |")
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  cli.run(main)
