"""Bjontegaard delta rate and delta PSNR between two rate-distortion curves.

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
           JVET CTC spreadsheet for VTM (JVET-K0491 / the "bjontegaard" package
           used by CompressAI): monotone, no overshoot between points, so it
           stays sane on long curves where a single cubic can wiggle.

Quality can be any "higher is better" measure; MS-SSIM must be passed in dB
(tfcae.metrics.ms_ssim_db), where it is close to linear in log-rate.
"""
import math

import numpy as np

METHODS = ("cubic", "pchip")
MIN_POINTS = 4


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
  return np.log(rates), dist


def _integral(x, y, lo, hi, method, name):
  """Integral over [lo, hi] of the curve y(x) through the points (x, y)."""
  order = np.argsort(x)
  x, y = x[order], y[order]
  if method == "cubic":
    poly = np.polyint(np.polyfit(x, y, 3))
    return np.polyval(poly, hi) - np.polyval(poly, lo)
  if method == "pchip":
    if np.any(np.diff(x) <= 0):
      raise ValueError(f"{name}: pchip needs distinct values on the fitted axis")
    from scipy.interpolate import PchipInterpolator
    return float(PchipInterpolator(x, y).integrate(lo, hi))
  raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def _overlap(a, b, what):
  lo = max(a.min(), b.min())
  hi = min(a.max(), b.max())
  if not hi > lo:
    raise ValueError(f"the two curves do not overlap in {what} "
                     f"([{a.min():.4g}, {a.max():.4g}] vs [{b.min():.4g}, {b.max():.4g}])")
  return lo, hi


def bd_rate(rates_anchor, dist_anchor, rates_test, dist_test, method="cubic"):
  """Bjontegaard delta rate of `test` against `anchor`, in percent.

  rates: bits per pixel (or any rate unit, the same for both curves);
  dist: quality, higher is better (PSNR in dB, MS-SSIM in dB).
  """
  log_ra, da = _prepare(rates_anchor, dist_anchor, "anchor")
  log_rt, dt = _prepare(rates_test, dist_test, "test")
  lo, hi = _overlap(da, dt, "quality")
  int_a = _integral(da, log_ra, lo, hi, method, "anchor")
  int_t = _integral(dt, log_rt, lo, hi, method, "test")
  mean_diff = (int_t - int_a) / (hi - lo)
  return float((math.exp(mean_diff) - 1) * 100)


def bd_psnr(rates_anchor, dist_anchor, rates_test, dist_test, method="cubic"):
  """Bjontegaard delta quality (BD-PSNR) of `test` against `anchor`, in quality units (dB)."""
  log_ra, da = _prepare(rates_anchor, dist_anchor, "anchor")
  log_rt, dt = _prepare(rates_test, dist_test, "test")
  lo, hi = _overlap(log_ra, log_rt, "log-rate")
  int_a = _integral(log_ra, da, lo, hi, method, "anchor")
  int_t = _integral(log_rt, dt, lo, hi, method, "test")
  return float((int_t - int_a) / (hi - lo))


def curve(results, metric):
  """(bpp, quality) arrays of a results dict; metric "psnr" or "ms-ssim" (in dB)."""
  from tfcae.metrics import ms_ssim_db
  r = results["results"]
  rates = np.asarray(r["bpp"], dtype=np.float64)
  if metric == "psnr":
    quality = np.asarray(r["psnr-rgb"], dtype=np.float64)
  elif metric == "ms-ssim":
    quality = np.asarray([ms_ssim_db(v) for v in r["ms-ssim-rgb"]], dtype=np.float64)
  else:
    raise ValueError(f"unknown metric {metric!r}; choose psnr or ms-ssim")
  return rates, quality


def quality_at_rate(results, metric, bpp, extrapolate=False):
  """A curve's quality (PSNR, or MS-SSIM in dB) at `bpp`, linear in log-rate between its
  measured points (the equal-rate comparison of one operating point with a codec). Outside
  the measured range: NaN, or with `extrapolate` the line through the two nearest points."""
  rates, quality = curve(results, metric)
  order = np.argsort(rates)
  x, y, t = np.log(rates[order]), quality[order], np.log(bpp)
  if x[0] <= t <= x[-1]:
    return float(np.interp(t, x, y))
  if not extrapolate or len(x) < 2:
    return float("nan")
  i = 0 if t < x[0] else len(x) - 2
  return float(y[i] + (y[i + 1] - y[i]) * (t - x[i]) / (x[i + 1] - x[i]))


def bd_table(results_list, anchor, method="cubic"):
  """BD-rate and BD-quality of every curve against the one named `anchor`.

  Returns {"anchor": name, "method": method, "rows": [{"name", "bd_rate_psnr",
  "bd_psnr", "bd_rate_ms_ssim", "bd_ms_ssim_db"}, ...]}; a metric that cannot be
  computed for a pair (too few points, no overlap) is None with the reason in
  "notes".
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


def format_table(table):
  """The bd_table as aligned text (for the terminal) and as markdown lines."""
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
