#!/usr/bin/env python3
"""int8 TFLite encoders: how many symbols equal the float model's and the int8 Keras
reference's, and what int8 costs in bpp/PSNR, for tfcae's int8 export and for
the TFLite converter's own full-integer post-training quantisation, beside the float32
flatbuffer. Writes docs/benchmark/int8_symbols.json.

  .venv/bin/python bench/int8_symbols.py --model_dir=runs/quickstart \\
      --images='../shared/data/kodak/*.png'

Both are calibrated on the same crops (2 random 256² crops of each --representative_images
image). Symbols: round(y − o) of the whole padded image, every element counted. Quality:
mean bpp (file bytes) and PSNR of every image through the flatbuffer, host-side coding
and the SavedModel's decompress (tfcae.deploy.hostcoding.host_coding_quality).
  tfcae int8        bin/export --quantize=int8 (tfcae.deploy.qat: fixed step-1 symbol output).
  converter PTQ     TFLiteConverter with a representative dataset on the float encoder
                    function (the latent is quantised per tensor with step range/255).
"""
import os
import time

from tfcae import cli  # first: it quiets TensorFlow's start-up
import numpy as np
import tensorflow as tf
from absl import flags

from tfcae.deploy import hostcoding, tflite
from tfcae.io.fileio import atomic_write_json, expand_images, load_rgb_image
from tfcae.serving import open_model

flags.DEFINE_string("model_dir", None, "An exported model (bin/train output).")
flags.DEFINE_string("images", "../shared/data/kodak/*.png", "Images compared.")
flags.DEFINE_string("representative_images", "data/sample/train", "Calibration images.")
flags.DEFINE_string("output", "docs/benchmark/int8_symbols.json", "JSON output.")
flags.mark_flag_as_required("model_dir")
FLAGS = flags.FLAGS


def converter_ptq(model, encoder, representative):
  """The TFLite converter's full-integer PTQ of the float encoder function (the pre-tfcae.deploy.qat
  int8 export, kept here as the baseline)."""
  function = tflite.encoder_function(model, encoder)
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [function.get_concrete_function()], model)
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.representative_dataset = lambda: ([x] for x in representative)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                         tf.lite.OpsSet.TFLITE_BUILTINS]
  converter.inference_input_type = tf.uint8
  return converter.convert()


def main():
  model = open_model(FLAGS.model_dir).restore_keras()
  encoder, reduced = tflite.device_encoder(model)
  representative = tflite.representative_crops(
      tflite.image_paths(FLAGS.representative_images))
  reference = tflite.int8_encoder(model, representative, encoder)
  flatbuffers = {"float32": tflite.convert(model, "none", None, encoder),
                 "tfcae_int8": tflite.convert_integer(reference),  # = convert(…, "int8")
                 "converter_ptq": converter_ptq(model, encoder, representative)}
  devices = {name: tflite.TFLiteEncoder(data) for name, data in flatbuffers.items()
             if name != "float32"}
  offset = model.latent_codec().offset().numpy()
  counts = {name: {"equal_float": 0, "equal_int8_reference": 0, "max_abs_diff_float": 0}
            for name in devices}
  total = 0
  paths = expand_images(FLAGS.images)
  for i, path in enumerate(paths):
    padded = tflite.pad_to_stride(load_rgb_image(path), model.stride)
    x = tf.constant(padded[None], tf.float32)
    floats = np.round(model.analysis_transform(x).numpy() - offset).astype(np.int32)
    expected = reference.symbols(x).numpy()
    total += floats.size
    for name, device in devices.items():
      got = device.symbols(padded)
      c = counts[name]
      c["equal_float"] += int((got == floats).sum())
      c["equal_int8_reference"] += int((got == expected).sum())
      c["max_abs_diff_float"] = max(c["max_abs_diff_float"], int(np.abs(got - floats).max()))
    print(f"{i + 1}/{len(paths)} {os.path.basename(path)}", flush=True)
  rows = {name: {"equal_float": c["equal_float"] / total,
                 "equal_int8_reference": c["equal_int8_reference"] / total,
                 "max_abs_diff_float": c["max_abs_diff_float"]}
          for name, c in counts.items()}
  rows["converter_ptq"].pop("equal_int8_reference")  # a different quantisation
  rows["float32"] = {}
  for name, data in flatbuffers.items():
    bpp, psnr = np.mean(hostcoding.host_coding_quality(tflite.TFLiteEncoder(data),
                                                       FLAGS.model_dir, paths), axis=0)
    rows[name].update(bpp=float(bpp), psnr=float(psnr), tflite_bytes=len(data))
    print(f"{name}: {bpp:.4f} bpp, {psnr:.3f} dB", flush=True)
  result = {"model_dir": FLAGS.model_dir, "reduced_encoder": reduced, "images": len(paths),
            "symbols": total, "rows": rows, "date": time.strftime("%Y-%m-%d"),
            "tensorflow": tf.__version__}
  atomic_write_json(FLAGS.output, result)
  for name, row in rows.items():
    print(name, row)


if __name__ == "__main__":
  cli.run(main)
