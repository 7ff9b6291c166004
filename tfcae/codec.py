"""Loading an exported model and coding images to/from tfcae files.

The exported SavedModel does the work (its `compress` returns the whole file, its
`decompress` parses and checks it in-graph). This module adds what a user-facing tool
needs around it: checks in plain Python first, so that an empty, truncated, corrupted or
foreign file, or one written by another model, gives a one-line TfcaeError before any
TensorFlow op runs, and atomic writes.
"""
import os
import re
import time

import numpy as np
import tensorflow as tf
import tensorflow_compression  # noqa: F401  (registers the range coding ops)

from tfcae import TfcaeError, bitstream, metrics
from tfcae.export import is_exported, read_export_info
from tfcae.fileio import atomic_write_bytes, load_rgb_image, save_png


class Codec:
  """An exported tfcae model, ready to compress and decompress."""

  def __init__(self, model_dir):
    if not os.path.isdir(model_dir):
      raise TfcaeError(f"{model_dir}: no such model directory")
    if not is_exported(model_dir):
      raise TfcaeError(f"{model_dir}: no exported model (saved_model.pb); train one with "
                       "bin/train, which exports at the end")
    self.model_dir = model_dir
    self.module = tf.saved_model.load(model_dir)
    self.fingerprint = self.module.fingerprint.numpy()
    self.info = read_export_info(model_dir)
    self.num_strings = int(self.info["num_strings"])

  def compress(self, image):
    """uint8 [H, W, 3] -> bytes of a tfcae file."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
      raise TfcaeError(f"expected a uint8 RGB image [H, W, 3], got {image.dtype} {image.shape}")
    return self.module.compress(tf.constant(image)).numpy()

  def parse(self, data):
    """Validates a file's bytes against this model; raises TfcaeError."""
    stream = bitstream.parse(data, expected_fingerprint=self.fingerprint)
    if len(stream.strings) != self.num_strings:
      raise TfcaeError(f"bitstream has {len(stream.strings)} strings, this model writes "
                       f"{self.num_strings}")
    return stream

  def decompress(self, data):
    """bytes of a tfcae file -> uint8 [H, W, 3]."""
    self.parse(data)
    try:
      return self.module.decompress(tf.constant(data)).numpy()
    except tf.errors.InvalidArgumentError as e:  # the in-graph checks, as a last line
      # tf.debugging.Assert reports "assertion failed: [<message>]", in a SavedModel
      # below a "Graph execution error:" line: keep the message.
      checked = re.search(r"assertion failed: \[(.*?)\]", e.message)
      message = (checked.group(1).replace("\\'", "'") if checked
                 else e.message.strip().splitlines()[0])
      raise TfcaeError(f"cannot decode bitstream: {message}") from None

  def estimate_bits(self, image):
    return float(self.module.estimate_bits(tf.constant(image)).numpy())


def compress_file(codec, input_path, output_path):
  """Compresses an image file to a tfcae file. Returns a dict of statistics."""
  image = load_rgb_image(input_path)
  start = time.perf_counter()
  data = codec.compress(image)
  seconds = time.perf_counter() - start
  atomic_write_bytes(output_path, data)
  height, width = image.shape[:2]
  return {"bytes": len(data), "bpp": metrics.bpp(len(data), height, width), "height": height,
          "width": width, "seconds": seconds}


class TFLiteCodec:
  """Compression through a device (TFLite) encoder and host-side range coding (issue 7).

  Same interface as Codec.compress; the files decode with Codec.decompress.
  """

  def __init__(self, tflite_path, model_dir, num_threads=1):
    from tfcae.tflite import HostCoder
    if not os.path.isdir(model_dir):
      raise TfcaeError(f"{model_dir}: no such model directory")
    self.coder = HostCoder(tflite_path, model_dir, num_threads)

  def compress(self, image):
    return self.coder.compress(image)


def zoo_model_of(data, name="the file"):
  """The zoo model that wrote a tfcae file (bytes), by the fingerprint in its header."""
  from tfcae import zoo
  fingerprint = bitstream.parse(data).fingerprint  # the whole file is checked
  folder = zoo.find(fingerprint)
  if folder is None:
    raise TfcaeError(f"{name} was written by model {fingerprint.hex()}, which is not in "
                     "the zoo; give --model_dir")
  return folder


def decompress_file(codec, input_path, output_path):
  """Decompresses a tfcae file to PNG with a Codec (None: the zoo model whose fingerprint
  the file carries). Nothing is written unless decoding succeeds."""
  if not os.path.isfile(input_path):
    raise TfcaeError(f"{input_path}: no such file")
  with open(input_path, "rb") as f:
    data = f.read()
  codec = codec or Codec(zoo_model_of(data, input_path))
  start = time.perf_counter()
  image = codec.decompress(data)
  seconds = time.perf_counter() - start
  save_png(output_path, image)
  return {"height": image.shape[0], "width": image.shape[1], "seconds": seconds}
