"""Loading an exported model and coding images to/from tfcae files.

The exported SavedModel does the work (its `compress` returns the whole file, its
`decompress` parses and checks it in-graph). This module adds what a user-facing tool
needs around it: checks in plain Python first, so that an empty, truncated, corrupted or
foreign file, one written by another model, one whose header claims an image over the size
limit or whose payload is too short for it, gives a one-line TfcaeError before any
TensorFlow op runs, and atomic writes.

SavedModels exported before issue 18 decode with TFC's own range decoder, which a crafted
payload can hang (tfcae.io.safedecode). For those, the strings whose coding tables are fixed
(a factorized model's latents, a hyperprior's side information) are first decoded here
with safedecode's bounded decoder and the SavedModel's own tables; a string that is not
the encoding of what it decodes to is refused before the SavedModel runs.
"""
import os
import re

import numpy as np
import tensorflow as tf
import tensorflow_compression  # noqa: F401  (registers the range coding ops)

from tfcae import TfcaeError
from tfcae.deploy.hostcoding import HostCoder
from tfcae.deploy.timing import timed
from tfcae.io import bitstream, safedecode
from tfcae.io.fileio import atomic_write_bytes, load_rgb_image, save_png
from tfcae.objectives import metrics
from tfcae.training.rundir import RunDir

__all__ = ["Codec", "graph_error_message", "compress_file", "TFLiteCodec",
           "decompress_file"]


# How each architecture's strings are laid out, for the checks made here in Python:
# per string, (table kind, stride of its latents, every element coded with one row per
# channel ("channels") or with any row of an indexed table ("indexed")).
_LAYOUTS = {
    "factorized": [("batched", 1, "channels")],
    "caep": [("batched", 1, "channels")],
    "hyperprior": [("indexed", 4, "indexed"), ("batched", 1, "channels")],
    "meanscale": [("indexed", 4, "indexed"), ("batched", 1, "channels")],
}


class Codec:
  """An exported tfcae model, ready to compress and decompress."""

  def __init__(self, model_dir):
    run = RunDir(model_dir).require().require_export(
        "train one with bin/train, which exports at the end")
    self.model_dir = model_dir
    self.info = run.read_export_info()
    try:
      self.module = tf.saved_model.load(run.path)
      self.fingerprint = self.module.fingerprint.numpy()
    except Exception as e:  # noqa: BLE001 (protobuf, OSError, ValueError, TF's own: all one)
      first = str(e).strip().splitlines()[0] if str(e).strip() else ""
      raise TfcaeError(f"{run.path}: the SavedModel is damaged or not a tfcae export "
                       f"({e.__class__.__name__}{': ' + first[:200] if first else ''})") from None
    self.num_strings = int(self.info["num_strings"])
    # SavedModels exported since issue 18 have a size-limited, hang-free decompress.
    self.bounded = hasattr(self.module, "decompress_limited")
    self._tables = self._coding_tables()

  def _coding_tables(self):
    """{"batched" | "indexed": (cdf, per-row minimum bits)} of the SavedModel's range
    coding tables, from its variables; empty for an architecture not in _LAYOUTS."""
    architecture = self.info.get("architecture", {}).get("architecture")
    if architecture not in _LAYOUTS or self.num_strings != len(_LAYOUTS[architecture]):
      return {}
    tables = {}
    for v in getattr(self.module, "model_variables", []):
      name = v.name.split("/")
      if len(name) < 2 or name[-1] != "cdf:0":
        continue
      kind = ("indexed" if "indexed" in name[-2] else
              "batched" if "batched" in name[-2] else None)
      if kind and kind not in tables:
        cdf = v.numpy()
        tables[kind] = (cdf, safedecode.row_min_bits(cdf))
    return tables

  def compress(self, image):
    """uint8 [H, W, 3] -> bytes of a tfcae file."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
      raise TfcaeError(f"expected a uint8 RGB image [H, W, 3], got {image.dtype} {image.shape}")
    return self.module.compress(tf.constant(image)).numpy()

  def parse(self, data, max_pixels=bitstream.DEFAULT_MAX_PIXELS):
    """Validates a file's bytes against this model; raises TfcaeError."""
    stream = bitstream.parse(data, expected_fingerprint=self.fingerprint,
                             max_pixels=max_pixels)
    if len(stream.strings) != self.num_strings:
      raise TfcaeError(f"bitstream has {len(stream.strings)} strings, this model writes "
                       f"{self.num_strings}")
    return stream

  def min_payload_bytes(self, height, width):
    """The fewest bytes each string of a height x width image can have (None where this
    model's layout is not known here)."""
    architecture = self.info["architecture"]["architecture"]
    stride = int(self.info["stride"])
    pad = lambda n: (n + stride - 1) // stride * stride
    minimum = []
    for kind, down, coding in _LAYOUTS.get(architecture, [(None, 1, None)] * self.num_strings):
      if kind not in self._tables:
        minimum.append(None)
        continue
      step = stride // down
      positions = (pad(height) // step) * (pad(width) // step)
      rows = self._tables[kind][1]
      if coding == "channels":
        bits = positions * float(rows.sum())
      else:
        bits = positions * int(self.info["architecture"]["latent_channels"]) * float(rows.min())
      minimum.append(safedecode.min_payload_bytes(bits))
    return minimum

  def check_payload(self, stream):
    """The payload checks made in Python: each string at least as long as its symbols
    need; for a SavedModel without the bounded decoder, the strings with fixed tables
    decoded here, boundedly, and refused unless consumed exactly. Raises TfcaeError."""
    for i, (string, least) in enumerate(zip(stream.strings,
                                            self.min_payload_bytes(stream.height, stream.width))):
      if least is not None and len(string) < least:
        raise TfcaeError(f"{safedecode.TOO_SHORT}: string {i + 1} has {len(string)} bytes, "
                         f"a {stream.width}x{stream.height} image needs at least {least}")
    if self.bounded or "batched" not in self._tables:
      return
    architecture = self.info["architecture"]["architecture"]
    stride = int(self.info["stride"])
    (i,) = [k for k, layout in enumerate(_LAYOUTS[architecture]) if layout[0] == "batched"]
    pad = lambda n: (n + stride - 1) // stride * stride
    channels = len(self._tables["batched"][1])
    shape = [pad(stream.height) // stride, pad(stream.width) // stride, channels]
    try:
      safedecode.decode(tf.constant(stream.strings[i]), tf.constant(self._tables["batched"][0]),
                        tf.constant(shape, tf.int32))
    except tf.errors.OpError as e:
      raise TfcaeError(f"cannot decode bitstream: {graph_error_message(e)}") from None

  def decompress(self, data, max_pixels=bitstream.DEFAULT_MAX_PIXELS):
    """bytes of a tfcae file -> uint8 [H, W, 3]. Images over `max_pixels` pixels (0: no
    limit) are refused from the header."""
    stream = self.parse(data, max_pixels)
    self.check_payload(stream)
    try:
      if self.bounded:
        image = self.module.decompress_limited(tf.constant(data),
                                               tf.constant(max_pixels, tf.int64))
      else:
        image = self.module.decompress(tf.constant(data))
      return image.numpy()
    except tf.errors.ResourceExhaustedError:
      raise TfcaeError(f"out of memory decoding a {stream.width}x{stream.height} image; lower "
                       "--max_pixels to refuse such files up front") from None
    except tf.errors.OpError as e:  # the in-graph checks, as a last line
      raise TfcaeError(f"cannot decode bitstream: {graph_error_message(e)}") from None

  def estimate_bits(self, image):
    return float(self.module.estimate_bits(tf.constant(image)).numpy())


def graph_error_message(error):
  """The cause in a TensorFlow error's message, on one line.

  tf.debugging.Assert reports "assertion failed: [<message>] ...", in a SavedModel below a
  "Graph execution error:" line and a node trace ("... Summarized data: b'<message>'"
  when it runs eagerly); another op's message follows the trace.
  """
  checked = (re.search(r"assertion failed: \[(.*?)\]", error.message) or
             re.search(r"Summarized data: b'(.*?)'", error.message))  # eager asserts
  if checked:
    message = checked.group(1).replace("\\'", "'")
    if message.startswith("Sanity check failed"):  # TFC's finalize check (old SavedModels)
      return ("corrupted tfcae bitstream (the range decoder's sanity check failed: the "
              "payload was not consumed exactly)")
    return message
  skip = ("Graph execution error", "Detected at node", "<stack traces unavailable>",
          "[[{{node", "File ", "Node:")
  for line in error.message.splitlines():
    line = line.strip()
    if line and not line.startswith(skip):
      return line[:300]
  return error.__class__.__name__


def compress_file(codec, input_path, output_path, max_pixels=bitstream.DEFAULT_MAX_PIXELS):
  """Compresses an image file to a tfcae file. Returns a dict of statistics. Images over
  `max_pixels` pixels (0: no limit) are refused from their header, before decoding."""
  image = load_rgb_image(input_path, max_pixels=max_pixels)
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


def decompress_file(codec, input_path, output_path, max_pixels=bitstream.DEFAULT_MAX_PIXELS):
  """Decompresses a tfcae file to PNG with a Codec, or with the Codec that
  `codec(data, input_path)` returns for the file's bytes, e.g. tfcae.zoo.codec_of (the zoo
  model whose fingerprint the file carries: the lookup is the zoo's, which builds Codecs,
  so that this module need not import the zoo back). Nothing is written unless decoding
  succeeds. `max_pixels`: as Codec.decompress."""
  if not os.path.isfile(input_path):
    raise TfcaeError(f"{input_path}: no such file")
  with open(input_path, "rb") as f:
    data = f.read()
  if callable(codec):
    codec = codec(data, input_path)
  image, seconds = timed(codec.decompress, data, max_pixels)
  save_png(output_path, image)
  return {"height": image.shape[0], "width": image.shape[1], "seconds": seconds}
