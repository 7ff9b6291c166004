"""--strategy=multi_worker: MultiWorkerMirroredStrategy over TF_CONFIG, the
chief alone writing, sharded input, and resume after a killed worker.

The slow tests start two `bin/train` processes on localhost (free ports), as two machines
would run them; every worker gets the same command and its own TF_CONFIG task.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tfcae import TfcaeError
from tfcae.data import images as data
from tfcae.training import jobs
from tfcae.training import loop as training

from conftest import REPO, SAMPLE_TRAIN, sample_image, tiny_config


def test_shards_are_disjoint_and_cover_the_files():
  files = [f"f{i}.png" for i in range(7)]
  shards = [data.worker_share(files, i, 3, "too few") for i in range(3)]
  assert sorted(sum(shards, [])) == sorted(files)
  assert all(not set(a) & set(b) for a in shards for b in shards if a is not b)
  for worker in (0, 1):  # every worker refuses, not only the one left without files
    with pytest.raises(TfcaeError, match="too few"):
      data.worker_share(files[:1], worker, 2, "too few")


@pytest.mark.parametrize("overrides, message", [
    ({"objective": "dco", "target_distortion": 100., "multiplier_signal": "validation"},
     "multiplier_signal=validation"),
    ({"time_budget_minutes": 1.}, "time_budget_minutes"),
    ({"admm_keep_ratio": 0.5}, "ADMM"),
])
def test_combinations_that_need_one_process_are_refused(overrides, message):
  with pytest.raises(ValueError, match=message):
    tiny_config("/tmp/unused", strategy="multi_worker", **overrides).validate()


def test_multi_worker_without_tf_config_is_a_one_line_error(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
  r = subprocess.run([sys.executable, os.path.join(REPO, "bin", "train"),
                      f"--train_images={SAMPLE_TRAIN}", f"--model_dir={tmp_path / 'run'}",
                      "--strategy=multi_worker", "--num_filters=8", "--patch_size=64"],
                     capture_output=True, text=True, env=env, timeout=300)
  assert r.returncode == 1 and "Traceback" not in r.stderr
  assert r.stderr.strip().splitlines()[-1].startswith("error: --strategy=multi_worker needs "
                                                      "the TF_CONFIG")


def _start(model_dir, ports, index, tmp, epochs):
  cluster = {"worker": [f"localhost:{p}" for p in ports]}
  env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster,
                                               "task": {"type": "worker", "index": index}}),
             TMPDIR=str(tmp), TF_CPP_MIN_LOG_LEVEL="2")
  argv = [sys.executable, os.path.join(REPO, "bin", "train"), "--strategy=multi_worker",
          "--architecture=factorized", "--num_filters=8", f"--train_images={SAMPLE_TRAIN}",
          "--patch_size=64", "--batch_size=4", f"--epochs={epochs}", "--steps_per_epoch=5",
          "--validation_batches=1", "--learning_rate=5e-3", "--image_summaries=false",
          "--verbose=2", f"--model_dir={model_dir}"]
  return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)


def _run_cluster(model_dir, tmp, epochs, timeout=600):
  ports = jobs.free_ports(2)
  procs = [_start(model_dir, ports, i, tmp, epochs) for i in range(2)]
  outputs = [p.communicate(timeout=timeout)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  return outputs


def _fingerprints(outputs):
  found = []
  for i, out in enumerate(outputs):
    (line,) = [l for l in out.splitlines() if l.startswith(f"worker {i} of 2: fingerprint")]
    found.append(line.rsplit(" ", 1)[1])
  return found


@pytest.mark.slow
def test_two_workers_train_identical_weights_and_only_the_chief_writes(tmp_path):
  from tfcae.serving.codec import Codec
  tmp = tmp_path / "tmp"
  tmp.mkdir()
  model_dir = tmp_path / "run"
  outputs = _run_cluster(model_dir, tmp, epochs=2)
  a, b = _fingerprints(outputs)
  assert a == b  # every variable, coding table included, is the same on both workers
  counts = [int(next(l for l in out.splitlines() if " training images" in l).split()[4])
            for out in outputs]
  images = [f for f in os.listdir(SAMPLE_TRAIN) if f.lower().endswith((".png", ".jpg"))]
  assert sum(counts) == len(images) - max(1, len(images) // 10)  # all but the held-out
  with open(model_dir / "summary.json") as f:
    summary = json.load(f)
  assert summary["fingerprint"] == a and summary["steps"] == 10
  assert (model_dir / "saved_model.pb").exists() and (model_dir / "history.csv").exists()
  assert list(tmp.iterdir()) == []  # the other worker's checkpoints and export are gone
  codec = Codec(str(model_dir))
  image = sample_image()
  assert codec.decompress(codec.compress(image)).shape == image.shape


@pytest.mark.slow
def test_killed_worker_resumes_from_the_chiefs_checkpoint(tmp_path):
  tmp = tmp_path / "tmp"
  tmp.mkdir()
  model_dir = tmp_path / "run"
  ports = jobs.free_ports(2)
  procs = [_start(model_dir, ports, i, tmp, epochs=6) for i in range(2)]
  checkpoints = model_dir / "checkpoints"
  deadline = time.time() + 600
  while time.time() < deadline and not (
      checkpoints.exists() and any(f.name.startswith("ckpt-2") for f in checkpoints.iterdir())):
    assert all(p.poll() is None for p in procs), procs[0].communicate()[0][-3000:]
    time.sleep(0.5)
  procs[1].send_signal(signal.SIGKILL)  # a worker dies mid-run
  try:
    procs[0].communicate(timeout=60)  # the chief fails (or hangs) without its peer
  except subprocess.TimeoutExpired:
    procs[0].kill()
    procs[0].communicate()
  for p in procs:
    p.wait()
  outputs = _run_cluster(model_dir, tmp, epochs=6)  # the same command on every worker
  assert all("Resuming from" in out for out in outputs)
  a, b = _fingerprints(outputs)
  assert a == b
  with open(model_dir / "summary.json") as f:
    summary = json.load(f)
  assert summary["epochs_completed"] == 6 and summary["steps"] == 30
  assert np.isfinite(summary["validation"]["loss"])
