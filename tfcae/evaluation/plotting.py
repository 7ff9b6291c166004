"""Plots of rate-distortion results (matplotlib, Agg backend: no display needed).

A module of plain functions taking results dicts (tfcae.evaluation.results layout) and an
output path; every figure is written atomically.
"""
from __future__ import annotations

import io
import types
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tfcae.io.fileio import atomic_write_bytes

if TYPE_CHECKING:
  from matplotlib.figure import Figure

__all__ = ["METRICS", "pyplot", "save_figure", "plot_rd", "read_lambda_trajectory",
           "plot_lambda_trajectories", "plot_series", "plot_embeddings", "plot_green"]

METRICS = {
    "psnr": ("psnr-rgb", "PSNR RGB [dB]"),
    "ms-ssim": ("ms-ssim-rgb", "MS-SSIM RGB [dB]  (-10 log10(1 - MS-SSIM))"),
}


def pyplot() -> types.ModuleType:
  """matplotlib.pyplot on the Agg backend (headless), for every tfcae figure.

  Returns:
    The matplotlib.pyplot module, after selecting the Agg backend.
  """
  import matplotlib
  matplotlib.use("Agg")  # headless; must precede the pyplot import
  import matplotlib.pyplot as plt
  return plt


def save_figure(fig: Figure, output_png: str, dpi: int = 120) -> None:
  """Writes `fig` as a PNG atomically (a reader never sees half a file).

  Args:
    fig: the matplotlib figure (left open; the caller closes it).
    output_png: the file to write.
    dpi: resolution.
  """
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
  atomic_write_bytes(output_png, buf.getvalue())


def plot_rd(results_list: Sequence[dict[str, Any]], metric: str = "psnr",
            output_png: str = "rd.png", title: str | None = None, dpi: int = 120) -> str:
  """Rate-distortion curves, one per results dict, quality against bpp.

  MS-SSIM is drawn in dB, where differences near 1 are visible.

  Args:
    results_list: results dicts (tfcae.evaluation.results layout), one line each,
      labelled with its "name".
    metric: a key of METRICS ("psnr" or "ms-ssim").
    output_png: the PNG to write.
    title: the figure's title (default: "Rate-distortion (<metric>)").
    dpi: resolution.

  Returns:
    `output_png`.

  Raises:
    ValueError: an unknown metric, no results, or results without the metric.
  """
  from tfcae.objectives.metrics import ms_ssim_db
  if metric not in METRICS:
    raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
  if not results_list:
    raise ValueError("nothing to plot: no results given")
  key, ylabel = METRICS[metric]
  plt = pyplot()
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
    save_figure(fig, output_png, dpi)
  finally:
    plt.close(fig)
  return output_png


# --- D-CO: Lagrange multiplier trajectories ---------------------------------------------
def read_lambda_trajectory(model_dir: str) -> tuple[np.ndarray, np.ndarray]:
  """The Lagrange multiplier of a D-CO (or hinge) run, from its history.csv and
  train_config.json.

  λ after epoch e is the validation column `val_lambda` (the multiplier is constant during
  validation, so this is its value at the end of the epoch), or the epoch mean `lambda`
  when validation did not log it. Step 0 is the initial λ of a D-CO or R-CO run:
  --multiplier_init under the paper's rule, the derived λ0 under the auto rule
  (tfcae.methods.dco.multiplier_settings).

  Args:
    model_dir: the run directory.

  Returns:
    (steps, λ): the training step at the end of each epoch (and 0), and λ there.

  Raises:
    ValueError: the history cannot be read or has no λ column.
  """
  import csv
  import os
  from tfcae.training.rundir import HISTORY_FILE, RunDir
  run = RunDir(model_dir)
  history = run.history_path
  try:
    with open(history, encoding="utf-8") as f:
      rows = list(csv.DictReader(f))
  except OSError as e:
    raise ValueError(f"{model_dir}: cannot read {HISTORY_FILE} ({e.strerror or e})") from None
  column = next((c for c in ("val_lambda", "lambda") if rows and rows[0].get(c)), None)
  if column is None:
    raise ValueError(f"{history}: no λ column (was it trained with --objective=dco?)")
  # As stored, not TrainConfig.load: a missing field must not take the current default.
  settings = run.read_config_dict() if os.path.exists(run.config_path) else {}
  per_epoch = int(settings.get("steps_per_epoch", 1))
  steps, values = [], []
  if "multiplier_init" in settings and settings.get("objective") in ("dco", "rco"):
    initial = float(settings["multiplier_init"])
    if settings.get("multiplier_rule", "paper") == "auto":
      from tfcae.methods.dco import multiplier_settings
      from tfcae.training.config import TrainConfig
      initial = multiplier_settings(TrainConfig.from_dict(settings, model_dir))[
          "initial_value"]
    steps.append(0)
    values.append(initial)
  for row in rows:  # history.csv is appended across resumes: the last row of an epoch wins
    epoch_end = (int(row["epoch"]) + 1) * per_epoch
    if steps and steps[-1] >= epoch_end:
      keep = [i for i, s in enumerate(steps) if s < epoch_end]
      steps, values = [steps[i] for i in keep], [values[i] for i in keep]
    steps.append(epoch_end)
    values.append(float(row[column]))
  return np.asarray(steps), np.asarray(values)


def plot_lambda_trajectories(runs: Sequence[tuple[str, Sequence[float], Sequence[float]]],
                             output_png: str = "lambda.png", title: str | None = None,
                             dpi: int = 120, lambda_max: float | None = None) -> str:
  """λ against training step for several runs on a log axis (van Rozendaal et al., Fig. 3).

  Args:
    runs: list of (label, steps, λ values), e.g. from read_lambda_trajectory.
    output_png: the PNG to write.
    title: the figure's title (default: "D-CO: λ trajectories").
    dpi: resolution.
    lambda_max: draw the clip as a dashed line (None or 0: none).

  Returns:
    `output_png`.

  Raises:
    ValueError: no runs, or λ values that are negative or not finite.
  """
  if not runs:
    raise ValueError("nothing to plot: no runs given")
  series = []
  for label, steps, values in runs:
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
      raise ValueError(f"{label}: λ values must be finite and >= 0")
    series.append((label, steps, np.maximum(values, 1e-6)))
  return plot_series(series, "training step", "Lagrange multiplier λ", output_png,
                     title or "D-CO: λ trajectories", logy=True, hline=lambda_max or None,
                     hline_label="clip", marker=None, legend="upper right", dpi=dpi)


def plot_series(series: Sequence[tuple[str, Sequence[float], Sequence[float]]], xlabel: str,
                ylabel: str, output_png: str, title: str = "", logx: bool = False,
                logy: bool = False, hline: float | None = None, hline_label: str | None = None,
                marker: str | None = "o", legend: str = "lower right", dpi: int = 120) -> str:
  """Line plot of several series on one pair of axes.

  Args:
    series: list of (label, xs, ys), one line each.
    xlabel, ylabel: the axes' labels.
    output_png: the PNG to write.
    title: the figure's title.
    logx: a log x axis, ticked at every x value of the series.
    logy: a log y axis.
    hline: the y of a dashed reference line (None: none).
    hline_label: its legend entry.
    marker: the points' marker (None: lines only).
    legend: the legend's location.
    dpi: resolution.

  Returns:
    `output_png`.

  Raises:
    ValueError: no series.
  """
  if not series:
    raise ValueError("nothing to plot: no series given")
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  try:
    for label, xs, ys in series:
      ax.plot(xs, ys, marker=marker, markersize=4, linewidth=1.5, label=label)
    if hline is not None:
      ax.axhline(hline, color="gray", linestyle="--", linewidth=1, label=hline_label)
    if logy:
      ax.set_yscale("log")
    if logx:
      ax.set_xscale("log")
      ticks = sorted({x for _, xs, _ in series for x in xs})
      ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
      ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.4)
    ax.legend(loc=legend, fontsize="small")
    save_figure(fig, output_png, dpi)
  finally:
    plt.close(fig)
  return output_png


def plot_embeddings(panels: Sequence[tuple[str, np.ndarray]], labels: np.ndarray,
                    output_png: str, dpi: int = 120) -> None:
  """Scatter plots of 2-D bottleneck codes coloured by digit (the decorrelation paper's
  figure of the n = 2 embedding).

  Args:
    panels: list of (title, codes [N, 2]), one panel each.
    labels: the N digit labels (0-9) of the codes.
    output_png: the PNG to write.
    dpi: resolution.

  Raises:
    ValueError: codes that are not 2-D.
  """
  plt = pyplot()
  fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
  for ax, (title, codes) in zip(axes[0], panels):
    if codes.shape[1] != 2:
      raise ValueError(f"embedding plot needs 2-D codes, got {codes.shape}")
    points = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=2, alpha=0.6,
                        vmin=-0.5, vmax=9.5, rasterized=True)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("y₁")
    ax.set_ylabel("y₂")
  fig.colorbar(points, ax=axes[0].tolist(), ticks=range(10), label="digit")
  save_figure(fig, output_png, dpi)
  plt.close(fig)


# --- The green trade-off: quality at equal rate against encoder cost --------------------
_GREEN_STYLE = {"dense": ("s", "black"), "control": ("D", "gray"), "sparse": ("o", "tab:green"),
                "reference": ("^", "tab:blue")}


def plot_green(panels: Sequence[dict[str, Any]], output_png: str = "green.png",
               title: str | None = None, dpi: int = 120) -> str:
  """ΔPSNR at equal bpp against encoder kMAC per pixel (log axis), one panel per rate;
  classical codecs as dashed horizontal lines (their encoders cost next to nothing on
  this axis).

  Args:
    panels: tfcae.evaluation.green.panels_of_table's (or tradeoff_panel's) dicts.
    output_png: the PNG to write.
    title: the figure's overall title (None: none).
    dpi: resolution.

  Returns:
    `output_png`.

  Raises:
    ValueError: no panels.
  """
  if not panels:
    raise ValueError("nothing to plot: no panels (no model was warm-started from the curve)")
  plt = pyplot()
  fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.8), squeeze=False)
  try:
    for ax, panel in zip(axes[0], panels):
      seen = set()
      for p in panel["points"]:
        marker, color = _GREEN_STYLE.get(p["kind"], ("o", "tab:green"))
        label = {"dense": "dense zoo", "control": "dense control (same steps)",
                 "sparse": "sparse (double descent)", "reference": "CompressAI"}.get(p["kind"])
        ax.plot(p["encoder_kmacs"], p["delta_psnr"], marker=marker, color=color,
                linestyle="none", markersize=7, label=None if label in seen else label)
        seen.add(label)
        ax.annotate(p["label"].replace("compressai-bmshj2018-", "CompressAI "),
                    (p["encoder_kmacs"], p["delta_psnr"]), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")
      for line, style in zip(panel["lines"], ("--", ":", "-.", (0, (5, 1)))):
        ax.axhline(line["delta_psnr"], color="tab:red", linestyle=style, linewidth=1,
                   label=line["label"])
      ax.axhline(0, color="black", linewidth=0.6)
      ax.set_xscale("log")
      kmacs = [p["encoder_kmacs"] for p in panel["points"]]
      ticks = [t for t in (1, 2, 3, 5, 10, 20, 50, 100)
               if min(kmacs) / 1.5 <= t <= max(kmacs) * 1.5]
      ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
      ax.minorticks_off()
      ax.set_xlim(min(kmacs) / 1.4, max(kmacs) * 1.8)
      ax.set_xlabel("encoder kMAC per pixel (log)")
      ax.set_ylabel("Kodak ΔPSNR at equal bpp vs the dense zoo [dB]")
      ax.set_title(f"{panel.get('name', '')} at {panel['bpp']:.2f} bpp")
      ax.grid(True, which="both", alpha=0.4)
      ax.legend(loc="best", fontsize="small")
    if title:
      fig.suptitle(title)
    save_figure(fig, output_png, dpi)
  finally:
    plt.close(fig)
  return output_png
