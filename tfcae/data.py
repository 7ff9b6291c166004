"""tf.data pipelines: image folders/globs (PNG, JPEG, ...) or TFDS datasets by name.

Training batches are random crops with random horizontal flips; validation batches are
deterministic centre crops (cached), so validation numbers are comparable across epochs.
Images smaller than the patch are mirror-padded up to it, never dropped and never a crash.
Evaluation (tfcae.evaluation) reads whole images from files instead.
"""
import tensorflow as tf

from tfcae import TfcaeError
from tfcae.fileio import expand_images


def decode_image(path):
  """Reads any PNG/JPEG/BMP/GIF file as uint8 [H, W, 3] (grayscale expanded to RGB)."""
  image = tf.image.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
  image.set_shape([None, None, 3])
  return image


def pad_to_at_least(image, size):
  """Mirror-pads a [H, W, 3] image (centred) until both sides are >= size.

  SYMMETRIC padding can add at most the image's own size per call, so tiny images are
  grown in a loop.
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


def random_patch(image, patch_size):
  image = pad_to_at_least(image, patch_size)
  image = tf.image.random_crop(image, (patch_size, patch_size, 3))
  image = tf.image.random_flip_left_right(image)
  return tf.cast(image, tf.float32)


def center_patch(image, patch_size):
  image = pad_to_at_least(image, patch_size)
  shape = tf.shape(image)
  top = (shape[0] - patch_size) // 2
  left = (shape[1] - patch_size) // 2
  return tf.cast(image[top:top + patch_size, left:left + patch_size], tf.float32)


def image_files(spec, what="images"):
  files = expand_images(spec)
  if not files:
    raise TfcaeError(f"no {what} found for {spec!r} (expected a folder, a glob or files "
                     "with .png/.jpg/... extensions)")
  return files


def train_dataset(files, patch_size, batch_size, seed=None):
  """Infinite dataset of random [batch, patch, patch, 3] float32 crops in [0, 255]."""
  with tf.device("/cpu:0"):
    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.map(lambda f: random_patch(decode_image(f), patch_size),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def validation_dataset(files, patch_size, batch_size, max_batches=None):
  """Finite, deterministic, cached dataset of centre crops (at most max_batches)."""
  with tf.device("/cpu:0"):
    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.map(lambda f: center_patch(decode_image(f), patch_size)).batch(batch_size)
    # take() before cache(): caching reads the whole (truncated) set, so it completes.
    return ds.take(max_batches if max_batches else -1).cache()


def tfds_datasets(name, patch_size, batch_size, data_dir=None, seed=None, max_val_batches=None):
  """(train, validation) from a locally prepared TFDS dataset (e.g. 'clic'); no download."""
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
