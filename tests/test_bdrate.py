"""Bjontegaard metrics on curves whose answer is known in closed form."""
import math

import numpy as np
import pytest

from tfcae import bdrate

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
  from tfcae.bdrate import quality_at_rate
  results = {"results": {"bpp": [0.5, 0.25, 1.0], "psnr-rgb": [30., 28., 32.],
                         "ms-ssim-rgb": [0.95, 0.9, 0.97]}}
  assert quality_at_rate(results, "psnr", 0.5) == pytest.approx(30.)
  assert quality_at_rate(results, "psnr", math.sqrt(0.125)) == pytest.approx(29.)
  assert math.isnan(quality_at_rate(results, "psnr", 2.))
  assert quality_at_rate(results, "psnr", 2., extrapolate=True) == pytest.approx(34.)
  assert quality_at_rate(results, "psnr", 0.125, extrapolate=True) == pytest.approx(26.)
  assert quality_at_rate(results, "ms-ssim", 1.) == pytest.approx(-10 * math.log10(0.03))
