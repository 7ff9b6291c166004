#!/usr/bin/env python3
"""Where each operating point of a curve stands against an anchor codec at the same bpp.

  .venv/bin/python bench/equal_rate.py --results=docs/benchmark/tfcae-factorized-cpu.json \
      --anchor=docs/benchmark/jpeg.json

For each point: its bpp, PSNR and MS-SSIM (dB), the anchor's PSNR and MS-SSIM (dB) at the
same bpp (linear interpolation in log-bpp between the anchor's measured points), and the
differences. Points outside the anchor's measured rate range are marked n/a.
"""
from tfcae import cli  # first: it quiets TensorFlow's start-up
import numpy as np
from absl import flags

from tfcae.evaluation.bdrate import quality_at_rate
from tfcae.evaluation.results import read_results
from tfcae.objectives.metrics import ms_ssim_db

flags.DEFINE_string("results", None, "Results JSON of the curve to place.")
flags.DEFINE_string("anchor", "docs/benchmark/jpeg.json", "Results JSON of the anchor codec.")
flags.mark_flag_as_required("results")
FLAGS = flags.FLAGS


def main():
  curve, anchor = read_results(FLAGS.results), read_results(FLAGS.anchor)
  r = curve["results"]
  name = anchor["name"]
  print(f"| point | bpp | PSNR | {name} PSNR | ΔPSNR | MS-SSIM dB | {name} MS-SSIM dB | Δ |")
  print("|---|---|---|---|---|---|---|---|")
  for i, point in enumerate(curve["points"]):
    bpp, psnr, msdb = r["bpp"][i], r["psnr-rgb"][i], ms_ssim_db(r["ms-ssim-rgb"][i])
    a_psnr = quality_at_rate(anchor, "psnr", bpp)
    a_msdb = quality_at_rate(anchor, "ms-ssim", bpp)
    fmt = lambda v: "n/a" if np.isnan(v) else f"{v:.2f}"
    print(f"| {point['label']} | {bpp:.4f} | {psnr:.2f} | {fmt(a_psnr)} | {fmt(psnr - a_psnr)} | "
          f"{msdb:.2f} | {fmt(a_msdb)} | {fmt(msdb - a_msdb)} |")


if __name__ == "__main__":
  cli.run(main)
