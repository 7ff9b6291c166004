"""Host-side coding of a device encoder's symbols.

The device runs the analysis transform and the rounding (a device target's encoder,
tfcae.deploy.device); the host range-codes its int32 symbols round(y − o) with the
exported model's entropy model (the SavedModel's `compress_symbols`, the latent codec's
`compress_symbols`), writing the ordinary tfcae file format. `HostCoder` takes any
target's encoder: it knows symbols, not runtimes.

A large image goes to the device in windows (tfcae.models.tiling: core tiles with halos
of the analysis transform's receptive field, shifted inwards at the image's edges), and
the host joins the symbols of the cores: the device's memory is bounded by the window,
and an encoder with a static input shape (`bin/export --tile=T`: windows of
T + 2·halo pixels) codes any image at least one window large (a smaller one is edge-
padded up to the window; its symbols are then those of the larger image, still a valid
file of the original size).
"""
from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np
import tensorflow as tf
import tensorflow_compression  # noqa: F401  (registers the range coding ops)

from tfcae import TfcaeError
from tfcae.deploy.device import DeviceEncoder
from tfcae.deploy.targets import open_encoder
from tfcae.io.fileio import load_rgb_image
from tfcae.models import tiling
from tfcae.objectives import metrics
from tfcae.serving import ExportedModel, open_model
from tfcae.serving.codec import Codec

__all__ = ["HostCoder", "host_coding_quality", "pad_to_stride"]


def pad_to_stride(image: np.ndarray, stride: int) -> np.ndarray:
  """Edge padding at the bottom/right to multiples of `stride` (as base.edge_pad)."""
  h, w = image.shape[:2]
  ph, pw = (-h) % stride, (-w) % stride
  return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="edge")


class HostCoder:
  """A device encoder plus host-side range coding: compresses images to tfcae files.

  Args:
    encoder: a DeviceEncoder, or the path of an encoder file (its suffix names the target).
    model: the exported model the encoder was converted from (ExportedModel or a model
      reference: a directory or `zoo:<family>/<quality>`).
    num_threads: the encoder's threads, when `encoder` is a path.
    tile: the core tile in pixels fed to an encoder that takes any size (None or 0: the
      whole image in one window); an encoder with a static input shape sets its own.
  """

  def __init__(self, encoder: Union[DeviceEncoder, str, os.PathLike],
               model: Union[ExportedModel, str, os.PathLike], num_threads: int = 1,
               tile: Optional[int] = None):
    if isinstance(encoder, (str, os.PathLike)):
      name, self.encoder = os.fspath(encoder), open_encoder(os.fspath(encoder), num_threads)
    else:
      name, self.encoder = "the encoder", encoder
    self.exported = open_model(model)
    if self.exported.rate_points:
      raise TfcaeError(f"{self.exported}: host coding of a variable-rate model's device "
                       "encoder is not supported yet")
    if "compress_symbols" in self.exported.signatures:
      self._code = self.exported.saved_model().compress_symbols
    else:  # an export without the signature: the same tables, from the Keras model
      self._model = self.exported.restore_keras()  # a tf.function method holds it weakly
      self._code = self._model.compress_symbols
    self.stride = self.exported.stride
    self.window = self.encoder.input_window
    self.tile = self.exported.check_tile(tile) or None
    if self.window is not None:
      if tile:
        raise TfcaeError(f"{name} has a static input shape (windows of {self.window[1]}x"
                         f"{self.window[0]}); --tile is for encoders that take any size")
      self.exported.check_tile(0)  # the halos are needed: an export that records them
    architecture = self.exported.architecture
    latent_channels = int(architecture.get("latent_channels") or architecture["num_filters"])
    channels = self.encoder.latent_channels
    if channels not in (-1, latent_channels):
      raise TfcaeError(f"{name} outputs {channels} latent channels, the model in "
                       f"{self.exported} codes {latent_channels}")

  def compress(self, image: np.ndarray) -> bytes:
    """Codes an image (uint8 [H, W, 3]); returns the bytes of a tfcae file."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
      raise TfcaeError(f"expected a uint8 RGB image [H, W, 3], got {image.dtype} {image.shape}")
    symbols = self.symbols(pad_to_stride(image, self.stride))
    return self._code(tf.constant(symbols, tf.int32), tf.constant(image.shape[0], tf.int32),
                      tf.constant(image.shape[1], tf.int32)).numpy()

  def symbols(self, padded: np.ndarray) -> np.ndarray:
    """The device's symbols of a padded image, window by window (module docstring).

    Args:
      padded: uint8 [H, W, 3], H and W multiples of the stride.

    Returns:
      int32 [1, H/s, W/s, C].
    """
    if self.window is None and self.tile is None:
      return self.encoder.symbols(padded)
    halos = self.exported.tiling
    halo, step = halos["analysis_halo"], halos["latent_stride"]
    height, width = padded.shape[:2]
    if self.window is not None:
      cores = [w - 2 * halo for w in self.window]
      if min(cores) < step or any(c % step for c in cores):
        raise TfcaeError(f"the encoder's {self.window[1]}x{self.window[0]} windows do not "
                         f"hold a core tile of a multiple of {step} pixels inside halos of "
                         f"{halo}: not a tiled export of this model")
      # An image smaller than a window in a dimension fills it, edge-padded.
      grown = np.pad(padded, ((0, max(self.window[0] - height, 0)),
                              (0, max(self.window[1] - width, 0)), (0, 0)), mode="edge")
    else:
      core = tiling.core_pixels(self.tile, step)
      cores, grown = [core, core], padded
    spans = [[[int(v) for v in tiling.window(k, n, core, halo)]
              for k in range(-(-n // core))]
             for n, core in zip(grown.shape[:2], cores)]
    rows = []
    for r0, r1, v0, v1 in spans[0]:
      row = []
      for c0, c1, u0, u1 in spans[1]:
        out = self.encoder.symbols(np.ascontiguousarray(grown[v0:v1, u0:u1]))
        row.append(out[:, (r0 - v0) // step:(r1 - v0) // step,
                       (c0 - u0) // step:(c1 - u0) // step])
      rows.append(np.concatenate(row, axis=2))
    return np.concatenate(rows, axis=1)[:, :height // step, :width // step]


def host_coding_quality(encoder, model, paths) -> list:
  """Per-image (bpp, PSNR) of images coded through a device encoder and host coding,
  decoded by the model's SavedModel: what a phone-to-server user gets.

  Args:
    encoder: a DeviceEncoder or an encoder file (its suffix names the target).
    model: the exported model (ExportedModel or a model reference).
    paths: image files.

  Returns:
    [(bpp, PSNR in dB)] per image.
  """
  exported = open_model(model)
  host, codec = HostCoder(encoder, exported), Codec(exported)
  results = []
  for path in paths:
    image = load_rgb_image(path)
    stream = host.compress(image)
    results.append((metrics.bpp(len(stream), *image.shape[:2]),
                    float(metrics.psnr(image, codec.decompress(stream)))))
  return results
