"""Sharded TFRecord training sets with a manifest (`bin/prepare_data`).

A folder of images is listed, decoded and checked once, by `write`, into

  DIR/manifest.json                         format, splits, shard names, counts, skipped files
  DIR/train-00000-of-00004.tfrecord ...     tf.train.Example records, `examples_per_shard` each
  DIR/validation-00000-of-00001.tfrecord

so that training on a million images never lists a folder in Python: `bin/train
--train_images=DIR` reads the manifest (a few shard names) and streams the shards with
tf.data. Each record holds one image as encoded bytes ("image": the source file's own
bytes for whole images, PNG for crops) and its name. `crop=N` cuts each image into
non-overlapping N×N tiles first (what a GPU input pipeline wants: no decode of a 12 Mpixel
photograph per 256² crop); whole images keep every crop position open.

The split is the one of `tfcae.training.loop.split_files`: the last `holdout` fraction of the
images by name validates. Several workers (`--strategy=multi_worker`) each read their own
training shards (disjoint: tfcae.data.images.worker_share deals them), so a set meant for N workers
needs at least N shards.

TensorFlow is imported inside the functions that need it, so that reading a manifest
(is_records_dir, read_manifest) stays cheap.
"""
from __future__ import annotations

import datetime
import json
import os
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from tfcae import TfcaeError
from tfcae.io.fileio import atomic_write_json

if TYPE_CHECKING:
  import tensorflow as tf

__all__ = ["FORMAT", "MANIFEST", "is_records_dir", "read_manifest", "train_dataset",
           "validation_dataset", "write"]

MANIFEST = "manifest.json"
FORMAT = "tfcae-records/1"
SPLITS = ("train", "validation")


def is_records_dir(path: str | os.PathLike | None) -> bool:
  """Whether `path` is a folder written by `write` (it holds a manifest).

  Args:
    path: any path, or None.

  Returns:
    True when `path` holds a manifest file.
  """
  return bool(path) and os.path.isfile(os.path.join(str(path), MANIFEST))


def read_manifest(path: str) -> dict[str, Any]:
  """The manifest of a records folder, checked.

  Args:
    path: the records folder.

  Returns:
    The manifest: {"format", "crop", "created", "images", "skipped", "splits": {split:
    {"shards", "examples", "images"}}}.

  Raises:
    TfcaeError: an unreadable manifest, another format, a missing split, or a shard
      that is missing or named outside the folder.
  """
  name = os.path.join(path, MANIFEST)
  try:
    with open(name, encoding="utf-8") as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise TfcaeError(f"{name}: cannot read the manifest ({e})") from None
  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
    raise TfcaeError(f"{name}: not a {FORMAT} manifest")
  for split in SPLITS:
    entry = manifest.get("splits", {}).get(split)
    if not isinstance(entry, dict) or not isinstance(entry.get("shards"), list):
      raise TfcaeError(f"{name}: no {split} split")
    for shard in entry["shards"]:
      # Names only, inside the folder: a manifest cannot point elsewhere.
      if not isinstance(shard, str) or os.path.basename(shard) != shard:
        raise TfcaeError(f"{name}: bad shard name {shard!r}")
      if not os.path.isfile(os.path.join(path, shard)):
        raise TfcaeError(f"{name}: shard {shard} is missing")
  return manifest


def _shards(path, split):
  return [os.path.join(path, s) for s in read_manifest(path)["splits"][split]["shards"]]


def _example(image_bytes, name):
  import tensorflow as tf
  feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes])),
             "name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[name.encode()]))}
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _tiles(image, crop):
  """Non-overlapping crop×crop tiles of a [H, W, 3] uint8 image (the image itself,
  mirror-padded by the training pipeline later, when it is smaller than one tile)."""
  h, w = image.shape[:2]
  if h < crop or w < crop:
    return [image]
  return [image[i:i + crop, j:j + crop] for i in range(0, h - crop + 1, crop)
          for j in range(0, w - crop + 1, crop)]


def write(images: Iterable[str], output: str, crop: int = 0, examples_per_shard: int = 1024,
          holdout: float = 0.1, log: Callable[[str], Any] = print,
          progress: bool = True) -> dict[str, Any]:
  """Writes the records folder `output` from image files.

  Unreadable images are skipped, each named in one warning line and in the manifest.
  Shards are written under temporary names and renamed, the manifest last, so an
  interrupted run leaves no folder that training would take for complete.

  Args:
    images: the image files; sorted by name, the last `holdout` fraction validates.
    output: the folder to write (created if needed; it must not hold a records set).
    crop: cut each image into non-overlapping crop×crop tiles, stored as PNG (0: store
      whole images, as their files' bytes).
    examples_per_shard: records per shard file.
    holdout: the fraction of images held out for validation (at least one image when
      > 0), in [0, 1).
    log: where warning lines go.
    progress: show a Keras progress bar.

  Returns:
    The manifest written (see read_manifest).

  Raises:
    TfcaeError: invalid settings, an existing records set in `output`, too few images
      to hold some out, no readable training image, or a shard that cannot be written.
  """
  import tensorflow as tf
  from PIL import Image
  if crop < 0 or examples_per_shard < 1 or not 0 <= holdout < 1:
    raise TfcaeError("need crop >= 0, examples_per_shard >= 1 and 0 <= holdout < 1")
  if is_records_dir(output):
    raise TfcaeError(f"{output} already holds a records set ({MANIFEST}); choose another "
                     "--output or remove it")
  images = sorted(images)
  if len(images) < 2 and holdout:
    raise TfcaeError("need at least 2 images to hold some out for validation")
  n_val = max(1, int(len(images) * holdout)) if holdout else 0
  split_images = {"train": images[:len(images) - n_val], "validation": images[len(images) - n_val:]}
  os.makedirs(output, exist_ok=True)
  manifest = {"format": FORMAT, "crop": int(crop), "created": datetime.date.today().isoformat(),
              "images": len(images), "skipped": [], "splits": {}}
  bar = tf.keras.utils.Progbar(len(images), unit_name="image") if progress else None
  done = 0
  for split, files in split_images.items():
    examples = []
    for path in files:
      try:
        with open(path, "rb") as f:
          data = f.read()
        with Image.open(path) as im:
          pixels = np.asarray(im.convert("RGB"))
      except (OSError, ValueError, Image.DecompressionBombError) as e:
        log(f"warning: skipping {path}: not a readable image ({e})")
        manifest["skipped"].append(path)
        continue
      finally:
        done += 1
        if bar:
          bar.update(done)
      name = os.path.basename(path)
      if crop:
        for k, tile in enumerate(_tiles(pixels, crop)):
          examples.append(_example(tf.io.encode_png(tile).numpy(), f"{name}#{k}"))
      else:
        examples.append(_example(data, name))
    if not examples and split == "train":
      raise TfcaeError("no readable training images")
    count = max(1, -(-len(examples) // examples_per_shard))
    shards = []
    for k in range(count):
      shard = f"{split}-{k:05d}-of-{count:05d}.tfrecord"
      tmp = os.path.join(output, f".tmp-{shard}")
      try:
        with tf.io.TFRecordWriter(tmp) as writer:
          for record in examples[k * examples_per_shard:(k + 1) * examples_per_shard]:
            writer.write(record)
        os.replace(tmp, os.path.join(output, shard))
      except (OSError, tf.errors.OpError) as e:
        if os.path.exists(tmp):
          os.unlink(tmp)
        raise TfcaeError(f"{output}: cannot write {shard} ({getattr(e, 'strerror', None) or e})"
                         ) from None
      shards.append(shard)
    manifest["splits"][split] = {"shards": shards, "examples": len(examples),
                                 "images": len(files)}
  atomic_write_json(os.path.join(output, MANIFEST), manifest)
  return manifest


def _decode(record):
  import tensorflow as tf
  parsed = tf.io.parse_single_example(record, {"image": tf.io.FixedLenFeature([], tf.string)})
  image = tf.image.decode_image(parsed["image"], channels=3, expand_animations=False)
  image.set_shape([None, None, 3])
  return image


def train_dataset(path: str, patch_size: int, batch_size: int, seed: int | None = None,
                  worker: int = 0, workers: int = 1, cache: bool = False) -> tf.data.Dataset:
  """Infinite dataset of random training crops from the training shards.

  Args:
    path: the records folder.
    patch_size: the crops' side.
    batch_size: images per batch (an incomplete last batch is dropped).
    seed: the shuffles' seed; with one, the order is deterministic.
    worker: this worker's index (it reads its own share of the shards).
    workers: the number of workers.
    cache: keep the decoded images in memory.

  Returns:
    A dataset of float32 [batch, patch, patch, 3] batches in [0, 255].

  Raises:
    TfcaeError: a bad manifest, or fewer training shards than workers.
  """
  import tensorflow as tf
  from tfcae.data.images import random_patch, worker_share
  shards = _shards(path, "train")
  shards = worker_share(shards, worker, workers,
                        f"{path}: {len(shards)} training shards for {workers} workers; "
                        "write more (bin/prepare_data --examples_per_shard)")
  with tf.device("/cpu:0"):
    files = tf.data.Dataset.from_tensor_slices(shards).shuffle(len(shards), seed=seed)
    ds = files.interleave(tf.data.TFRecordDataset, cycle_length=min(len(shards), 4),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)
    ds = ds.map(_decode, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
      ds = ds.cache()
    ds = ds.shuffle(1024, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.map(lambda image: random_patch(image, patch_size),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def validation_dataset(path: str, patch_size: int, batch_size: int,
                       max_batches: int | None = None) -> tf.data.Dataset:
  """Finite, deterministic, cached centre crops of the validation shards.

  Args:
    path: the records folder.
    patch_size: the crops' side.
    batch_size: images per batch (the last one may be smaller).
    max_batches: keep only the first this many batches (None or 0: all).

  Returns:
    A dataset of float32 [batch, patch, patch, 3] batches in [0, 255].

  Raises:
    TfcaeError: a bad manifest, or a records set without validation images.
  """
  import tensorflow as tf
  from tfcae.data.images import center_patch
  shards = _shards(path, "validation")
  if not shards or not read_manifest(path)["splits"]["validation"]["examples"]:
    raise TfcaeError(f"{path}: the records set has no validation images (give "
                     "--val_images, or write it with --holdout > 0)")
  with tf.device("/cpu:0"):
    ds = tf.data.TFRecordDataset(shards).map(lambda r: center_patch(_decode(r), patch_size))
    return ds.batch(batch_size).take(max_batches if max_batches else -1).cache()
