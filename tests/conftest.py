"""Shared fixtures: tiny trained-and-exported models, built once per test session."""
import fcntl
import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_TRAIN = os.path.join(REPO, "data", "sample", "train")
SAMPLE_EVAL = os.path.join(REPO, "data", "sample", "eval")

# Builtin TFLite operators a converted analysis transform may use: a device encoder with
# any other operator (a Flex/Select-TF op, a custom op) would not run on a plain runtime.
# GDN: ABS, CONV_2D, DIV; the integer GDN's |x|: LEAKY_RELU with slope -1; the rounding:
# SUB, ROUND, CAST; int8: QUANTIZE/DEQUANTIZE; reduced encoders: GATHER, CONCATENATION.
TFLITE_ENCODER_OPS = {"ABS", "ADD", "CAST", "CONCATENATION", "CONV_2D", "DEQUANTIZE", "DIV",
                      "GATHER", "LEAKY_RELU", "MUL", "QUANTIZE", "ROUND", "RSQRT", "SQRT",
                      "SUB", "FILL", "BROADCAST_TO", "SHAPE", "STRIDED_SLICE", "PACK",
                      "RESHAPE", "TILE"}


def tiny_config(model_dir, architecture="factorized", **overrides):
  from tfcae.training.config import TrainConfig
  settings = dict(model_dir=str(model_dir), architecture=architecture, num_filters=8,
                  train_images=SAMPLE_TRAIN, patch_size=64, batch_size=2, epochs=1,
                  steps_per_epoch=60, validation_batches=1, learning_rate=5e-3, verbose=0,
                  image_summaries=False)
  settings.update(overrides)
  return TrainConfig(**settings)


def shared_model_dir(tmp_path_factory, name, settings):
  """A tiny model trained and exported once per test run, also across pytest-xdist workers
  (`make test` runs two): the first worker to ask trains it under a file lock, the others
  wait and reuse it. Tests must treat it as read-only."""
  from tfcae.training import loop as training
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent  # shared by the workers of this run
  model_dir = root / name
  with open(root / f"{name}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (model_dir / "summary.json").exists():
      training.train(tiny_config(model_dir, **settings))
  return str(model_dir)


@pytest.fixture(scope="session",
                params=["factorized", pytest.param("hyperprior", marks=pytest.mark.slow)])
def exported_model(request, tmp_path_factory):
  """(architecture, model_dir) of a tiny model trained for a few steps and exported."""
  # At 60 steps the hyperprior's reconstructions are still near the image mean for some seeds
  # and CPUs (MSE/variance 0.5-1.04 over seeds 0-3); 150 steps at 3e-3 gives 0.41-0.57.
  overrides = dict(steps_per_epoch=150, learning_rate=3e-3) if request.param == "hyperprior" else {}
  return request.param, shared_model_dir(tmp_path_factory, f"tiny_{request.param}",
                                         dict(architecture=request.param, **overrides))


@pytest.fixture(scope="session")
def factorized_dir(tmp_path_factory):
  """The default tier's tiny factorized run: the same run as exported_model's (one
  training and export per test run; each costs ≈ 1.5 min on a slow 2-core CPU)."""
  return shared_model_dir(tmp_path_factory, "tiny_factorized", dict(architecture="factorized"))


@pytest.fixture(scope="session")
def other_factorized_dir(tmp_path_factory):
  """A second tiny factorized run (another seed: another fingerprint), for the tests of
  files from another model."""
  return shared_model_dir(tmp_path_factory, "tiny_factorized_b", dict(seed=1))


@pytest.fixture
def rng():
  return np.random.default_rng(1234)


def run_tool(tool, *args, env=None, timeout=300, cwd=None):
  """Runs bin/<tool> in a fresh Python process; returns CompletedProcess (text)."""
  full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  full_env.update(env or {})
  return subprocess.run([sys.executable, os.path.join(REPO, "bin", tool), *args],
                        capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd)


def sample_image(name="kodim23.png"):
  from tfcae.io.fileio import load_rgb_image
  return load_rgb_image(os.path.join(SAMPLE_EVAL, name))


# The head of a two-replica script (tests/test_strategies.py, test_dco.py): two logical CPU
# devices must be configured before TensorFlow starts, so each script runs in its own
# process. `Toy` is deterministic (x_hat = y = w·x), so a mirrored run can match a single
# device to float precision; `two_replica_data()` gives replica 0 dark images and replica 1
# bright ones, so only the cross-replica sum reproduces the single device's statistics.
TWO_REPLICA_PRELUDE = r"""
import json, sys
from tfcae.training import loop as training
training.configure_devices(2)
import numpy as np
import tensorflow as tf
from tfcae.models.base import CompressionModel


class Toy(CompressionModel):
  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.w = tf.Variable(0.9, name="w")

  def forward(self, x, training):
    y = self.w * x
    return {"x_hat": y, "y": y, "y_hat": tf.round(y),
            "bits": tf.reduce_sum(tf.abs(y), [1, 2, 3]) / 10.}


def two_replica_data():
  rng = np.random.default_rng(0)
  images = np.concatenate([rng.uniform(0, 10, [2, 8, 8, 3]),
                           rng.uniform(20, 40, [2, 8, 8, 3])]).astype(np.float32)
  data = tf.data.Dataset.from_tensors(images).unbatch().batch(4).repeat()
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
  return data.with_options(options)
"""


def tiered(values, *fast):
  """Parametrize values: those in `fast` run in the default tier, every other value in the
  slow tier (one architecture per behaviour keeps the default tier under its budget). A
  tuple is the values of several argument names."""
  return [v if v in fast else pytest.param(*(v if isinstance(v, tuple) else (v,)),
                                           marks=pytest.mark.slow) for v in values]


def run_script(script, *args, timeout=600):
  """Runs a Python script in a fresh process; returns the JSON its last line prints."""
  r = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                     timeout=timeout, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert r.returncode == 0, r.stderr[-3000:]
  return json.loads(r.stdout.strip().splitlines()[-1])
