"""Bjontegaard metrics on curves whose answer is known in closed form, and on the Kodak
curves of docs/benchmark: the `bjontegaard` package that bd_rate/bd_psnr delegate to gives
the figures our own NumPy/SciPy fits gave before."""
import json
import math
import os
import warnings

import numpy as np
import pytest

from tfcae.evaluation import bdrate

RATES = np.array([0.12, 0.25, 0.5, 1.0, 1.9])
PSNR = np.array([26.1, 28.9, 31.8, 35.0, 38.2])


@pytest.mark.parametrize("method", bdrate.METHODS)
def test_against_itself_is_zero(method):
  assert bdrate.bd_rate(RATES, PSNR, RATES, PSNR, method) == pytest.approx(0, abs=1e-9)
  assert bdrate.bd_psnr(RATES, PSNR, RATES, PSNR, method) == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("method", bdrate.METHODS)
@pytest.mark.parametrize("scale", [0.9, 1.25])
def test_scaled_rates(method, scale):
  # Scaling every rate by s shifts log-rate by log(s) everywhere: BD-rate = (s-1)*100.
  value = bdrate.bd_rate(RATES, PSNR, RATES * scale, PSNR, method)
  assert value == pytest.approx((scale - 1) * 100, abs=0.1)
  if scale == 0.9:
    assert -10.1 < value < -9.9


def test_shifted_quality_gives_bd_psnr():
  # Curve 0.5 dB better everywhere: BD-PSNR = +0.5, and BD-rate is negative.
  assert bdrate.bd_psnr(RATES, PSNR, RATES, PSNR + 0.5) == pytest.approx(0.5, abs=1e-9)
  assert bdrate.bd_rate(RATES, PSNR, RATES, PSNR + 0.5) < -3
  assert bdrate.bd_rate(RATES, PSNR + 0.5, RATES, PSNR) > 3


def test_linear_log_rate_closed_form():
  # PSNR = a + b*ln(R) for both curves, test shifted by d dB: exactly
  # log-rate differs by -d/b, so BD-rate = exp(-d/b) - 1, for both methods.
  rates = np.geomspace(0.1, 2.0, 6)
  a, b, d = 35.0, 4.0, 0.8
  for method in bdrate.METHODS:
    value = bdrate.bd_rate(rates, a + b * np.log(rates), rates, a + d + b * np.log(rates), method)
    assert value == pytest.approx((math.exp(-d / b) - 1) * 100, abs=1e-6)


def test_unsorted_input_is_accepted():
  order = [3, 0, 4, 1, 2]
  assert bdrate.bd_rate(RATES, PSNR, RATES[order] * 0.9, PSNR[order]) == pytest.approx(-10, abs=0.1)


def test_errors():
  with pytest.raises(ValueError, match="at least 4"):
    bdrate.bd_rate(RATES[:3], PSNR[:3], RATES, PSNR)
  with pytest.raises(ValueError, match="rates but"):
    bdrate.bd_rate(RATES, PSNR[:4], RATES, PSNR)
  with pytest.raises(ValueError, match="do not overlap"):
    bdrate.bd_rate(RATES, PSNR, RATES, PSNR + 20)
  with pytest.raises(ValueError, match="do not overlap"):
    bdrate.bd_psnr(RATES, PSNR, RATES * 100, PSNR)
  with pytest.raises(ValueError, match="positive"):
    bdrate.bd_rate(RATES - 0.5, PSNR, RATES, PSNR)
  with pytest.raises(ValueError, match="finite"):
    bdrate.bd_rate(RATES, np.append(PSNR[:-1], np.nan), RATES, PSNR)
  with pytest.raises(ValueError, match="unknown method"):
    bdrate.bd_rate(RATES, PSNR, RATES, PSNR, method="spline")
  with pytest.raises(ValueError, match="distinct"):
    bdrate.bd_rate(RATES, [26, 28, 28, 35, 38], RATES, PSNR, method="pchip")


def _results(name, rates, psnr, msssim):
  return {"name": name, "results": {"bpp": list(rates), "psnr-rgb": list(psnr),
                                    "ms-ssim-rgb": list(msssim)}}


def test_bd_table_uses_ms_ssim_in_db():
  msssim_db = np.array([10.0, 12.5, 15.0, 17.5, 20.0])
  msssim = 1 - 10 ** (-msssim_db / 10)
  anchor = _results("jpeg", RATES, PSNR, msssim)
  test = _results("new", RATES * 0.8, PSNR, msssim)
  short = _results("short", RATES[:3], PSNR[:3], msssim[:3])
  table = bdrate.bd_table([anchor, test, short], "jpeg")
  rows = {r["name"]: r for r in table["rows"]}
  assert rows["jpeg"]["bd_rate_psnr"] == pytest.approx(0, abs=1e-9)
  assert rows["new"]["bd_rate_psnr"] == pytest.approx(-20, abs=0.1)
  assert rows["new"]["bd_rate_ms_ssim"] == pytest.approx(-20, abs=0.1)
  assert rows["short"]["bd_rate_psnr"] is None and "at least 4" in rows["short"]["notes"][0]
  text, md = bdrate.format_table(table)
  assert "-20.00 %" in text and md.count("\n") == 4
  with pytest.raises(ValueError, match="anchor"):
    bdrate.bd_table([test], "jpeg")


def test_quality_at_rate_interpolates_in_log_rate_and_extrapolates_on_request():
  import math
  from tfcae.evaluation.bdrate import quality_at_rate
  results = {"results": {"bpp": [0.5, 0.25, 1.0], "psnr-rgb": [30., 28., 32.],
                         "ms-ssim-rgb": [0.95, 0.9, 0.97]}}
  assert quality_at_rate(results, "psnr", 0.5) == pytest.approx(30.)
  assert quality_at_rate(results, "psnr", math.sqrt(0.125)) == pytest.approx(29.)
  assert math.isnan(quality_at_rate(results, "psnr", 2.))
  assert quality_at_rate(results, "psnr", 2., extrapolate=True) == pytest.approx(34.)
  assert quality_at_rate(results, "psnr", 0.125, extrapolate=True) == pytest.approx(26.)
  assert quality_at_rate(results, "ms-ssim", 1.) == pytest.approx(-10 * math.log10(0.03))


def test_value_at_rate_pchip_and_errors():
  from scipy.interpolate import PchipInterpolator
  rates, psnr = RATES[[2, 0, 4, 1, 3]], PSNR[[2, 0, 4, 1, 3]]  # any order
  t = 0.7
  expected = float(PchipInterpolator(np.log(RATES), PSNR)(np.log(t)))
  assert bdrate.value_at_rate(rates, psnr, t, "pchip") == pytest.approx(expected, abs=1e-12)
  assert bdrate.value_at_rate(rates, psnr, t) == pytest.approx(
      float(np.interp(np.log(t), np.log(RATES), PSNR)), abs=1e-12)
  assert math.isnan(bdrate.value_at_rate(rates, psnr, 3., "pchip"))
  assert bdrate.value_at_rate(rates, psnr, 0.5, "pchip") == pytest.approx(31.8)
  with pytest.raises(ValueError, match="unknown interpolation"):
    bdrate.value_at_rate(rates, psnr, t, "cubic")


# --- through the `bjontegaard` package -------------------------------------------------
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARK = os.path.join(REPO, "docs", "benchmark")

# Kodak (24 images) against JPEG, computed by the NumPy/SciPy implementation this module
# had before it delegated to the package (np.polyfit/np.polyint on ln-rate, scipy's
# PchipInterpolator.integrate): (curve, metric, method, BD-rate %, BD-quality dB).
TODAY = [
    ("webp", "psnr", "cubic", -36.64187640380828, 2.2201782447011214),
    ("webp", "psnr", "pchip", -36.46237261911852, 2.252174613045662),
    ("webp", "ms-ssim", "cubic", -25.153250624473632, 1.4184564916790647),
    ("webp", "ms-ssim", "pchip", -25.443855707959926, 1.4326231939170917),
    # factorized/1-8 (2026-12-06), by the same NumPy/SciPy code (git 783c56d^:tfcae/bdrate.py)
    ("tfcae-zoo-factorized", "psnr", "cubic", -17.136519194853673, 0.7543407704979159),
    ("tfcae-zoo-factorized", "psnr", "pchip", -17.143154972756726, 0.7613442656313268),
    ("tfcae-zoo-factorized", "ms-ssim", "cubic", -23.41605028936897, 1.298348829893969),
    ("tfcae-zoo-factorized", "ms-ssim", "pchip", -23.708708972567706, 1.3112857217201288),
]


def _kodak(name):
  from tfcae.evaluation.results import read_results
  return read_results(os.path.join(BENCHMARK, f"{name}.json"))


@pytest.mark.parametrize("name,metric,method,rate,quality", TODAY)
def test_package_agrees_with_todays_figures_on_kodak(name, metric, method, rate, quality):
  import bjontegaard
  anchor, test = bdrate.curve(_kodak("jpeg"), metric), bdrate.curve(_kodak(name), metric)
  assert bdrate.bd_rate(*anchor, *test, method) == pytest.approx(rate, rel=1e-4)
  assert bdrate.bd_psnr(*anchor, *test, method) == pytest.approx(quality, rel=1e-4)
  # The package on its own (points sorted along the fitted axis, as bdrate passes them).
  by_quality = [(r[np.argsort(q)], q[np.argsort(q)]) for r, q in (anchor, test)]
  by_rate = [(r[np.argsort(r)], q[np.argsort(r)]) for r, q in (anchor, test)]
  options = {"require_matching_points": False, "min_overlap": 0}
  assert bjontegaard.bd_rate(*by_quality[0], *by_quality[1], method, **options) == \
      pytest.approx(rate, rel=1e-4)
  assert bjontegaard.bd_psnr(*by_rate[0], *by_rate[1], method, **options) == \
      pytest.approx(quality, rel=1e-4)


@pytest.mark.parametrize("table", ["bdrate_zoo.json", "bdrate.json"])
def test_published_tables_are_reproduced(table):
  # docs/benchmark's BD tables (bench/kodak_benchmark.py, bin/plot), from their curves;
  # e.g. the zoo's -17.14 % (PSNR) and -23.42 % (MS-SSIM) against JPEG.
  with open(os.path.join(BENCHMARK, table), encoding="utf-8") as f:
    published = json.load(f)
  assert published["method"] == "cubic"  # "rows"; bdrate.json also has "pchip" rows
  curves = [_kodak(row["name"]) for row in published["rows"]]
  for method, rows in (("cubic", published["rows"]), ("pchip", published.get("pchip"))):
    if rows is None:
      continue
    again = bdrate.bd_table(curves, published["anchor"], method)["rows"]
    for old, new in zip(rows, again):
      for key in ("bd_rate_psnr", "bd_psnr", "bd_rate_ms_ssim", "bd_ms_ssim_db"):
        if old[key] is None:
          assert new[key] is None, (method, old["name"], key)
        else:
          assert new[key] == pytest.approx(old[key], rel=1e-4, abs=1e-9), (method, old["name"], key)
    if table == "bdrate_zoo.json" and method == "cubic":  # the figures docs/ quote
      zoo = {r["name"]: r for r in again}["tfcae-zoo-factorized"]
      assert (round(zoo["bd_rate_psnr"], 2), round(zoo["bd_rate_ms_ssim"], 2)) == (-17.14, -23.42)


@pytest.mark.parametrize("method", bdrate.METHODS)
def test_curves_of_different_lengths_and_small_overlap_need_no_options(method):
  # The package by default refuses curves with different numbers of points and warns
  # below 75 % overlap; bdrate accepts both, silently, as it did before delegating.
  a, b, d = 35.0, 4.0, 0.8
  anchor = np.geomspace(0.1, 2.0, 5)
  test = np.geomspace(0.05, 0.3, 7)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    value = bdrate.bd_rate(anchor, a + b * np.log(anchor), test, a + d + b * np.log(test),
                           method)
    quality = bdrate.bd_psnr(anchor, a + b * np.log(anchor), test, a + d + b * np.log(test),
                             method)
  assert value == pytest.approx((math.exp(-d / b) - 1) * 100, abs=1e-6)
  assert quality == pytest.approx(d, abs=1e-6)
