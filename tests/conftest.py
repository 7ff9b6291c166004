"""Shared fixtures: tiny trained-and-exported models, built once per test session."""
import fcntl
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_TRAIN = os.path.join(REPO, "data", "sample", "train")
SAMPLE_EVAL = os.path.join(REPO, "data", "sample", "eval")


def tiny_config(model_dir, model="factorized", **overrides):
  from tfcae.training.config import TrainConfig
  settings = dict(model_dir=str(model_dir), model=model, num_filters=8,
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
                                         dict(model=request.param, **overrides))


@pytest.fixture(scope="session")
def factorized_dir(tmp_path_factory):
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
