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
