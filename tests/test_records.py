"""Sharded TFRecord training sets (tfcae/data/records.py, bin/prepare_data)."""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfcae import TfcaeError
from tfcae.data import records
from tfcae.training import loop as training

from conftest import SAMPLE_TRAIN, run_tool, tiny_config

IMAGES = sorted(os.path.join(SAMPLE_TRAIN, f) for f in os.listdir(SAMPLE_TRAIN)
                if f.lower().endswith((".png", ".jpg")))


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
  out = tmp_path_factory.mktemp("records") / "whole"
  return str(out), records.write(IMAGES[:10], str(out), examples_per_shard=4, progress=False,
                                 log=lambda *_: None)


def test_manifest_splits_by_name_and_shards(whole):
  out, manifest = whole
  assert manifest == records.read_manifest(out)
  train, val = manifest["splits"]["train"], manifest["splits"]["validation"]
  assert (train["examples"], val["examples"]) == (9, 1)  # the last tenth by name validates
  assert train["shards"] == [f"train-{k:05d}-of-00003.tfrecord" for k in range(3)]
  names = []
  for shard in train["shards"] + val["shards"]:
    for record in tf.data.TFRecordDataset(os.path.join(out, shard)):
      example = tf.train.Example.FromString(record.numpy())
      names.append(example.features.feature["name"].bytes_list.value[0].decode())
  assert names == [os.path.basename(p) for p in IMAGES[:10]]
  # Whole images keep the file's own bytes (no re-encoding).
  first = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset(
      os.path.join(out, train["shards"][0])))).numpy())
  with open(IMAGES[0], "rb") as f:
    assert first.features.feature["image"].bytes_list.value[0] == f.read()
  assert not [f for f in os.listdir(out) if f.startswith(".tmp")]


def test_datasets_give_crops_and_workers_get_disjoint_shards(whole):
  out, _ = whole
  batch = next(iter(records.train_dataset(out, 32, 3, seed=0)))
  assert batch.shape == (3, 32, 32, 3) and batch.dtype == tf.float32
  assert 0 <= float(tf.reduce_min(batch)) and float(tf.reduce_max(batch)) <= 255
  val = list(records.validation_dataset(out, 32, 2))
  assert len(val) == 1 and val[0].shape == (1, 32, 32, 3)
  np.testing.assert_array_equal(val[0], list(records.validation_dataset(out, 32, 2))[0])
  # Three shards for two workers: 2 + 1, disjoint (the shard list each one reads).
  shards = records.read_manifest(out)["splits"]["train"]["shards"]
  assert shards[0::2] + shards[1::2] == [shards[0], shards[2], shards[1]]
  with pytest.raises(TfcaeError, match="3 training shards for 4 workers"):
    records.train_dataset(out, 32, 2, worker=0, workers=4)


def test_crops_tile_the_images(tmp_path):
  from PIL import Image
  out = str(tmp_path / "tiles")
  manifest = records.write(IMAGES[:2], out, crop=64, holdout=0.5, progress=False,
                           log=lambda *_: None)
  w, h = Image.open(IMAGES[0]).size
  assert manifest["splits"]["train"]["examples"] == (w // 64) * (h // 64)
  batch = next(iter(records.train_dataset(out, 64, 2, seed=0)))
  assert batch.shape == (2, 64, 64, 3)


def test_unreadable_images_are_skipped_by_name_and_bad_manifests_refused(tmp_path):
  bad = tmp_path / "broken.jpg"
  bad.write_bytes(b"\xff\xd8\xff not a jpeg")
  lines = []
  manifest = records.write(IMAGES[:3] + [str(bad)], str(tmp_path / "r"), progress=False,
                           log=lines.append)
  assert manifest["skipped"] == [str(bad)] and len(lines) == 1 and "broken.jpg" in lines[0]
  with pytest.raises(TfcaeError, match="already holds a records set"):
    records.write(IMAGES[:3], str(tmp_path / "r"), progress=False)
  m = json.loads((tmp_path / "r" / "manifest.json").read_text())
  m["splits"]["train"]["shards"] = ["../../etc/passwd"]
  (tmp_path / "r" / "manifest.json").write_text(json.dumps(m))
  with pytest.raises(TfcaeError, match="bad shard name"):
    records.read_manifest(str(tmp_path / "r"))
  assert not records.is_records_dir(str(tmp_path))


@pytest.mark.slow
def test_prepare_data_cli_then_training_reads_the_records(tmp_path):
  out = tmp_path / "records"
  r = run_tool("prepare_data", f"--images={SAMPLE_TRAIN}", f"--output={out}",
               "--examples_per_shard=8")
  assert r.returncode == 0, r.stderr
  assert "training and" in r.stdout and "0 skipped" in r.stdout
  r = run_tool("prepare_data", f"--images={SAMPLE_TRAIN}", f"--output={out}")
  assert r.returncode == 1 and r.stderr.count("\n") == 1 and "already holds" in r.stderr
  summary = training.train(tiny_config(tmp_path / "run", train_images=str(out), epochs=1,
                                       steps_per_epoch=3))
  assert summary["steps"] == 3 and np.isfinite(summary["validation"]["loss"])
  shutil.rmtree(out)
