"""Data pipelines: crops of any image size, grayscale, folders and globs, TFDS errors."""
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfcae import TfcaeError
from tfcae.data import images as data

from conftest import SAMPLE_EVAL, SAMPLE_TRAIN


@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 100, 3), (63, 64, 3), (300, 200, 3)])
def test_small_images_are_padded_not_dropped(shape):
  image = tf.cast(tf.random.uniform(shape, 0, 256, tf.int32), tf.uint8)
  for patch in (data.random_patch(image, 64), data.center_patch(image, 64)):
    assert patch.shape == (64, 64, 3) and patch.dtype == tf.float32
  # Padding mirrors real pixels: every output value occurs in the input.
  values = set(np.unique(image.numpy()))
  assert set(np.unique(data.center_patch(image, 64).numpy().astype(np.uint8))) <= values


def test_center_patch_is_the_center():
  image = tf.reshape(tf.range(10 * 12 * 3) % 251, [10, 12, 3])
  np.testing.assert_array_equal(data.center_patch(tf.cast(image, tf.uint8), 4).numpy(),
                                image.numpy()[3:7, 4:8])


def test_train_and_validation_datasets(tmp_path):
  Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "gray.jpg")  # small, gray
  Image.fromarray(np.full((70, 90, 3), 200, np.uint8)).save(tmp_path / "rgb.png")
  files = data.image_files(str(tmp_path))
  assert [f.rsplit("/", 1)[1] for f in files] == ["gray.jpg", "rgb.png"]
  batch = next(iter(data.train_dataset(files, 32, 4, seed=3)))
  assert batch.shape == (4, 32, 32, 3)
  val = list(data.validation_dataset(files, 32, 4))
  assert len(val) == 1 and val[0].shape == (2, 32, 32, 3)
  np.testing.assert_array_equal(list(data.validation_dataset(files, 32, 4))[0], val[0])
  assert len(list(data.validation_dataset(files * 3, 32, 2, max_batches=2))) == 2


def test_image_files_accepts_folders_globs_and_lists():
  assert len(data.image_files(SAMPLE_TRAIN)) == 32
  assert len(data.image_files(f"{SAMPLE_EVAL}/*.png")) == 3
  assert len(data.image_files(f"{SAMPLE_EVAL}/kodim04.png,{SAMPLE_EVAL}/kodim15.png")) == 2
  with pytest.raises(TfcaeError, match="no images"):
    data.image_files("/nonexistent/*.png")


def test_tfds_dataset_not_prepared_is_a_clear_error(tmp_path):
  with pytest.raises(TfcaeError, match="not prepared|TFDS dataset"):
    data.tfds_datasets("mnist", 32, 4, data_dir=str(tmp_path))


# A TFDS dataset prepared on this machine from the shipped sample (no download), by a
# builder defined only in the preparing process: bin/train then reads it from its files,
# as it would read a user's `tfds build` output.
PREPARE_TFDS = r"""
import sys, glob
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image


class TfcaeSample(tfds.core.GeneratorBasedBuilder):
  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
        {"image": tfds.features.Image(shape=(None, None, 3))}))

  def _split_generators(self, dl_manager):
    files = sorted(glob.glob(sys.argv[2] + "/*.jpg"))
    return {"train": self._generate_examples(files[:-4]),
            "validation": self._generate_examples(files[-4:])}

  def _generate_examples(self, files):
    for f in files:
      yield f, {"image": np.asarray(Image.open(f).convert("RGB"))}


TfcaeSample(data_dir=sys.argv[1]).download_and_prepare()
"""


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  import subprocess
  import sys
  folder = tmp_path_factory.mktemp("tfds")
  r = subprocess.run([sys.executable, "-c", PREPARE_TFDS, str(folder), SAMPLE_TRAIN],
                     capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  return str(folder)


def test_a_prepared_tfds_dataset_is_read_from_its_files(tfds_dir):
  train, val = data.tfds_datasets("tfcae_sample", 64, 4, data_dir=tfds_dir, max_val_batches=1)
  batch = next(iter(train))
  assert batch.shape == (4, 64, 64, 3) and batch.dtype == tf.float32
  assert float(tf.reduce_max(batch)) > 1.  # pixels on 0..255
  assert [b.shape[0] for b in val] == [4]


def test_tfds_training_shards_by_data_and_keeps_validation_whole(tfds_dir, tmp_path):
  """Under several workers tf.data deals the TFDS training stream element by element
  (policy DATA, set explicitly, since the dataset may have fewer files than workers);
  every worker validates on the whole split, as with a folder."""
  from tfcae.training import loop as training
  from conftest import tiny_config
  config = tiny_config(tmp_path, train_images="", dataset="tfcae_sample",
                       tfds_data_dir=tfds_dir)
  train, val = training.datasets(config, worker=1, workers=2)
  policy = tf.data.experimental.AutoShardPolicy
  assert train.options().experimental_distribute.auto_shard_policy == policy.DATA
  assert val.options().experimental_distribute.auto_shard_policy == policy.OFF
  assert next(iter(train)).shape == (2, 64, 64, 3)


@pytest.mark.slow
def test_bin_train_on_a_prepared_tfds_dataset(tfds_dir, tmp_path):
  from conftest import run_tool
  r = run_tool("train", f"--model_dir={tmp_path}", "--dataset=tfcae_sample",
               f"--tfds_data_dir={tfds_dir}", "--num_filters=8", "--patch_size=64",
               "--batch_size=2", "--epochs=1", "--steps_per_epoch=3",
               "--validation_batches=1", "--verbose=0", "--image_summaries=false")
  assert r.returncode == 0, r.stderr[-2000:]
  assert (tmp_path / "saved_model.pb").is_file() and (tmp_path / "summary.json").is_file()
