"""Plots of rate-distortion results (matplotlib, Agg backend: no display needed).

A module of plain functions taking results dicts (tfcae.results layout) and an
output path; every figure is written atomically.
"""
import io

import numpy as np

from tfcae.fileio import atomic_write_bytes

METRICS = {
    "psnr": ("psnr-rgb", "PSNR RGB [dB]"),
    "ms-ssim": ("ms-ssim-rgb", "MS-SSIM RGB [dB]  (-10 log10(1 - MS-SSIM))"),
}


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")  # headless; must precede the pyplot import
  import matplotlib.pyplot as plt
  return plt


def _save(fig, output_png, dpi):
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
  atomic_write_bytes(output_png, buf.getvalue())


def plot_rd(results_list, metric="psnr", output_png="rd.png", title=None, dpi=120):
  """Rate-distortion curves, one per results dict, quality against bpp.

  MS-SSIM is drawn in dB, where differences near 1 are visible. Returns the path.
  """
  from tfcae.metrics import ms_ssim_db
  if metric not in METRICS:
    raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
  if not results_list:
    raise ValueError("nothing to plot: no results given")
  key, ylabel = METRICS[metric]
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 5))
  try:
    for res in results_list:
      r = res["results"]
      if key not in r:
        raise ValueError(f"{res.get('name', '?')}: results have no {key!r}")
      rates = np.asarray(r["bpp"], dtype=np.float64)
      values = np.asarray(r[key], dtype=np.float64)
      if metric == "ms-ssim":
        values = np.asarray([ms_ssim_db(v) for v in values])
      order = np.argsort(rates)
      ax.plot(rates[order], values[order], marker="o", markersize=4, linewidth=1.5,
              label=res.get("name", "?"))
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"Rate-distortion ({'PSNR' if metric == 'psnr' else 'MS-SSIM'})")
    ax.grid(True, which="both", alpha=0.4)
    ax.legend(loc="lower right")
    _save(fig, output_png, dpi)
  finally:
    plt.close(fig)
  return output_png
