#!/usr/bin/env python3
"""TFLite encoder latency (1 and 2 threads), .tflite size, S and MACCs per model, and the
PSNR/bpp cost of int8, calibrated and (--qat_steps) fine-tuned quantization-aware.
Writes docs/benchmark/tflite.json.

  .venv/bin/python bench/tflite_latency.py \
      --model_dirs=runs/factorized_cpu21k_l0.01,runs/pruned_l11_l0.01,runs/tfmot_s0.84_l0.01 \
      --images='../shared/data/kodak/*.png' --quality_images=8

Latency: a plain tf.lite.Interpreter(num_threads=n) (XNNPACK) on the first image (Kodak:
768×512), one warm-up invoke, median of --repeats invokes (the encoder only: no padding,
no range coding). Each model's encoder is the device encoder bin/export writes (reduced
when it has dead filters); int8 for the first model only. Quality (exported models only):
mean bpp (file bytes) and PSNR through host-side coding (bin/compress --tflite) and the
SavedModel's decompress, on the first --quality_images images.
"""
import json
import os
import time

from tfcae import cli  # first: it quiets TensorFlow's start-up
import numpy as np
import tensorflow as tf
from absl import flags

from tfcae.analysis import accounting
from tfcae.deploy import hostcoding, tflite, timing
from tfcae.io.fileio import atomic_write_json, expand_images, load_rgb_image
from tfcae.training.export import load_trained
from tfcae.serving import ExportedModel
from tfcae.training.rundir import RunDir

flags.DEFINE_string("model_dirs", None, "Comma-separated model directories.")
flags.DEFINE_string("images", "../shared/data/kodak/*.png", "Images.")
flags.DEFINE_string("representative_images", "data/sample/train",
                    "Calibration images for int8.")
flags.DEFINE_integer("repeats", 10, "Timed invokes per setting.")
flags.DEFINE_integer("quality_images", 8, "Images for the int8 PSNR/bpp cost.")
flags.DEFINE_integer("qat_steps", 0, "If > 0: also an int8 row fine-tuned this many "
                     "quantization-aware steps (first model; bin/export --qat_steps).")
flags.DEFINE_string("qat_images", "../shared/data/train", "Fine-tuning images.")
flags.DEFINE_float("qat_learning_rate", 1e-5, "Fine-tuning learning rate.")
flags.DEFINE_string("output", "docs/benchmark/tflite.json", "JSON output.")
flags.mark_flag_as_required("model_dirs")
FLAGS = flags.FLAGS


def latency(data, padded, threads, repeats):
  encoder = tflite.TFLiteEncoder(data, num_threads=threads)
  encoder.set_input(padded)
  return timing.seconds_per_call(encoder.invoke, repeats, warmup=1)


def quality(model_dir, data, paths):
  """Mean bpp (file bytes) and PSNR over `paths` through the TFLite + host path."""
  return tuple(float(v) for v in np.mean(hostcoding.host_coding_quality(tflite.TFLiteEncoder(data), model_dir, paths),
                                         axis=0))


def fine_tuned_int8(model_dir, model, encoder, representative):
  """bin/export --quantize=int8 --qat_steps=N: calibrated, then fine-tuned (λ of the run)."""
  integer = tflite.int8_encoder(model, representative, encoder)
  tflite.fine_tune_int8(integer, model_dir, model, FLAGS.qat_images, FLAGS.qat_steps,
                        FLAGS.qat_learning_rate, verbose=2)
  return tflite.convert_integer(integer)


def main():
  paths = expand_images(FLAGS.images)
  image = load_rgb_image(paths[0])
  representative = tflite.representative_crops(expand_images(FLAGS.representative_images))
  rows = []
  for i, model_dir in enumerate(FLAGS.model_dirs.split(",")):
    model = load_trained(model_dir, for_compression=False)
    model.prepare_for_compression()  # latent offsets
    total = accounting.analyze(model)["encoder"]["total"]
    encoder, reduced = tflite.device_encoder(model)
    padded = tflite.pad_to_stride(image, model.stride)
    variants = ["none"]
    if i == 0:
      variants += ["int8"] + (["int8+qat"] if FLAGS.qat_steps else [])
    for quantize in variants:
      if quantize == "int8+qat":
        data = fine_tuned_int8(model_dir, model, encoder, representative)
      else:
        data = tflite.convert(model, quantize, representative, encoder)
      row = {"model_dir": model_dir, "quantize": quantize, "reduced_encoder": reduced,
             "qat_steps": FLAGS.qat_steps if quantize == "int8+qat" else 0,
             "S": total["S"], "maccs_per_pixel": total["maccs_per_pixel"],
             "maccs_per_pixel_reduced": total["maccs_per_pixel_reduced"],
             "tflite_bytes": len(data), "image": os.path.basename(paths[0]),
             "latency_1_thread_s": latency(data, padded, 1, FLAGS.repeats),
             "latency_2_threads_s": latency(data, padded, 2, FLAGS.repeats)}
      if ExportedModel(model_dir).is_exported():  # host coding needs it
        row["quality_images"] = FLAGS.quality_images
        row["bpp"], row["psnr"] = quality(model_dir, data, paths[:FLAGS.quality_images])
      rows.append(row)
      print(json.dumps(row), flush=True)
  atomic_write_json(FLAGS.output, {"rows": rows, "date": time.strftime("%Y-%m-%d"),
                                   "tensorflow": tf.__version__})


if __name__ == "__main__":
  cli.run(main)
