"""Bjontegaard delta rate and delta PSNR between two rate-distortion curves, and a curve's
quality at a given rate.

G. Bjontegaard, "Calculation of average PSNR differences between RD-curves",
ITU-T SG16/Q6 VCEG, document VCEG-M33, Austin, April 2001.

BD-rate: log(rate) is fitted as a function of quality for each curve, both fits
are integrated over the quality interval the two curves share, and the mean
log-rate difference is turned into a percentage, (exp(mean diff) - 1) * 100.
Negative means the test codec needs fewer bits than the anchor at equal quality.
BD-PSNR (BD-quality) swaps the axes: quality as a function of log(rate), mean
quality difference over the shared log-rate interval.

Two interpolations are offered:
  "cubic"  the original VCEG-M33 method: least-squares cubic polynomial
           (exact through 4 points; fitted to more points).
  "pchip"  piecewise cubic Hermite interpolation (Fritsch-Carlson), as in the
           JVET CTC spreadsheet for VTM (JVET-K0491): monotone, no overshoot
           between points, so it stays sane on long curves where a single cubic
           can wiggle.

The fitting and integration are the maintained `bjontegaard` package's (FAU-LMS, the
one CompressAI uses; its "cubic" and "pchip" are the two above). This module keeps what
the package leaves to its caller: the checks with one-line reasons (at least 4 finite
points, positive rates, overlapping curves, distinct values for pchip), sorting the
points (the package expects them in order along the fitted axis), curves with different
numbers of points, and no warning for a small overlap (the tables print the figure; the
overlap is the caller's to judge). The package fits log10(rate) rather than ln(rate):
both interpolations are invariant to that scaling, so the figures are the same (to
floating point; tests/test_bdrate.py checks the published Kodak ones).

Quality can be any "higher is better" measure; MS-SSIM must be passed in dB
(tfcae.objectives.metrics.ms_ssim_db), where it is close to linear in log-rate.
"""
from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np

__all__ = ["METHODS", "INTERPOLATIONS", "MIN_POINTS", "bd_rate", "bd_psnr", "curve",
           "value_at_rate", "quality_at_rate", "bd_table", "format_table"]

METHODS = ("cubic", "pchip")
# How value_at_rate interpolates between a curve's measured points.
INTERPOLATIONS = ("linear", "pchip")
MIN_POINTS = 4

# A curve's rates or quality values: any sequence of numbers.
_Values = Union[Sequence[float], np.ndarray]


def _prepare(rates, dist, name):
  rates = np.asarray(rates, dtype=np.float64).ravel()
  dist = np.asarray(dist, dtype=np.float64).ravel()
  if rates.shape != dist.shape:
    raise ValueError(f"{name}: {rates.size} rates but {dist.size} quality values")
  if rates.size < MIN_POINTS:
    raise ValueError(f"{name}: Bjontegaard metrics need at least {MIN_POINTS} rate-distortion "
                     f"points, got {rates.size}")
  if not (np.all(np.isfinite(rates)) and np.all(np.isfinite(dist))):
    raise ValueError(f"{name}: rates and quality values must be finite")
  if np.any(rates <= 0):
    raise ValueError(f"{name}: rates must be positive (log-rate is fitted)")
  return rates, dist


def _check_method(method):
  if method not in METHODS:
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def _sorted_along(axis, rates, dist, method, name):
  """The points in increasing order of `axis` (the package's interpolators need it)."""
  order = np.argsort(axis, kind="stable")
  if method == "pchip" and np.any(np.diff(axis[order]) <= 0):
    raise ValueError(f"{name}: pchip needs distinct values on the fitted axis")
  return rates[order], dist[order]


def _overlap(a, b, what):
  lo = max(a.min(), b.min())
  hi = min(a.max(), b.max())
  if not hi > lo:
    raise ValueError(f"the two curves do not overlap in {what} "
                     f"([{a.min():.4g}, {a.max():.4g}] vs [{b.min():.4g}, {b.max():.4g}])")
  return lo, hi


def _package():
  # Imported on first use: the package imports matplotlib.pyplot, which the curve and
  # equal-rate helpers below (and the tools that only read results) do not need.
  import bjontegaard
  return bjontegaard


# Both curves may have any number (>= MIN_POINTS) of points; no overlap warning (above).
_OPTIONS = {"require_matching_points": False, "min_overlap": 0}


def bd_rate(rates_anchor: _Values, dist_anchor: _Values, rates_test: _Values,
            dist_test: _Values, method: str = "cubic") -> float:
  """Bjontegaard delta rate of `test` against `anchor`, in percent.

  Args:
    rates_anchor: the anchor's rates, bits per pixel (or any rate unit, the same for
      both curves), positive, at least MIN_POINTS, in any order.
    dist_anchor: the anchor's quality at those rates, higher is better (PSNR in dB,
      MS-SSIM in dB).
    rates_test: the test curve's rates (any number of points >= MIN_POINTS).
    dist_test: the test curve's quality.
    method: "cubic" or "pchip" (METHODS).

  Returns:
    The mean rate difference over the shared quality interval, in percent; negative
    when the test codec needs fewer bits at equal quality.

  Raises:
    ValueError: too few, non-finite or non-positive points, curves that do not overlap
      in quality, repeated quality values with pchip, or an unknown method.
  """
  ra, da = _prepare(rates_anchor, dist_anchor, "anchor")
  rt, dt = _prepare(rates_test, dist_test, "test")
  _overlap(da, dt, "quality")
  _check_method(method)
  ra, da = _sorted_along(da, ra, da, method, "anchor")
  rt, dt = _sorted_along(dt, rt, dt, method, "test")
  return float(_package().bd_rate(ra, da, rt, dt, method, **_OPTIONS))


def bd_psnr(rates_anchor: _Values, dist_anchor: _Values, rates_test: _Values,
            dist_test: _Values, method: str = "cubic") -> float:
  """Bjontegaard delta quality (BD-PSNR) of `test` against `anchor`.

  Args:
    rates_anchor, dist_anchor, rates_test, dist_test, method: as for bd_rate.

  Returns:
    The mean quality difference over the shared log-rate interval, in the quality's
    units (dB); positive when the test codec is better at equal rate.

  Raises:
    ValueError: as bd_rate, with the overlap checked in log-rate and pchip needing
      distinct rates.
  """
  ra, da = _prepare(rates_anchor, dist_anchor, "anchor")
  rt, dt = _prepare(rates_test, dist_test, "test")
  _overlap(np.log(ra), np.log(rt), "log-rate")
  _check_method(method)
  ra, da = _sorted_along(ra, ra, da, method, "anchor")
  rt, dt = _sorted_along(rt, rt, dt, method, "test")
  return float(_package().bd_psnr(ra, da, rt, dt, method, **_OPTIONS))


def curve(results: dict[str, Any], metric: str) -> tuple[np.ndarray, np.ndarray]:
  """The rate-distortion curve of a results dict.

  Args:
    results: a results dict (tfcae.evaluation.results layout).
    metric: "psnr" (the `psnr-rgb` means) or "ms-ssim" (the `ms-ssim-rgb` means,
      converted to dB).

  Returns:
    (bpp, quality): float64 arrays, one value per operating point, in the file's order.

  Raises:
    ValueError: an unknown metric.
  """
  from tfcae.objectives.metrics import ms_ssim_db
  r = results["results"]
  rates = np.asarray(r["bpp"], dtype=np.float64)
  if metric == "psnr":
    quality = np.asarray(r["psnr-rgb"], dtype=np.float64)
  elif metric == "ms-ssim":
    quality = np.asarray([ms_ssim_db(v) for v in r["ms-ssim-rgb"]], dtype=np.float64)
  else:
    raise ValueError(f"unknown metric {metric!r}; choose psnr or ms-ssim")
  return rates, quality


def value_at_rate(rates: _Values, values: _Values, bpp: float, method: str = "linear",
                  extrapolate: bool = False) -> float:
  """A curve's value at `bpp`, interpolated in log-rate between its measured points:
  the equal-rate comparison of an operating point with a codec or a reference curve.

  Args:
    rates: the curve's rates (bpp), one per point, in any order.
    values: the curve's values at those rates.
    bpp: the rate to read the curve at.
    method: "linear": straight lines between the points (np.interp); "pchip": the
      monotone piecewise cubic through them (scipy), for a curve of few points whose
      bends a line would cut.
    extrapolate: outside the measured range, use the line through the two nearest
      points (for either method) instead of returning NaN.

  Returns:
    The interpolated value; NaN outside the measured range without `extrapolate` (or
    with fewer than two points).

  Raises:
    ValueError: an unknown method.
  """
  if method not in INTERPOLATIONS:
    raise ValueError(f"unknown interpolation {method!r}; choose one of "
                     f"{', '.join(INTERPOLATIONS)}")
  rates = np.asarray(rates, dtype=np.float64).ravel()
  values = np.asarray(values, dtype=np.float64).ravel()
  order = np.argsort(rates)
  x, y, t = np.log(rates[order]), values[order], np.log(bpp)
  if x.size and x[0] <= t <= x[-1]:
    if method == "linear":
      return float(np.interp(t, x, y))
    from scipy.interpolate import PchipInterpolator
    return float(PchipInterpolator(x, y)(t))
  if not extrapolate or len(x) < 2:
    return float("nan")
  i = 0 if t < x[0] else len(x) - 2
  return float(y[i] + (y[i + 1] - y[i]) * (t - x[i]) / (x[i + 1] - x[i]))


def quality_at_rate(results: dict[str, Any], metric: str, bpp: float,
                    extrapolate: bool = False, method: str = "linear") -> float:
  """A results dict's quality at `bpp`: value_at_rate of its curve(results, metric).

  Args:
    results: a results dict.
    metric: "psnr" or "ms-ssim" (in dB), as for curve.
    bpp: the rate to read the curve at.
    extrapolate, method: as for value_at_rate.

  Returns:
    PSNR, or MS-SSIM in dB, at `bpp` (NaN outside the curve without `extrapolate`).
  """
  return value_at_rate(*curve(results, metric), bpp, method, extrapolate)


def bd_table(results_list: Sequence[dict[str, Any]], anchor: str,
             method: str = "cubic") -> dict[str, Any]:
  """BD-rate and BD-quality of every curve against the one named `anchor`.

  Args:
    results_list: results dicts, each with a distinct "name" (the anchor included).
    anchor: the name of the reference curve.
    method: "cubic" or "pchip", as for bd_rate.

  Returns:
    {"anchor": name, "method": method, "rows": [{"name", "bd_rate_psnr", "bd_psnr",
    "bd_rate_ms_ssim", "bd_ms_ssim_db"}, ...]}, one row per curve in the given order;
    a metric that cannot be computed for a pair (too few points, no overlap) is None
    with the reason in the row's "notes".

  Raises:
    ValueError: no curve is named `anchor`.
  """
  by_name = {r["name"]: r for r in results_list}
  if anchor not in by_name:
    raise ValueError(f"anchor {anchor!r} is not among the curves ({', '.join(by_name)})")
  rows = []
  for res in results_list:
    row = {"name": res["name"]}
    notes = []
    for metric, rate_key, q_key in (("psnr", "bd_rate_psnr", "bd_psnr"),
                                    ("ms-ssim", "bd_rate_ms_ssim", "bd_ms_ssim_db")):
      ra, da = curve(by_name[anchor], metric)
      rt, dt = curve(res, metric)
      try:
        row[rate_key] = bd_rate(ra, da, rt, dt, method)
        row[q_key] = bd_psnr(ra, da, rt, dt, method)
      except ValueError as e:
        row[rate_key] = row[q_key] = None
        notes.append(f"{metric}: {e}")
    if notes:
      row["notes"] = notes
    rows.append(row)
  return {"anchor": anchor, "method": method, "rows": rows}


def format_table(table: dict[str, Any]) -> tuple[str, str]:
  """A bd_table for people to read.

  Args:
    table: the dict bd_table returns.

  Returns:
    (text, markdown): the table as aligned columns for the terminal, and as a markdown
    table; a metric that could not be computed reads "n/a".
  """
  def fmt(v, unit):
    return "n/a" if v is None else f"{v:+.2f}{unit}"
  header = ("curve", "BD-rate PSNR", "BD-PSNR", "BD-rate MS-SSIM", "BD-MS-SSIM")
  lines = [header]
  for row in table["rows"]:
    lines.append((row["name"], fmt(row["bd_rate_psnr"], " %"), fmt(row["bd_psnr"], " dB"),
                  fmt(row["bd_rate_ms_ssim"], " %"), fmt(row["bd_ms_ssim_db"], " dB")))
  widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
  text = "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines)
  md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  md += ["| " + " | ".join(line) + " |" for line in lines[1:]]
  return text, "\n".join(md)
