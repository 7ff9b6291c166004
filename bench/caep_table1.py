#!/usr/bin/env python3
"""Zhao & Liao's (CAE-P) Table 1 on Kodak: one model without and with ADMM pruning.

  .venv/bin/python bench/caep_table1.py --baseline=runs/caep_cpu --admm=runs/caep_admm_cpu \
      --images='../shared/data/kodak/*.png' --output=docs/benchmark/caep_table1.json

For each exported model: bpp from the .tfcae files' bytes, PSNR, SSIM and MS-SSIM of the
decoded images (tfcae.serving.codec, as bin/evaluate), and the fraction of zero entries of the
quantized code round(E(x)) (from the model rebuilt from its last checkpoint). JPEG
(Pillow, 4:2:0) is swept on the same images for the SSIM/MS-SSIM-vs-bpp comparison and
interpolated (in log-bpp) at each model's rate. Prints the table beside the paper's.
"""
import os

from tfcae import cli  # first: it quiets TensorFlow's start-up
import numpy as np
import tensorflow as tf
from absl import flags

from tfcae.serving.codec import Codec
from tfcae.evaluation import classical
from tfcae.evaluation.bdrate import value_at_rate
from tfcae.io.fileio import atomic_write_json, expand_images, load_rgb_image
from tfcae.objectives import metrics
from tfcae.training.export import load_trained

flags.DEFINE_string("baseline", None, "Model dir of the model trained without pruning.")
flags.DEFINE_string("admm", None, "Model dir of the same model trained with ADMM pruning.")
flags.DEFINE_string("images", "../shared/data/kodak/*.png", "Test images.")
flags.DEFINE_list("jpeg_qualities", ["10", "20", "30", "40", "50", "60", "70", "80", "90", "95"],
                  "JPEG qualities of the anchor sweep; empty to skip JPEG.")
flags.DEFINE_string("output", "", "Write the results JSON here.")
flags.mark_flags_as_required(["baseline", "admm"])
FLAGS = flags.FLAGS

# Zhao & Liao, Table 1 (Kodak): before → after ADMM pruning, same architecture.
PAPER = {"before": {"bpp": 1.422, "zero_ratio": 0.096},
         "after": {"bpp": 1.012, "zero_ratio": 0.215}}


def ssim(x, y):
  """SSIM (Wang et al. 2004; tf.image.ssim: 11×11 Gaussian window, σ 1.5) of uint8 images."""
  return float(tf.image.ssim(tf.cast(x, tf.float32), tf.cast(y, tf.float32), 255.))


def evaluate_model(model_dir, paths):
  from tfcae.models import edge_pad
  codec, model = Codec(model_dir), load_trained(model_dir, for_compression=False)
  records = []
  for path in paths:
    image = load_rgb_image(path)
    data = codec.compress(image)
    decoded = codec.decompress(data)
    height, width = image.shape[:2]
    x = edge_pad(tf.cast(image, tf.float32)[None], *model.padded_shape(height, width))
    code = tf.round(model.analysis_transform(x, training=False)).numpy()
    records.append({
        "image": os.path.basename(path), "bpp": metrics.bpp(len(data), height, width),
        "psnr": metrics.psnr(image, decoded), "ssim": ssim(image, decoded),
        "ms_ssim": metrics.ms_ssim(image, decoded), "zero_ratio": float(np.mean(code == 0)),
        "code_entries": int(code.size)})
  keys = ("bpp", "psnr", "ssim", "ms_ssim", "zero_ratio")
  return {"model_dir": model_dir, **{k: float(np.mean([r[k] for r in records])) for k in keys},
          "images": records}


def jpeg_sweep(paths, qualities):
  points = []
  images = [load_rgb_image(p) for p in paths]
  for q in qualities:
    rows = []
    for image in images:
      data = classical.encode(image, "jpeg", int(q))
      decoded = classical.decode(data, "jpeg")
      rows.append((metrics.bpp(len(data), *image.shape[:2]), metrics.psnr(image, decoded),
                   ssim(image, decoded), metrics.ms_ssim(image, decoded)))
    bpp, psnr, s, ms = np.mean(rows, axis=0)
    points.append({"quality": int(q), "bpp": bpp, "psnr": psnr, "ssim": s, "ms_ssim": ms})
  return points


def at_rate(points, key, bpp):
  """The JPEG sweep's `key` at `bpp`, linear in log-bpp (NaN outside the sweep)."""
  return value_at_rate([p["bpp"] for p in points], [p[key] for p in points], bpp)


def main():
  paths = expand_images(FLAGS.images)
  results = {"before": evaluate_model(FLAGS.baseline, paths),
             "after": evaluate_model(FLAGS.admm, paths), "paper": PAPER,
             "images": len(paths)}
  if FLAGS.jpeg_qualities:
    results["jpeg"] = jpeg_sweep(paths, FLAGS.jpeg_qualities)
  b, a = results["before"], results["after"]
  results["bpp_change"] = a["bpp"] / b["bpp"] - 1.
  results["psnr_change_db"] = a["psnr"] - b["psnr"]
  print(f"Kodak ({len(paths)} images)        bpp   zeros    PSNR    SSIM  MS-SSIM")
  for label, key in (("without ADMM", "before"), ("with ADMM", "after")):
    r = results[key]
    print(f"{label:24s} {r['bpp']:6.3f} {100 * r['zero_ratio']:6.1f}% {r['psnr']:6.2f} "
          f"{r['ssim']:7.4f} {r['ms_ssim']:8.4f}")
    if "jpeg" in results:
      print(f"  JPEG at that bpp              {at_rate(results['jpeg'], 'psnr', r['bpp']):6.2f} "
            f"{at_rate(results['jpeg'], 'ssim', r['bpp']):7.4f} "
            f"{at_rate(results['jpeg'], 'ms_ssim', r['bpp']):8.4f}")
  print(f"bpp change {100 * results['bpp_change']:+.1f}% (paper "
        f"{100 * (PAPER['after']['bpp'] / PAPER['before']['bpp'] - 1):+.1f}%), PSNR change "
        f"{results['psnr_change_db']:+.2f} dB; zeros {100 * b['zero_ratio']:.1f}% → "
        f"{100 * a['zero_ratio']:.1f}% (paper 9.6% → 21.5%)")
  if "jpeg" in results:
    for p in results["jpeg"]:
      print(f"JPEG q{p['quality']:<3d} {p['bpp']:6.3f} bpp {p['psnr']:6.2f} dB "
            f"SSIM {p['ssim']:.4f} MS-SSIM {p['ms_ssim']:.4f}")
  if FLAGS.output:
    atomic_write_json(FLAGS.output, results)


if __name__ == "__main__":
  cli.run(main)
