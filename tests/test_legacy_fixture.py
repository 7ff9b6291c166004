"""Files of the package layout before the redesign keep working.

tests/fixtures/legacy/ holds, per architecture, a real bin/train run directory written
before the redesign moved the package tree (train_config.json, tfcae_export.json,
summary.json, the checkpoint, the SavedModel), a .tfcae file its SavedModel wrote of a
96x64 crop of kodim23, and the pixels that file decoded to (tests/fixtures/make_legacy.py;
manifest.json says when and with what). Whatever the tree looks like now, users' runs and
files of then must still decode to the same pixels, re-encode to the same bytes, load,
warm-start and resume; these tests say so about the committed files, which are never
regenerated. The fixture directory is read-only here: anything that writes works on a
copy.

Exact pixels and bytes assume the CPU kernels the fixture was written with (x86-64,
TensorFlow 2.14's defaults): a machine whose floating-point kernels round differently can
pick other latents or scale indices, which is not what these tests are about.
"""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfcae.serving.codec import Codec
from tfcae.io import bitstream
from tfcae.io.fileio import load_rgb_image

from conftest import REPO, SAMPLE_TRAIN, run_tool

FIXTURE = os.path.join(REPO, "tests", "fixtures", "legacy")
ARCHITECTURES = ["factorized", "hyperprior"]
CODED = "kodim23_crop.tfcae"
DECODED = "kodim23_crop.decoded.png"


def fixture_dir(architecture):
  return os.path.join(FIXTURE, architecture)


def read_json(*parts):
  with open(os.path.join(*parts), encoding="utf-8") as f:
    return json.load(f)


def stored_file(architecture):
  with open(os.path.join(fixture_dir(architecture), CODED), "rb") as f:
    return f.read()


def stored_pixels(architecture):
  return load_rgb_image(os.path.join(fixture_dir(architecture), DECODED))


def original():
  return load_rgb_image(os.path.join(FIXTURE, read_json(FIXTURE, "manifest.json")["original"]))


@pytest.fixture(scope="module", params=ARCHITECTURES)
def legacy(request):
  """(architecture, Codec of its SavedModel, tfcae_export.json)."""
  architecture = request.param
  return (architecture, Codec(fixture_dir(architecture)),
          read_json(fixture_dir(architecture), "tfcae_export.json"))


def test_the_fixture_is_what_it_claims():
  """Guards the fixture itself: one checkpoint per run, sizes as committed."""
  manifest = read_json(FIXTURE, "manifest.json")
  assert sorted(manifest["models"]) == ARCHITECTURES
  for architecture in ARCHITECTURES:
    folder = fixture_dir(architecture)
    for name in ("train_config.json", "tfcae_export.json", "summary.json", "saved_model.pb",
                 CODED, DECODED):
      assert os.path.isfile(os.path.join(folder, name)), name
    state = tf.train.get_checkpoint_state(os.path.join(folder, "checkpoints"))
    assert len(state.all_model_checkpoint_paths) == 1
    assert manifest["models"][architecture]["bytes"] == len(stored_file(architecture))
    assert stored_pixels(architecture).shape == original().shape


# (a) a stored file decodes to the stored pixels
def test_stored_file_decodes_to_the_stored_pixels(legacy):
  architecture, codec, info = legacy
  data = stored_file(architecture)
  assert bitstream.parse(data).fingerprint.hex() == info["fingerprint"]
  np.testing.assert_array_equal(codec.decompress(data), stored_pixels(architecture))


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_bin_decompress_decodes_the_stored_file(architecture, tmp_path):
  out = tmp_path / "decoded.png"
  r = run_tool("decompress", f"--model_dir={fixture_dir(architecture)}",
               f"--input={os.path.join(fixture_dir(architecture), CODED)}", f"--output={out}")
  assert r.returncode == 0, r.stderr
  np.testing.assert_array_equal(load_rgb_image(str(out)), stored_pixels(architecture))


# (b) compressing the same crop again gives the same bytes
def test_the_crop_re_encodes_to_the_stored_bytes(legacy):
  architecture, codec, _ = legacy
  assert codec.compress(original()) == stored_file(architecture)


# (c) the one loader restores the run, with the exported fingerprint and weights
def test_load_trained_restores_the_run(legacy):
  from tfcae.training.export import load_trained
  architecture, _, info = legacy
  model = load_trained(fixture_dir(architecture))
  assert model.fingerprint.numpy().hex() == info["fingerprint"]
  assert model.get_config() == info["architecture"]
  # The Keras model from the checkpoint writes the SavedModel's file, byte for byte.
  assert model.compress(tf.constant(original())).numpy() == stored_file(architecture)


# (d) warm-starting from the run restores its weights
def test_warm_start_restores_the_weights(legacy):
  from tfcae.models import build_model
  from tfcae.training.loop import warm_start
  architecture, codec, info = legacy
  model = build_model(info["architecture"])
  model(tf.zeros([1, 64, 64, 3]))  # creates the variables
  initial = {id(v): v.numpy() for v in model.weight_variables()}
  warm_start(model, fixture_dir(architecture))
  exported = {}
  for v in codec.module.model_variables:  # the loaded SavedModel's
    exported.setdefault((v.name, tuple(v.shape)), []).append(v.numpy())
  weights = model.weight_variables()
  assert weights
  for v in weights:  # every weight is the exported (= last checkpoint's) value
    assert any(np.array_equal(v.numpy(), e)
               for e in exported.get((v.name, tuple(v.shape)), [])), v.name
  kernel = next(v for v in weights if "kernel" in v.name)
  assert not np.array_equal(kernel.numpy(), initial[id(kernel)])  # it did change


# (e) the stored train_config.json still describes the run
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_train_config_gives_back_the_architecture(architecture):
  from tfcae.training.config import TrainConfig
  folder = fixture_dir(architecture)
  config = TrainConfig.load(os.path.join(folder, "train_config.json"))
  config.validate()
  assert config.architecture == architecture and config.num_filters == 8
  assert config.architecture_config() == read_json(folder, "tfcae_export.json")["architecture"]
  assert config.lmbda == read_json(folder, "summary.json")["settings"]["lmbda"]


# Training from the old run: a fresh run warm-started from it, and the run itself resumed
# from its checkpoint (optimizer included) on a copy.
@pytest.mark.slow
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_training_warm_starts_from_the_run(architecture, tmp_path):
  from conftest import tiny_config
  from tfcae.training import loop as training
  summary = training.train(tiny_config(tmp_path / "run", architecture=architecture, steps_per_epoch=2,
                                       init_from=fixture_dir(architecture)))
  assert summary["steps"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_training_resumes_the_run(architecture, tmp_path, capfd):
  from tfcae.training import loop as training
  from tfcae.training.config import TrainConfig
  copy = tmp_path / architecture
  shutil.copytree(fixture_dir(architecture), copy)
  config = TrainConfig.load(str(copy / "train_config.json"))
  steps = read_json(str(copy), "summary.json")["steps"]
  config.model_dir, config.train_images = str(copy), SAMPLE_TRAIN
  config.epochs, config.steps_per_epoch = 2, 2
  summary = training.train(config)
  assert "Resuming from" in capfd.readouterr().out
  assert summary["epochs_completed"] == 2 and summary["steps"] == steps + 2
