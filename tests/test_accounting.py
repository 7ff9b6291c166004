"""tfcae.analysis.accounting and bin/analyze: counts checked against hand-computed values."""
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_tool
from test_reduction import sparse_factorized_model
from tfcae import TfcaeError
from tfcae.analysis import accounting
from tfcae.models import build_model


def _rows(report, part="encoder"):
  return {r["layer"]: r for r in report[part]["layers"]}


def test_dense_macc_counts_by_hand():
  model = build_model({"architecture": "factorized", "num_filters": 64})
  report = accounting.analyze(model)
  rows = _rows(report)
  # conv k²·Cin·Cout/s² at the output's cumulative stride; GDN C²/s².
  assert rows["conv_0"]["maccs_per_pixel"] == 81 * 3 * 64 / 4 ** 2 == 972
  assert rows["gdn_0"]["maccs_per_pixel"] == 64 * 64 / 4 ** 2
  assert rows["conv_1"]["maccs_per_pixel"] == 25 * 64 * 64 / 8 ** 2
  assert rows["gdn_1"]["maccs_per_pixel"] == 64 * 64 / 8 ** 2
  assert rows["conv_2"]["maccs_per_pixel"] == 25 * 64 * 64 / 16 ** 2
  total = report["encoder"]["total"]
  assert total["maccs_per_pixel"] == 972 + 256 + 1600 + 64 + 400
  assert total["params"] == (81 * 3 * 64 + 64) + 2 * (64 + 64 * 64) + 2 * (25 * 64 * 64 + 64)
  assert total["memory_dense_bytes"] == 4 * total["params"]
  assert total["macc_reduction"] == 0. and total["maccs_per_pixel_reduced"] == 3292
  # Decoder: a transposed conv does k²·Cin·Cout per input position (input stride s).
  dec = _rows(report, "decoder")
  assert dec["deconv_0"]["maccs_per_pixel"] == 25 * 64 * 64 / 16 ** 2
  assert dec["deconv_2"]["maccs_per_pixel"] == 81 * 64 * 3 / 4 ** 2
  assert report["decoder"]["total"]["maccs_per_pixel"] == 3292


def test_sparse_model_counts_by_hand():
  model = sparse_factorized_model()
  report = accounting.analyze(model)
  rows = _rows(report)
  conv0 = rows["conv_0"]
  # Dead filters 1, 3, 6 and dead input channel 2 of a 9×9×3×8 kernel.
  kernel_zeros = 3 * 81 * 3 + 81 * 8 - 3 * 81
  assert conv0["kernel_zeros"] == kernel_zeros and conv0["kernel_params"] == 81 * 3 * 8
  assert conv0["zero_filters"] == 3 and conv0["zero_input_channels"] == 1
  assert conv0["dead_not_removable"] == 1
  # Bias of filter 1 is 0 too. Sparse storage: 4 bytes per non-zero + 1 bit per weight.
  assert conv0["zeros"] == kernel_zeros + 1
  assert conv0["memory_sparse_bytes"] == (4 * (81 * 3 * 8 - kernel_zeros + 7)
                                          + math.ceil(81 * 3 * 8 / 8) + 1)
  # After removal: conv_0 2 -> 6, gdn_0 6, conv_1 5 -> 7, gdn_1 7, conv_2 7 -> 4.
  reduced = {"conv_0": 81 * 2 * 6 / 16, "gdn_0": 36 / 16, "conv_1": 25 * 5 * 7 / 64,
             "gdn_1": 49 / 64, "conv_2": 25 * 7 * 4 / 256}
  for name, value in reduced.items():
    assert rows[name]["maccs_per_pixel_reduced"] == pytest.approx(value)
  total = report["encoder"]["total"]
  dense = 81 * 3 * 8 / 16 + 64 / 16 + 25 * 64 / 64 + 64 / 64 + 25 * 8 * 6 / 256
  assert total["maccs_per_pixel"] == pytest.approx(dense)
  assert total["macc_reduction"] == pytest.approx(1 - sum(reduced.values()) / dense)
  params_reduced = (81 * 2 * 6 + 6) + (6 + 36) + (25 * 5 * 7 + 7) + (7 + 49) + (25 * 7 * 4 + 4)
  assert total["params_reduced"] == params_reduced
  assert total["memory_reduced_bytes"] == 4 * params_reduced
  kernels = [model.analysis_transform.get_layer(n).kernel.numpy()
             for n in ("conv_0", "conv_1", "conv_2")]
  assert total["S"] == pytest.approx(sum((k == 0).sum() for k in kernels)
                                     / sum(k.size for k in kernels))
  assert "conv_0" in accounting.format_report(report)


def test_hyperprior_accounting_covers_hyper_transforms():
  model = build_model({"architecture": "hyperprior", "num_filters": 8, "hyper_filters": 4})
  report = accounting.analyze(model)
  rows = _rows(report)
  # Hyper-analysis at latent stride 16: 3×3 s1 on 8 channels, then two stride-2 convs.
  assert rows["hyper_analysis/conv_0"]["maccs_per_pixel"] == 9 * 8 * 4 / 16 ** 2
  assert rows["hyper_analysis/conv_2"]["maccs_per_pixel"] == 25 * 4 * 4 / 64 ** 2
  assert "hyper_synthesis/deconv_0" in _rows(report, "decoder")


def test_an_integer_hyper_synthesis_costs_what_the_float_one_does():
  """The integer network (tfcae.models.integer) runs the float layers' convolutions: the
  same MACs per pixel, layer by layer (the variable-rate zoo model has one)."""
  config = {"architecture": "meanscale-vbr", "num_filters": 8, "hyper_filters": 4,
            "rate_points": 2}
  float_report = accounting.analyze(build_model(config))
  integer_report = accounting.analyze(build_model(dict(config, integer_hyper_synthesis=True)))
  float_rows, integer_rows = _rows(float_report, "decoder"), _rows(integer_report, "decoder")
  assert set(integer_rows) == set(float_rows)
  for name, row in float_rows.items():
    assert integer_rows[name]["maccs_per_pixel"] == row["maccs_per_pixel"], name
  assert [integer_rows[f"hyper_synthesis/deconv_{i}"]["maccs_per_pixel"] for i in range(3)] \
      == [25 * 4 * 4 / 64 ** 2, 25 * 4 * 4 / 32 ** 2, 9 * 4 * 2 * 8 / 16 ** 2]


def _save_model_dir(model, model_dir):
  """A minimal bin/train directory: train_config.json + a checkpoint (no export)."""
  os.makedirs(model_dir, exist_ok=True)
  with open(os.path.join(model_dir, "train_config.json"), "w", encoding="utf-8") as f:
    json.dump({"architecture": "factorized", "num_filters": 8, "latent_channels": 6,
               "hyper_filters": 0}, f)
  tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                             os.path.join(model_dir, "checkpoints"), 1).save()


def test_load_trained_restores_weights(tmp_path):
  from tfcae.training.export import load_trained  # the one loader (accounting's alias is gone)
  model = sparse_factorized_model()
  _save_model_dir(model, tmp_path / "m")
  loaded = load_trained(str(tmp_path / "m"), for_compression=False)
  for a, b in zip(model.analysis_transform.weights, loaded.analysis_transform.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  with pytest.raises(TfcaeError, match="no such model directory"):
    load_trained(str(tmp_path / "missing"))
  with pytest.raises(TfcaeError, match="not a tfcae model directory"):
    load_trained(str(tmp_path))


@pytest.mark.slow
def test_bin_analyze(tmp_path):
  _save_model_dir(sparse_factorized_model(), tmp_path / "m")
  output = tmp_path / "analysis.json"
  result = run_tool("analyze", f"--model_dir={tmp_path / 'm'}", f"--output={output}")
  assert result.returncode == 0, result.stderr
  assert "conv_0" in result.stdout and "MACC reduction" in result.stdout
  report = json.loads(output.read_text())
  assert report["encoder"]["total"]["zero_filters"] == 3 + 1 + 2
  bad = run_tool("analyze", f"--model_dir={tmp_path / 'nope'}")
  assert bad.returncode == 1 and bad.stderr.startswith("error:")
