"""tf.data pipelines: image folders/globs (PNG, JPEG, ...) or TFDS datasets by name.

Training batches are random crops with random horizontal flips; validation batches are
deterministic centre crops (cached), so validation numbers are comparable across epochs.
Images smaller than the patch are mirror-padded up to it, never dropped and never a crash.
Evaluation (tfcae.evaluation.rd) reads whole images from files instead.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Iterable, Sequence, TypeVar

import tensorflow as tf

from tfcae import TfcaeError
from tfcae.io.fileio import expand_images

if TYPE_CHECKING:
  import numpy as np

_T = TypeVar("_T")

__all__ = ["decode_image", "pad_to_at_least", "random_patch", "center_patch", "image_files",
           "readable_images", "worker_share", "train_dataset", "validation_dataset", "tfds_datasets",
           "MNIST_FILES", "read_idx", "load_mnist_idx", "load_mnist_tfds", "mnist_splits"]


def decode_image(path: str | tf.Tensor) -> tf.Tensor:
  """Reads any PNG/JPEG/BMP/GIF file (the first frame of an animation).

  Args:
    path: the file, a string or a string tensor (inside tf.data).

  Returns:
    A uint8 [H, W, 3] tensor (grayscale expanded to RGB).

  Raises:
    tf.errors.OpError: a file that cannot be read or decoded (eagerly; inside tf.data
      the pipeline fails).
  """
  image = tf.image.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
  image.set_shape([None, None, 3])
  return image


def pad_to_at_least(image: tf.Tensor, size: int | tf.Tensor) -> tf.Tensor:
  """Mirror-pads an image (centred) until both sides are >= size.

  SYMMETRIC padding can add at most the image's own size per call, so tiny images are
  grown in a loop.

  Args:
    image: a [H, W, 3] tensor.
    size: the smallest side wanted.

  Returns:
    The padded image, of the image's dtype (the image itself when both sides are
    already >= size).
  """
  def grow(img):
    shape = tf.shape(img)
    pad_h = tf.minimum(tf.maximum(size - shape[0], 0), shape[0])
    pad_w = tf.minimum(tf.maximum(size - shape[1], 0), shape[1])
    return (tf.pad(img, [[pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2],
                         [0, 0]], mode="SYMMETRIC"),)

  too_small = lambda img: tf.reduce_any(tf.shape(img)[:2] < size)
  return tf.while_loop(too_small, grow, (image,),
                       shape_invariants=(tf.TensorShape([None, None, 3]),))[0]


def worker_share(items: Iterable[_T], worker: int, workers: int, too_few: str) -> list[_T]:
  """What one worker of several reads: every workers-th item (training files or TFRecord
  shards; disjoint, together all of them).

  Args:
    items: the items to share out, in an order every worker agrees on.
    worker: this worker's index, 0 <= worker < workers.
    workers: the number of workers.
    too_few: the error message when there are fewer items than workers.

  Returns:
    items[worker::workers].

  Raises:
    TfcaeError: fewer items than workers (every worker needs at least one; every worker
      raises it alike).
  """
  items = list(items)
  if len(items) < workers:
    raise TfcaeError(too_few)
  return items[worker::workers]


def random_patch(image: tf.Tensor, patch_size: int) -> tf.Tensor:
  """A random crop of an image, randomly flipped left-right: a training patch.

  Args:
    image: a [H, W, 3] image (mirror-padded first if a side is below patch_size).
    patch_size: the crop's side.

  Returns:
    A float32 [patch_size, patch_size, 3] tensor, values as in the image (0..255).
  """
  image = pad_to_at_least(image, patch_size)
  image = tf.image.random_crop(image, (patch_size, patch_size, 3))
  image = tf.image.random_flip_left_right(image)
  return tf.cast(image, tf.float32)


def center_patch(image: tf.Tensor, patch_size: int) -> tf.Tensor:
  """The central crop of an image: a deterministic validation patch.

  Args:
    image: a [H, W, 3] image (mirror-padded first if a side is below patch_size).
    patch_size: the crop's side.

  Returns:
    A float32 [patch_size, patch_size, 3] tensor, values as in the image (0..255).
  """
  image = pad_to_at_least(image, patch_size)
  shape = tf.shape(image)
  top = (shape[0] - patch_size) // 2
  left = (shape[1] - patch_size) // 2
  return tf.cast(image[top:top + patch_size, left:left + patch_size], tf.float32)


def image_files(spec: str | Sequence[str], what: str = "images",
                check: bool = True) -> list[str]:
  """The image files of `spec` (folders, globs, files).

  With `check`, each is decoded once with the decoder the pipelines use, and one that
  fails (a corrupt or truncated file) is skipped with one warning line naming it: inside
  tf.data the failure would stop training with TensorFlow's "jpeg::Uncompress failed",
  naming no file. That costs one decode per image at start, what --cache costs anyway.

  Args:
    spec: folders, globs or files (tfcae.io.fileio.expand_images).
    what: what the images are, for error messages ("training images").
    check: decode each file once and skip those that fail.

  Returns:
    The image files.

  Raises:
    TfcaeError: no image files, or (with `check`) none that decodes.
  """
  files = expand_images(spec)
  if not files:
    raise TfcaeError(f"no {what} found for {spec!r} (expected a folder, a glob or files "
                     "with .png/.jpg/... extensions)")
  if check:
    files = readable_images(files)
    if not files:
      raise TfcaeError(f"none of the {what} of {spec!r} can be decoded")
  return files


def readable_images(files: Iterable[str]) -> list[str]:
  """The files that decode_image reads; a warning line on stderr for each other one.

  Args:
    files: image files.

  Returns:
    Those that decode, in order.
  """
  readable = []
  for path in files:
    try:
      decode_image(path)
    except (tf.errors.OpError, ValueError) as e:
      message = getattr(e, "message", str(e)).strip().splitlines()
      print(f"warning: skipping {path}: cannot decode it "
            f"({message[0] if message else e.__class__.__name__})", file=sys.stderr)
      continue
    readable.append(path)
  return readable


def train_dataset(files: Sequence[str], patch_size: int, batch_size: int,
                  seed: int | None = None, cache: bool = False) -> tf.data.Dataset:
  """Infinite dataset of random training crops (random_patch), reshuffled every pass.

  Args:
    files: the training image files.
    patch_size: the crops' side.
    batch_size: images per batch (an incomplete last batch is dropped).
    seed: the shuffle's seed; with one, the crops come in a deterministic order.
    cache: decode every image once and keep the uint8 images in memory (a JPEG decode
      per crop costs ≈ 20 % of one core at 8 steps/s of batch 8).

  Returns:
    A dataset of float32 [batch, patch, patch, 3] batches in [0, 255].
  """
  with tf.device("/cpu:0"):
    ds = tf.data.Dataset.from_tensor_slices(files)
    if cache:
      ds = ds.map(decode_image, num_parallel_calls=tf.data.AUTOTUNE).cache()
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
    read = (lambda image: image) if cache else decode_image
    ds = ds.map(lambda item: random_patch(read(item), patch_size),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def validation_dataset(files: Sequence[str], patch_size: int, batch_size: int,
                       max_batches: int | None = None) -> tf.data.Dataset:
  """Finite, deterministic, cached dataset of centre crops (center_patch).

  Args:
    files: the validation image files, read in order.
    patch_size: the crops' side.
    batch_size: images per batch (the last one may be smaller).
    max_batches: keep only the first this many batches (None or 0: all).

  Returns:
    A dataset of float32 [batch, patch, patch, 3] batches in [0, 255].
  """
  with tf.device("/cpu:0"):
    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.map(lambda f: center_patch(decode_image(f), patch_size)).batch(batch_size)
    # take() before cache(): caching reads the whole (truncated) set, so it completes.
    return ds.take(max_batches if max_batches else -1).cache()


def tfds_datasets(name: str, patch_size: int, batch_size: int, data_dir: str | None = None,
                  seed: int | None = None, max_val_batches: int | None = None
                  ) -> tuple[tf.data.Dataset, tf.data.Dataset]:
  """Training and validation datasets from a locally prepared TFDS dataset; no download.

  Args:
    name: the TFDS name (e.g. 'clic'); it needs a "train" split, and validates on
      "validation", or "test" if it has none.
    patch_size: the crops' side.
    batch_size: images per batch.
    data_dir: TFDS's data folder (None: its default).
    seed: not used (TFDS shuffles the training files itself).
    max_val_batches: keep only the first this many validation batches (None or 0: all).

  Returns:
    (train, validation): as train_dataset and validation_dataset.

  Raises:
    TfcaeError: an unknown dataset, or one that is not prepared in `data_dir`.
  """
  import tensorflow_datasets as tfds
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # tfds raises DatasetNotFoundError and friends
    raise TfcaeError(f"TFDS dataset {name!r}: {e}") from None
  splits = builder.info.splits if builder.is_prepared() else {}
  if "train" not in splits:
    raise TfcaeError(f"TFDS dataset {name!r} is not prepared in {builder.data_dir!r}; prepare "
                     "it with `tfds build` (tfcae never downloads at run time)")
  val_split = "validation" if "validation" in splits else "test"

  def images(split):
    return builder.as_dataset(split=split, shuffle_files=split == "train").map(
        lambda ex: ex["image"])

  train = images("train").repeat().map(lambda im: random_patch(im, patch_size),
                                       num_parallel_calls=tf.data.AUTOTUNE)
  train = train.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
  val = images(val_split).map(lambda im: center_patch(im, patch_size)).batch(batch_size)
  val = val.take(max_val_batches if max_val_batches else -1).cache()
  return train, val


# --- MNIST (the bottleneck-decorrelation study) -----------------------------------------
MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_IDX_UBYTE = 0x08  # the only IDX element type MNIST uses (unsigned byte)


def read_idx(path: str) -> np.ndarray:
  """Reads one IDX file (gzip-compressed if the name ends in .gz) as a uint8 array.

  IDX layout (LeCun et al.): two zero bytes, a type byte (0x08 = uint8), a byte giving the
  number of dimensions d, d big-endian uint32 sizes, then the data. The magic, the type and
  the exact data size are checked.

  Args:
    path: the file.

  Returns:
    A read-only uint8 array of the file's shape.

  Raises:
    TfcaeError: a missing or corrupt file (naming it).
  """
  import gzip
  import zlib

  import numpy as np
  try:
    if path.endswith(".gz"):
      with gzip.open(path, "rb") as f:
        raw = f.read()
    else:
      with open(path, "rb") as f:
        raw = f.read()
  except FileNotFoundError:
    raise TfcaeError(f"missing MNIST file {path}") from None
  except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
    raise TfcaeError(f"corrupt MNIST file {path}: {e}") from None
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UBYTE or raw[3] == 0:
    raise TfcaeError(f"corrupt MNIST file {path}: not an unsigned-byte IDX file "
                     f"(magic {raw[:4].hex() or 'missing'})")
  ndim = raw[3]
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise TfcaeError(f"corrupt MNIST file {path}: truncated header")
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  expected = int(np.prod(shape, dtype=np.int64))
  if len(raw) - header != expected:
    raise TfcaeError(f"corrupt MNIST file {path}: {len(raw) - header} data bytes, expected "
                     f"{expected} for shape {shape}")
  return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def load_mnist_idx(folder: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """The four standard MNIST IDX files in `folder` (.gz, or already decompressed).

  Args:
    folder: the folder holding MNIST_FILES.

  Returns:
    {"train": (images, labels), "test": (images, labels)}: uint8 [N, 28, 28] images and
    uint8 [N] labels.

  Raises:
    TfcaeError: missing or corrupt files, images and labels that disagree, or labels
      that are not digits.
  """
  import os

  import numpy as np
  result = {}
  for split, names in MNIST_FILES.items():
    arrays = []
    for name in names:
      path = os.path.join(folder, name + ".gz")
      if not os.path.exists(path) and os.path.exists(os.path.join(folder, name)):
        path = os.path.join(folder, name)
      arrays.append(read_idx(path))
    images, labels = arrays
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
      raise TfcaeError(f"MNIST {split} files in {folder} disagree: images {images.shape}, "
                       f"labels {labels.shape}")
    if labels.size and int(labels.max()) > 9:
      raise TfcaeError(f"MNIST {split} labels in {folder} are not digits 0-9")
    result[split] = (np.asarray(images), np.asarray(labels))
  return result


def load_mnist_tfds(data_dir: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """MNIST from a locally prepared TFDS 'mnist' (no download).

  Args:
    data_dir: TFDS's data folder (None: its default).

  Returns:
    As load_mnist_idx.

  Raises:
    TfcaeError: TFDS cannot find 'mnist', or it is not prepared.
  """
  import numpy as np
  import tensorflow_datasets as tfds
  try:
    builder = tfds.builder("mnist", data_dir=data_dir)
  except Exception as e:  # tfds raises DatasetNotFoundError and friends
    raise TfcaeError(f"TFDS dataset 'mnist': {e}") from None
  if not builder.is_prepared():
    raise TfcaeError(f"TFDS dataset 'mnist' is not prepared in {builder.data_dir!r}; prepare "
                     "it with `tfds build mnist` or give the IDX folder instead")
  result = {}
  for split in ("train", "test"):
    images, labels = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1,
                                                      as_supervised=True))
    result[split] = (np.asarray(images)[..., 0], np.asarray(labels).astype(np.uint8))
  return result


def mnist_splits(mnist: dict[str, tuple[np.ndarray, np.ndarray]],
                 num_validation: int = 10000) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """The training, validation and test sets of the MNIST study.

  Args:
    mnist: as load_mnist_idx returns.
    num_validation: the validation set is the LAST this many training images (Laakom
      et al.: 50k / 10k / 10k).

  Returns:
    {"train", "validation", "test"}: (images, labels) each; images flattened to
    float32 [N, 784] in [0, 1], labels kept (uint8) for plots.

  Raises:
    TfcaeError: num_validation is not between 0 and the number of training images
      (exclusive).
  """
  import numpy as np
  train_images, train_labels = mnist["train"]
  if not 0 < num_validation < len(train_images):
    raise TfcaeError(f"cannot hold out {num_validation} of {len(train_images)} MNIST "
                     "training images for validation")
  flat = lambda a: (a.reshape(len(a), -1).astype(np.float32) / 255.)
  cut = len(train_images) - num_validation
  return {"train": (flat(train_images[:cut]), train_labels[:cut]),
          "validation": (flat(train_images[cut:]), train_labels[cut:]),
          "test": (flat(mnist["test"][0]), mnist["test"][1])}
