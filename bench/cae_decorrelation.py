#!/usr/bin/env python3
"""Cross-channel correlation of a CAE's latents y on an image set.

  .venv/bin/python bench/cae_decorrelation.py --images='../shared/data/kodak/*.png' \\
      --model_dirs=runs/dec/cae_l0.01_a0,runs/dec/cae_l0.01_a1e-4 \\
      --rd_results=docs/benchmark/cae_decorrelation_kodak.json

For each trained model_dir (its latest checkpoint, rebuilt from train_config.json), each
image is edge-padded to the model's stride and encoded to y = g_a(x) (before quantisation).
Per image, the M latent channels are the features and the latent positions the samples:
reported are Σ_{i≠j} C_ij² (the penalty, tfcae.methods.decorrelation.decorrelation_penalty), the mean
|correlation coefficient| over channel pairs (scale free, unlike the penalty) and the
latents' standard deviation, each averaged over the images. With --rd_results (bin/evaluate's
JSON for the same model_dirs) the table also shows bpp, PSNR and MS-SSIM.
"""
import json
import os

from tfcae import cli  # first: it quiets TensorFlow's start-up
import tensorflow as tf
from absl import flags
import numpy as np

from tfcae import TfcaeError
from tfcae.io.fileio import atomic_write_json, expand_images, load_rgb_image
from tfcae.methods.decorrelation import decorrelation_penalty
from tfcae.models import edge_pad
from tfcae.training.export import load_trained
from tfcae.training.rundir import RunDir

flags.DEFINE_list("model_dirs", None, "Trained model directories (bin/train).")
flags.DEFINE_string("images", "../shared/data/kodak/*.png", "Images: folder, glob or list.")
flags.DEFINE_string("rd_results", "", "bin/evaluate JSON of the same model_dirs (optional).")
flags.DEFINE_string("output", "docs/benchmark/cae_decorrelation.json", "Results JSON.")
flags.mark_flag_as_required("model_dirs")
FLAGS = flags.FLAGS


def latent_statistics(model, paths):
  rows = []
  for path in paths:
    image = load_rgb_image(path)
    x = tf.cast(image, tf.float32)[None]
    x = edge_pad(x, *model.padded_shape(image.shape[0], image.shape[1]))
    y = model.analysis_transform(x)
    codes = y.numpy().reshape(-1, y.shape[-1]).astype(np.float64)
    corr = np.corrcoef(codes, rowvar=False)
    off = ~np.eye(len(corr), dtype=bool)
    rows.append((float(decorrelation_penalty(y)), float(np.nanmean(np.abs(corr[off]))),
                 float(codes.std())))
  penalty, abs_corr, std = np.mean(rows, axis=0)
  return {"offdiag_cov_sq": float(penalty), "mean_abs_corr": float(abs_corr),
          "y_std": float(std)}


def main():
  paths = expand_images(FLAGS.images)
  if not paths:
    raise TfcaeError(f"no images for {FLAGS.images!r}")
  rd = {}
  if FLAGS.rd_results:
    with open(FLAGS.rd_results, encoding="utf-8") as f:
      results = json.load(f)
    for i, point in enumerate(results["points"]):
      rd[os.path.normpath(point["label"])] = {
          k: results["results"][k][i] for k in ("bpp", "psnr-rgb", "ms-ssim-rgb")}
  rows = []
  for model_dir in FLAGS.model_dirs:
    model = load_trained(model_dir, for_compression=False)
    config = RunDir(model_dir).read_config()
    row = {"model_dir": model_dir, "lmbda": config.lmbda,
           "decorrelation_weight": config.decorrelation_weight,
           **latent_statistics(model, paths), **rd.get(os.path.normpath(model_dir), {})}
    rows.append(row)
    print(json.dumps(row), flush=True)
  atomic_write_json(FLAGS.output, {"images": FLAGS.images, "num_images": len(paths),
                                   "models": rows})
  print(f"wrote {FLAGS.output}\n")
  print("| α | bpp | PSNR [dB] | MS-SSIM | Σ_{i≠j} C_ij² of y | mean abs corr | std(y) |")
  print("|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['decorrelation_weight']:g} | {r.get('bpp', float('nan')):.4f} | "
          f"{r.get('psnr-rgb', float('nan')):.2f} | {r.get('ms-ssim-rgb', float('nan')):.4f} | "
          f"{r['offdiag_cov_sq']:.1f} | {r['mean_abs_corr']:.4f} | {r['y_std']:.3f} |")


if __name__ == "__main__":
  cli.run(main)
