"""The green trade-off: equal-rate comparisons (tfcae.evaluation.green), the encoder's peak
activation memory (tfcae.analysis.accounting), the trade-off plot (bin/plot --green) and
the zoo-scale Table I's bookkeeping (bench/sparse_table1.py)."""
import json
import math

import pytest

from conftest import run_tool
from test_reduction import sparse_factorized_model
from tfcae.analysis import accounting
from tfcae.evaluation import green
from tfcae.models import build_model

# Three points of a dense curve: +2 dB per doubling of the rate.
CURVE = green.DenseCurve([0.2, 0.4, 0.8], [28., 30., 32.], "dense")


def test_psnr_at_a_rate_is_linear_in_log_bpp_between_neighbours():
  assert CURVE.psnr_at(0.4) == pytest.approx(30.)
  assert CURVE.psnr_at(math.sqrt(0.2 * 0.4)) == pytest.approx(29.)  # halfway in log-rate
  assert CURVE.psnr_at(0.1) is None and CURVE.psnr_at(1.0) is None  # no extrapolation


def test_delta_at_equal_bpp_is_negative_for_a_loss():
  assert green.delta_psnr_at_bpp(CURVE, 0.4, 29.5) == pytest.approx(-0.5)
  assert green.delta_psnr_at_bpp(CURVE, 0.3, 30.) == pytest.approx(
      30. - (28. + 2. * math.log2(0.3 / 0.2)))
  assert green.delta_psnr_at_bpp(CURVE, 2.0, 40.) is None


def test_the_control_is_moved_to_the_sparse_rate_along_the_curve():
  # A control 0.3 dB above the curve at 0.4 bpp; a sparse model on the curve at 0.3 bpp
  # loses those 0.3 dB against it, whatever the rate difference.
  control_psnr = 30.3
  sparse_psnr = CURVE.psnr_at(0.3)
  delta = green.delta_psnr_against_control(CURVE, 0.3, sparse_psnr, 0.4, control_psnr)
  assert delta == pytest.approx(-0.3)
  # A sparse model exactly as good as the control's shifted curve: 0.
  assert green.delta_psnr_against_control(
      CURVE, 0.25, CURVE.psnr_at(0.25) + 0.3, 0.4, control_psnr) == pytest.approx(0.)
  assert green.delta_psnr_against_control(CURVE, 0.1, 25., 0.4, 30.) is None


@pytest.mark.parametrize("bpp, psnr", [([0.2], [28.]), ([0.2, -0.1], [28., 29.]),
                                       ([0.2, 0.4], [28., float("nan")]),
                                       ([0.2, 0.4, 0.8], [28., 29.])])
def test_a_dense_curve_refuses_unusable_points(bpp, psnr):
  with pytest.raises(ValueError):
    green.DenseCurve(bpp, psnr)


def _table():
  """A sparse Table I as bench/sparse_table1.py writes it: a dense warm start at 0.4 bpp,
  its control and two sparse models."""
  points = [{"label": f"factorized/{q}", "bpp": b, "psnr": p, "maccs_per_pixel": 11224.}
            for q, b, p in ((2, 0.2, 28.), (3, 0.4, 30.), (4, 0.8, 32.))]
  models = [
      {"label": "dense_q3", "kind": "control", "init_from": "zoo:factorized/3", "bpp": 0.41,
       "psnr": 30.2, "maccs_per_pixel_reduced": 11224.},
      {"label": "l11_q3", "kind": "sparse", "init_from": "zoo:factorized/3", "bpp": 0.38,
       "psnr": 29.6, "maccs_per_pixel_reduced": 5000.},
      {"label": "l11_other", "kind": "sparse", "init_from": "runs/elsewhere", "bpp": 0.3,
       "psnr": 29., "maccs_per_pixel_reduced": 4000.}]
  return {"reference": {"name": "zoo:factorized", "points": points}, "models": models}


def _results(name, bpp, psnr):
  return {"name": name, "results": {"bpp": bpp, "psnr-rgb": psnr}}


def test_panels_hold_the_dense_model_its_descendants_and_the_references():
  references = [_results("compressai-bmshj2018-factorized", [0.2, 0.8], [29., 33.]),
                _results("jpeg", [0.2, 0.8], [26., 30.])]
  (panel,) = green.panels_of_table(_table(), references)  # one warm start has models
  assert panel["name"] == "factorized/3" and panel["bpp"] == 0.4
  by_label = {p["label"]: p for p in panel["points"]}
  assert set(by_label) == {"factorized/3", "dense_q3", "l11_q3",
                           "compressai-bmshj2018-factorized"}
  assert by_label["factorized/3"]["delta_psnr"] == pytest.approx(0.)
  assert by_label["factorized/3"]["encoder_kmacs"] == pytest.approx(11.224)
  assert by_label["l11_q3"]["encoder_kmacs"] == pytest.approx(5.)
  assert by_label["l11_q3"]["delta_psnr"] == pytest.approx(
      29.6 - (28. + 2. * math.log2(0.38 / 0.2)))
  # CompressAI at its encoder cost, 1 dB above the dense curve at 0.4 bpp (31 vs 30).
  reference = by_label["compressai-bmshj2018-factorized"]
  assert reference["encoder_kmacs"] == pytest.approx(42.176)
  assert reference["delta_psnr"] == pytest.approx(1.)
  assert panel["lines"] == [{"label": "jpeg", "delta_psnr": pytest.approx(-2.)}]


def test_green_plot_is_written_and_bad_input_is_one_line(tmp_path):
  table = tmp_path / "table.json"
  table.write_text(json.dumps(_table()))
  jpeg = tmp_path / "jpeg.json"
  jpeg.write_text(json.dumps(_results("jpeg", [0.2, 0.8], [26., 30.])))
  out = tmp_path / "green.png"
  r = run_tool("plot", f"--green={table}", f"--results={jpeg}", f"--output={out}")
  assert r.returncode == 0, r.stderr
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  bad = tmp_path / "bad.json"
  bad.write_text(json.dumps({"models": []}))
  r = run_tool("plot", f"--green={bad}", f"--output={tmp_path / 'x.png'}")
  assert r.returncode == 1 and r.stderr.strip().count("\n") == 0
  assert "not a sparse Table I" in r.stderr and not (tmp_path / "x.png").exists()


def test_compressai_encoder_costs_follow_the_counting_convention():
  # CompressAI's bmshj2018-factorized analysis at N = 128, M = 192: four 5x5 stride-2
  # convs, three GDNs (k²·Cin·Cout/s², C²/s²).
  n, m = 128, 192
  factorized = (25 * 3 * n / 4 + n * n / 4 + 25 * n * n / 16 + n * n / 16 + 25 * n * n / 64
                + n * n / 64 + 25 * n * m / 256)
  assert green.REFERENCE_ENCODERS["compressai-bmshj2018-factorized"] == pytest.approx(
      factorized)
  hyper = factorized + 9 * m * n / 256 + 25 * n * n / 1024 + 25 * n * n / 4096
  assert green.REFERENCE_ENCODERS["compressai-bmshj2018-hyperprior"] == pytest.approx(
      hyper)


def test_peak_activation_memory_by_hand():
  # N = 64 dense: the image (3 float32 channels, 12 B/px), conv_0's 64 channels at stride 4
  # (16 B/px), GDN in + out 32 B/px: the peak.
  report = accounting.analyze(build_model({"architecture": "factorized", "num_filters": 64}))
  rows = {r["layer"]: r for r in report["encoder"]["layers"]}
  assert rows["conv_0"]["activation_bytes_per_pixel"] == 4 * 64 / 16
  assert rows["conv_1"]["activation_bytes_per_pixel"] == 4 * 64 / 64
  total = report["encoder"]["total"]
  assert total["peak_activation_bytes_per_pixel"] == 32.
  assert total["peak_activation_bytes_per_pixel_reduced"] == 32.
  # The sparse model keeps 6 of conv_0's 8 filters and 4 of 8 latents; its peak is the
  # image rescaling (12 + 12 B/px), in both; the reduced encoder re-inserts all 8 latents.
  report = accounting.analyze(sparse_factorized_model())
  rows = {r["layer"]: r for r in report["encoder"]["layers"]}
  assert rows["conv_0"]["activation_bytes_per_pixel"] == 4 * 8 / 16
  assert rows["conv_0"]["activation_bytes_per_pixel_reduced"] == 4 * 6 / 16
  assert rows["conv_2"]["activation_bytes_per_pixel_reduced"] == 4 * 4 / 256
  total = report["encoder"]["total"]
  assert total["peak_activation_bytes_per_pixel"] == total[
      "peak_activation_bytes_per_pixel_reduced"] == 24.
  assert "peak activation memory 24.0 → 24.0 bytes per pixel" in accounting.format_report(
      report)


def test_the_trade_off_lines_of_a_zoo_card():
  report = accounting.analyze(sparse_factorized_model())
  card = {"name": "factorized-l11/3", "kodak": {"images": 24, "bpp": 0.23, "psnr-rgb": 27.4,
                                                "ms-ssim-rgb": 0.94},
          "encoder": {"dense_sibling": "factorized/3",
                      "dense_sibling_kodak": {"bpp": 0.245, "psnr-rgb": 27.67},
                      "delta_psnr_at_equal_bpp": -0.12}}
  text = accounting.format_tradeoff(report, card)
  total = report["encoder"]["total"]
  assert f"{total['maccs_per_pixel_reduced'] / 1e3:.2f} kMAC/px" in text
  assert "0.230 bpp, 27.40 dB PSNR" in text and "-0.12 dB" in text
  assert "dense sibling factorized/3: 0.245 bpp" in text


def test_controls_are_matched_by_lambda_and_the_table_shows_both_deltas():
  models = [
      {"label": "dense_q3", "kind": "control", "lmbda": 0.0035, "bpp": 0.41, "psnr": 30.2},
      {"label": "dense_dco", "kind": "control", "lmbda": 0.0035, "objective": "dco",
       "bpp": 0.5, "psnr": 31.},
      {"label": "l11_q3", "kind": "sparse", "lmbda": 0.0035, "bpp": 0.38, "psnr": 29.6},
      {"label": "l11_q5", "kind": "sparse", "lmbda": 0.013, "bpp": 0.7, "psnr": 31.}]
  green.attach_controls(models, CURVE)
  assert models[2]["control"] == "dense_q3" and "control" not in models[3]
  assert models[2]["delta_psnr_control"] == pytest.approx(
      29.6 - (30.2 + CURVE.psnr_at(0.38) - CURVE.psnr_at(0.41)))
  row = dict(models[2], S=0.85, maccs_per_pixel_reduced=5100., macc_reduction=0.545,
             memory_reduction_sparse=0.8, memory_reduction_reduced=0.6,
             peak_activation_bytes_per_pixel=64., peak_activation_bytes_per_pixel_reduced=40.,
             ms_ssim=0.94, delta_psnr_zoo=-0.31, relative_loss_db=-0.5)
  text = green.table1_markdown({"models": [row], "reference": _table()["reference"]})
  line = [l for l in text.splitlines() if l.startswith("| l11_q3")][0]
  assert "| 85.0% | 5.10 | 54.5% |" in line and "| 37.5% |" in line
  assert f"-0.31 / {row['delta_psnr_control']:+.2f}" in line
  assert "| ℓ1,1 | 83% | 27% | 82% | -1.2 |" in text
