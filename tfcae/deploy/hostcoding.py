"""Host-side coding of a device encoder's symbols.

The device runs the analysis transform and the rounding (a device target's encoder,
tfcae.deploy.device); the host range-codes its int32 symbols round(y − o) with the
exported model's entropy model (the SavedModel's `compress_symbols`, the latent codec's
`compress_symbols`), writing the ordinary tfcae file format. `HostCoder` takes any
target's encoder: it knows symbols, not runtimes.
"""
from __future__ import annotations

import os
from typing import Union

import numpy as np
import tensorflow as tf
import tensorflow_compression  # noqa: F401  (registers the range coding ops)

from tfcae import TfcaeError
from tfcae.deploy.device import DeviceEncoder
from tfcae.deploy.targets import open_encoder
from tfcae.io.fileio import load_rgb_image
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
  """

  def __init__(self, encoder: Union[DeviceEncoder, str, os.PathLike],
               model: Union[ExportedModel, str, os.PathLike], num_threads: int = 1):
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
    symbols = self.encoder.symbols(pad_to_stride(image, self.stride))
    return self._code(tf.constant(symbols, tf.int32), tf.constant(image.shape[0], tf.int32),
                      tf.constant(image.shape[1], tf.int32)).numpy()


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
