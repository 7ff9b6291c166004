"""Loading an exported model and coding images to/from tfcae files.

The exported SavedModel does the work (its `compress` returns the whole file, its
`decompress` parses and checks it in-graph). This module adds what a user-facing tool
needs around it: checks in plain Python first, so that an empty, truncated, corrupted or
foreign file, or one written by another model, gives a one-line TfcaeError before any
TensorFlow op runs, and atomic writes.
"""
import os
import re

import numpy as np
import tensorflow as tf
import tensorflow_compression  # noqa: F401  (registers the range coding ops)

from tfcae import TfcaeError, bitstream, metrics
from tfcae.fileio import atomic_write_bytes, load_rgb_image, save_png
from tfcae.hostcoding import HostCoder
from tfcae.rundir import RunDir
from tfcae.timing import timed


class Codec:
  """An exported tfcae model, ready to compress and decompress."""

  def __init__(self, model_dir):
    run = RunDir(model_dir).require().require_export(
        "train one with bin/train, which exports at the end")
    self.model_dir = model_dir
    self.module = tf.saved_model.load(run.path)
    self.fingerprint = self.module.fingerprint.numpy()
    self.info = run.read_export_info()
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
  data, seconds = timed(codec.compress, image)
  atomic_write_bytes(output_path, data)
  height, width = image.shape[:2]
  return {"bytes": len(data), "bpp": metrics.bpp(len(data), height, width), "height": height,
          "width": width, "seconds": seconds}


class TFLiteCodec:
  """Compression through a device (TFLite) encoder and host-side range coding (issue 7).

  Same interface as Codec.compress; the files decode with Codec.decompress.
  """

  def __init__(self, tflite_path, model_dir, num_threads=1):
    RunDir(model_dir).require()
    self.coder = HostCoder(tflite_path, model_dir, num_threads)

  def compress(self, image):
    return self.coder.compress(image)


def decompress_file(codec, input_path, output_path):
  """Decompresses a tfcae file to PNG with a Codec, or with the Codec that
  `codec(data, input_path)` returns for the file's bytes, e.g. tfcae.zoo.codec_of (the zoo
  model whose fingerprint the file carries: the lookup is the zoo's, which builds Codecs,
  so that this module need not import the zoo back). Nothing is written unless decoding
  succeeds."""
  if not os.path.isfile(input_path):
    raise TfcaeError(f"{input_path}: no such file")
  with open(input_path, "rb") as f:
    data = f.read()
  if callable(codec):
    codec = codec(data, input_path)
  image, seconds = timed(codec.decompress, data)
  save_png(output_path, image)
  return {"height": image.shape[0], "width": image.shape[1], "seconds": seconds}
