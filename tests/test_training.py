"""Training: resume from checkpoints, config validation, tf.distribute, summary.json."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tfcae import TfcaeError
from tfcae.training import loop as training

from conftest import REPO, SAMPLE_TRAIN, run_tool, tiny_config


def _history_epochs(model_dir):
  with open(os.path.join(model_dir, training.HISTORY_FILE)) as f:
    return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.mark.slow
def test_resume_continues_from_checkpoint(tmp_path):
  model_dir = tmp_path / "run"
  first = training.train(tiny_config(model_dir, epochs=1, steps_per_epoch=5))
  assert first["epochs_completed"] == 1
  reader = tf.train.load_checkpoint(str(model_dir / "checkpoints"))
  saved_iterations = reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")
  assert saved_iterations == 5
  second = training.train(tiny_config(model_dir, epochs=3, steps_per_epoch=5))
  assert second["epochs_completed"] == 3
  assert _history_epochs(model_dir) == [0, 1, 2]  # epoch 0 was not trained again
  reader = tf.train.load_checkpoint(str(model_dir / "checkpoints"))
  assert reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 15
  # A finished run re-run is a no-op that re-exports the same model.
  third = training.train(tiny_config(model_dir, epochs=3, steps_per_epoch=5))
  assert third["fingerprint"] == second["fingerprint"]
  assert _history_epochs(model_dir) == [0, 1, 2]


@pytest.mark.slow
def test_divergence_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  training.train(tiny_config(tmp_path, epochs=1, steps_per_epoch=2))
  good = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
  from tfcae.objectives import terms as objectives
  original = objectives.Rate.value
  monkeypatch.setattr(objectives.Rate, "value", lambda self, ctx: original(self, ctx) * np.nan)
  with pytest.raises(TfcaeError, match="diverged"):
    training.train(tiny_config(tmp_path, epochs=2, steps_per_epoch=2))
  assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")) == good
  assert not (tmp_path / "summary.json").read_text().count("NaN")


@pytest.mark.slow
def test_summary_json(tmp_path):
  summary = training.train(tiny_config(tmp_path, epochs=1, steps_per_epoch=3))
  on_disk = json.loads((tmp_path / "summary.json").read_text())
  assert on_disk == json.loads(json.dumps(summary))
  for split in ("train", "validation"):
    assert {"bpp", "mse", "loss"} <= set(on_disk[split])
    assert all(np.isfinite(v) for v in on_disk[split].values())
  assert on_disk["settings"]["num_filters"] == 8
  assert on_disk["objective"]["terms"][1] == {"class": "Distortion", "name": "mse",
                                              "weight": 0.01, "metric": "mse"}
  assert os.path.isfile(tmp_path / "saved_model.pb")
  assert os.listdir(tmp_path / "logs")  # TensorBoard event files
  energy = on_disk["energy_this_run"]  # codecarbon, offline (tfcae.training.energy)
  assert energy["measured"] and energy["kwh"] > 0 and energy["co2_kg"] > 0, energy
  assert energy["power_source"] and energy["country"] == "USA"


@pytest.mark.slow
def test_training_runs_where_energy_cannot_be_measured(tmp_path, monkeypatch, capsys):
  monkeypatch.setitem(sys.modules, "codecarbon", None)  # no codecarbon, no counters
  summary = training.train(tiny_config(tmp_path, epochs=1, steps_per_epoch=2))
  assert summary["energy_this_run"]["measured"] is False
  assert "codecarbon" in summary["energy_this_run"]["reason"]
  warnings = [l for l in capsys.readouterr().err.splitlines() if "energy not measured" in l]
  assert len(warnings) == 1


@pytest.mark.slow
def test_changing_architecture_refuses_to_resume(tmp_path):
  training.train(tiny_config(tmp_path, epochs=1, steps_per_epoch=2))
  with pytest.raises(TfcaeError, match="different architecture"):
    training.train(tiny_config(tmp_path, num_filters=16))


@pytest.mark.parametrize("overrides, message", [
    ({"model_dir": ""}, "model_dir"),
    ({"train_images": ""}, "train_images"),
    ({"distortion": "ms-ssim", "patch_size": 64}, "patch_size >= 176"),
    ({"architecture": "hyperprior", "patch_size": 96}, "multiple"),
    ({"lmbda": 0.}, "positive"),
    ({"architecture": "vq"}, "expected one of"),
])
def test_config_validation(overrides, message):
  config = tiny_config("/tmp/unused")
  for key, value in overrides.items():
    setattr(config, key, value)
  with pytest.raises(ValueError, match=message):
    config.validate()


def test_no_images_is_a_clear_error(tmp_path):
  with pytest.raises(TfcaeError, match="no training images"):
    training.train(tiny_config(tmp_path / "run", train_images=str(tmp_path / "nothing")))


def test_train_cli_reports_flag_errors(tmp_path):
  r = run_tool("train", f"--model_dir={tmp_path}", "--train_images=", "--epochs=1")
  assert r.returncode == 1 and "error:" in r.stderr and "Traceback" not in r.stderr


MIRRORED = r"""
import json, sys
from tfcae.training import loop as training
from tfcae.training.config import TrainConfig
training.configure_devices(2)
import tensorflow as tf
assert len(tf.config.list_logical_devices("CPU")) == 2
strategy = training.make_strategy(TrainConfig(strategy="mirrored"))
assert strategy.num_replicas_in_sync == 2
sys.path.insert(0, sys.argv[2])
from conftest import tiny_config
summary = training.train(tiny_config(sys.argv[1], strategy="mirrored", batch_size=4,
                                     steps_per_epoch=4))
print(json.dumps(summary["validation"]))
"""


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
  r = subprocess.run([sys.executable, "-c", MIRRORED, str(tmp_path), os.path.join(REPO, "tests")],
                     capture_output=True, text=True, timeout=600,
                     env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert r.returncode == 0, r.stderr[-3000:]
  validation = json.loads(r.stdout.strip().splitlines()[-1])
  assert np.isfinite(validation["bpp"]) and validation["bpp"] > 0
  assert os.path.isfile(tmp_path / "saved_model.pb")


@pytest.mark.slow
def test_killed_training_resumes_with_the_same_command(tmp_path):
  """Kill bin/train after its first checkpoint; the same command finishes the run."""
  args = [sys.executable, os.path.join(REPO, "bin", "train"), f"--model_dir={tmp_path}",
          "--num_filters=8", f"--train_images={SAMPLE_TRAIN}", "--patch_size=64",
          "--batch_size=2", "--epochs=4", "--steps_per_epoch=40", "--validation_batches=1",
          "--verbose=2"]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
  try:
    deadline = time.time() + 300
    while not tf.train.latest_checkpoint(str(tmp_path / "checkpoints")):
      assert proc.poll() is None and time.time() < deadline, "no checkpoint written"
      time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  finally:
    if proc.poll() is None:
      proc.kill()
  assert not (tmp_path / "summary.json").exists()
  r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
  assert r.returncode == 0, r.stderr[-2000:]
  assert "Resuming from" in r.stdout
  assert json.loads((tmp_path / "summary.json").read_text())["epochs_completed"] == 4
  assert _history_epochs(tmp_path)[-1] == 3
