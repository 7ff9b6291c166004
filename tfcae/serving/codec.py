"""Coding images to and from tfcae files with an exported model.

The exported SavedModel does the work (its `compress` returns the whole file, its
`decompress` parses and checks it in-graph). A `Codec` adds what a user-facing tool needs
around it: checks in plain Python first, so that an empty, truncated, corrupted or
foreign file, one written by another model, one whose header claims an image over the size
limit or whose payload is too short for it, gives a one-line TfcaeError before any
TensorFlow op runs; and atomic writes. The checks read the string layout the export
recorded (tfcae_export.json), so no architecture is named here.

SavedModels without the bounded decoder (no `decompress_limited` signature) decode with
TFC's own range decoder, which a crafted payload can hang (tfcae.io.safedecode). For
those, the string whose coding table is fixed (a factorized model's latents, a
hyperprior's side information) is first decoded here with safedecode's bounded decoder
and the SavedModel's own table; a string that is not the encoding of what it decodes to
is refused before the SavedModel runs.
"""
from __future__ import annotations

import os
import re
import time
from typing import Optional, Union

import numpy as np
import tensorflow as tf
import tensorflow_compression  # noqa: F401  (registers the range coding ops)

from tfcae import TfcaeError
from tfcae.io import bitstream, safedecode, zoo_index
from tfcae.io.fileio import atomic_write_bytes, load_rgb_image, save_png
from tfcae.objectives import metrics
from tfcae.serving import ratecontrol
from tfcae.serving.exported import ExportedModel, open_model

__all__ = ["Codec", "graph_error_message", "compress_file", "decompress_file",
           "codec_for_fingerprint"]


class Codec:
  """An exported tfcae model, ready to compress and decompress.

  Args:
    model: an ExportedModel, or a model reference (a directory or
      `zoo:<family>/<quality>`, tfcae.serving.open_model).
    tile: the core tile, in pixels, the transforms run in (tfcae.models.tiling): None,
      the export's default (tiles of tiling.DEFAULT_TILE above tiling.AUTO_ABOVE_PIXELS);
      0, the whole image at once. Files are the same either way (bar rare rounding ties).
  """

  def __init__(self, model: Union[str, os.PathLike, ExportedModel],
               tile: Optional[int] = None):
    self.exported = open_model(model)
    self.tile = self.exported.check_tile(tile)
    self.model_dir = self.exported.path
    self.info = self.exported.info
    self.module = self.exported.saved_model()
    self.fingerprint = self.module.fingerprint.numpy()
    self.num_strings = self.exported.num_strings
    # K of a variable-rate model (qualities [1, K], files of format version 3), else None.
    self.rate_points = self.exported.rate_points
    layout = self.exported.string_layout
    self.layout = layout if layout is not None and len(layout) == self.num_strings else None
    # A SavedModel with `decompress_limited` has a size-limited, hang-free decoder.
    self.bounded = hasattr(self.module, "decompress_limited")
    self._tables = self._coding_tables()

  def _coding_tables(self) -> dict:
    """{"batched" | "indexed": (cdf, per-row minimum bits)} of the SavedModel's range
    coding tables, from its variables; empty when the string layout is not known."""
    if self.layout is None:
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

  def compress(self, image: np.ndarray, quality: Optional[float] = None,
               max_bytes: Optional[int] = None, target_bpp: Optional[float] = None,
               target_psnr: Optional[float] = None) -> bytes:
    """Codes an image.

    Args:
      image: uint8 [H, W, 3].
      quality: a variable-rate model's quality in [1, K] (recorded in the file to 2^−16).
      max_bytes, target_bpp, target_psnr: instead of a quality, a target that rate
        control meets (tfcae.serving.ratecontrol; `compress_to` also says the quality).

    Returns:
      The bytes of a tfcae file.

    Raises:
      TfcaeError: a bad image, a quality or target this model cannot take, or a target
        that no quality meets.
    """
    target = ratecontrol.check_targets(self.rate_points, quality, max_bytes, target_bpp,
                                       target_psnr)
    if target not in (None, "quality"):
      return self.compress_to(image, max_bytes, target_bpp, target_psnr).data
    inputs = [tf.constant(_checked_image(image))]
    if self.rate_points:
      inputs.append(self._quality(quality))
    if self.tile is None:
      return self.module.compress(*inputs).numpy()
    return self.module.compress_tiled(*inputs, tf.constant(self.tile, tf.int32)).numpy()

  def compress_to(self, image: np.ndarray, max_bytes: Optional[int] = None,
                  target_bpp: Optional[float] = None, target_psnr: Optional[float] = None
                  ) -> ratecontrol.RateControlResult:
    """Codes an image at the quality that meets one target (variable-rate models).

    Args:
      image: uint8 [H, W, 3].
      max_bytes: the highest quality whose file has at most this many bytes.
      target_bpp: the same at ⌊bpp · H · W / 8⌋ bytes.
      target_psnr: the lowest quality whose decoded image reaches this PSNR (dB).

    Returns:
      The RateControlResult: the file's bytes, its quality, the codings it took.

    Raises:
      TfcaeError: no or several targets, a fixed-rate model, or a target that no quality
        meets (nothing is returned).
    """
    return ratecontrol.compress_to_target(self, _checked_image(image), max_bytes, target_bpp,
                                          target_psnr)

  @staticmethod
  def _quality(quality: float) -> tf.Tensor:
    # The quality the file records: what the model codes with (it rounds the same way).
    return tf.constant(bitstream.quantize_quality(quality), tf.float32)

  def parse(self, data: bytes, max_pixels: int = bitstream.DEFAULT_MAX_PIXELS
            ) -> bitstream.Bitstream:
    """Validates a file's bytes against this model; raises TfcaeError."""
    return self.check_stream(bitstream.parse(data, max_pixels=max_pixels))

  def check_stream(self, stream: bitstream.Bitstream) -> bitstream.Bitstream:
    """A parsed file is this model's: its fingerprint and number of strings. Returns it."""
    bitstream.check_fingerprint(stream.fingerprint, self.fingerprint)
    if self.rate_points and stream.version != 3:
      raise TfcaeError(f"a version-{stream.version} file cannot be a variable-rate model's "
                       "(version 3)")
    if not self.rate_points and stream.version == 3:
      raise TfcaeError("a version-3 file (variable rate) for a model of one rate")
    if self.rate_points and not 1 <= stream.quality <= self.rate_points:
      raise TfcaeError(f"corrupted tfcae bitstream (quality {stream.quality:g} outside the "
                       f"model's range [1, {self.rate_points}])")
    if len(stream.strings) != self.num_strings:
      raise TfcaeError(f"bitstream has {len(stream.strings)} strings, this model writes "
                       f"{self.num_strings}")
    return stream

  def _padded(self, n):
    stride = self.exported.stride
    return (n + stride - 1) // stride * stride

  def min_payload_bytes(self, height: int, width: int) -> list:
    """The fewest bytes each string of a height x width image can have (None where the
    string's table is not known)."""
    if self.layout is None:
      return [None] * self.num_strings
    minimum = []
    for string in self.layout:
      if string["table"] not in self._tables:
        minimum.append(None)
        continue
      step = int(string["stride"])
      positions = (self._padded(height) // step) * (self._padded(width) // step)
      rows = self._tables[string["table"]][1]
      if string["coding"] == "channels":
        bits = positions * float(rows.sum())
      else:  # any row per element: the cheapest row for each of the channels
        channels = int(string.get("channels") or self.exported.architecture["latent_channels"])
        bits = positions * channels * float(rows.min())
      minimum.append(safedecode.min_payload_bytes(bits))
    return minimum

  def check_payload(self, stream: bitstream.Bitstream) -> None:
    """The payload checks made in Python: each string at least as long as its symbols
    need; for a SavedModel without the bounded decoder, the string with a fixed table
    decoded here, boundedly, and refused unless consumed exactly. Raises TfcaeError."""
    for i, (string, least) in enumerate(zip(stream.strings,
                                            self.min_payload_bytes(stream.height, stream.width))):
      if least is not None and len(string) < least:
        raise TfcaeError(f"{safedecode.TOO_SHORT}: string {i + 1} has {len(string)} bytes, "
                         f"a {stream.width}x{stream.height} image needs at least {least}")
    if self.bounded or "batched" not in self._tables:
      return
    (i,) = [k for k, string in enumerate(self.layout) if string["table"] == "batched"]
    step = int(self.layout[i]["stride"])
    channels = len(self._tables["batched"][1])
    shape = [self._padded(stream.height) // step, self._padded(stream.width) // step, channels]
    try:
      safedecode.decode(tf.constant(stream.strings[i]), tf.constant(self._tables["batched"][0]),
                        tf.constant(shape, tf.int32))
    except tf.errors.OpError as e:
      raise TfcaeError(f"cannot decode bitstream: {graph_error_message(e)}") from None

  def decompress(self, data: bytes, max_pixels: int = bitstream.DEFAULT_MAX_PIXELS,
                 stream: Optional[bitstream.Bitstream] = None) -> np.ndarray:
    """Decodes a file.

    Args:
      data: the bytes of a tfcae file.
      max_pixels: images over this many pixels (0: no limit) are refused from the header.
      stream: the file already parsed (with the same `max_pixels`), so it is parsed once.

    Returns:
      uint8 [H, W, 3].

    Raises:
      TfcaeError: a file this model cannot decode, with the reason on one line.
    """
    stream = self.parse(data, max_pixels) if stream is None else self.check_stream(stream)
    self.check_payload(stream)
    try:
      if self.tile is not None:
        image = self.module.decompress_tiled(tf.constant(data), tf.constant(max_pixels, tf.int64),
                                             tf.constant(self.tile, tf.int32))
      elif self.bounded:
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

  def estimate_bits(self, image: np.ndarray, quality: Optional[float] = None) -> float:
    """The entropy model's estimate of the payload of `image` (uint8 [H, W, 3]), in bits
    (at `quality`, for a variable-rate model)."""
    ratecontrol.check_targets(self.rate_points, quality)
    if self.rate_points:
      return float(self.module.estimate_bits(tf.constant(image), self._quality(quality)))
    return float(self.module.estimate_bits(tf.constant(image)).numpy())


def _checked_image(image) -> np.ndarray:
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise TfcaeError(f"expected a uint8 RGB image [H, W, 3], got {image.dtype} {image.shape}")
  return image


def codec_for_fingerprint(fingerprint: bytes, name: str = "the file",
                          tile: Optional[int] = None) -> Codec:
  """The Codec of the zoo model with this fingerprint (what decodes a file when no model
  is given), running in `tile`s (Codec); a one-line TfcaeError when the zoo has none."""
  return Codec(ExportedModel(zoo_index.model_with(fingerprint, name)), tile)


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


def compress_file(codec, input_path: str, output_path: str,
                  max_pixels: int = bitstream.DEFAULT_MAX_PIXELS, **target) -> dict:
  """Compresses an image file to a tfcae file (written atomically; nothing is written
  when the target cannot be met).

  Args:
    codec: a Codec, or anything with its `compress` (a device encoder's host coder).
    input_path: an image file (PNG, JPEG, ...).
    output_path: the tfcae file to write.
    max_pixels: images over this many pixels (0: no limit) are refused from their header,
      before decoding.
    **target: a variable-rate model's quality=, or one of max_bytes=, target_bpp=,
      target_psnr= (Codec.compress_to); those that are None are ignored.

  Returns:
    {"bytes", "bpp", "height", "width", "seconds"}, and "quality" (with "codings") for
    a variable-rate model.
  """
  target = {k: v for k, v in target.items() if v is not None}
  rate_points = getattr(codec, "rate_points", None)
  ratecontrol.check_targets(rate_points, **target)
  image = load_rgb_image(input_path, max_pixels=max_pixels)
  start = time.perf_counter()
  chosen = {}
  if "quality" in target or not target:
    data = codec.compress(image, **target)
    if rate_points:
      chosen = {"quality": bitstream.quantize_quality(target["quality"]), "codings": 1}
  else:
    result = codec.compress_to(image, **target)
    data, chosen = result.data, {"quality": result.quality, "codings": result.codings}
  seconds = time.perf_counter() - start
  atomic_write_bytes(output_path, data)
  height, width = image.shape[:2]
  return dict({"bytes": len(data), "bpp": metrics.bpp(len(data), height, width),
               "height": height, "width": width, "seconds": seconds}, **chosen)


def decompress_file(model, input_path: str, output_path: str,
                    max_pixels: int = bitstream.DEFAULT_MAX_PIXELS,
                    tile: Optional[int] = None) -> dict:
  """Decompresses a tfcae file to PNG; nothing is written unless decoding succeeds.

  Args:
    model: a Codec, a model reference (tfcae.serving.open_model), or None: the zoo model
      whose fingerprint the file carries.
    input_path: the tfcae file.
    output_path: the PNG to write.
    max_pixels: as Codec.decompress.
    tile: for the zoo model found by fingerprint, the Codec's tile.

  Returns:
    {"height", "width", "seconds"}.
  """
  if not os.path.isfile(input_path):
    raise TfcaeError(f"{input_path}: no such file")
  with open(input_path, "rb") as f:
    data = f.read()
  stream = bitstream.parse(data, max_pixels=max_pixels)  # the one parse of the file
  if model is None:
    codec = codec_for_fingerprint(stream.fingerprint, input_path, tile)
  else:
    codec = model if isinstance(model, Codec) else Codec(model)
  start = time.perf_counter()
  image = codec.decompress(data, max_pixels, stream=stream)
  seconds = time.perf_counter() - start
  save_png(output_path, image)
  return {"height": image.shape[0], "width": image.shape[1], "seconds": seconds}
