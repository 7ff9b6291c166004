"""Device targets: the seam between an exported model and a runtime on the sender.

Range coding does not run on the device: the device runs the analysis transform and the
rounding, and sends the int32 symbols round(y − o) (o: the latent codec's offset); the
host range-codes them into the ordinary tfcae file (tfcae.deploy.hostcoding.HostCoder,
which takes any target's encoder). A target is the two halves of the device side:

  convert(exported, output_path, **options) -> info   the encoder file for the runtime
  load(encoder, num_threads) -> DeviceEncoder         run such a file on this machine

Targets register like architectures (DEVICE_TARGETS, by `name`); each declares the file
suffix of its encoders, so a file names its runtime. TFLite is one (tfcae.deploy.tflite);
`tfcae/deploy/__init__.py` imports the members, which fills the registry. A new runtime
is one module with a registered DeviceTarget sub-class, plus its test.
"""
from __future__ import annotations

import os
from typing import Any, Union

import numpy as np

from tfcae import TfcaeError
from tfcae.registry import Registry

__all__ = ["DEVICE_TARGETS", "DeviceEncoder", "DeviceTarget", "target_for_file",
           "open_encoder"]

DEVICE_TARGETS = Registry("device target", attribute="name", error=TfcaeError)


class DeviceEncoder:
  """A device encoder running on this machine: what host coding needs from a target."""

  # What runs it here and on how many threads, for the tools to say (e.g. "LiteRT 2.3.0").
  runtime = "unknown"
  num_threads = 1

  @property
  def latent_channels(self) -> int:
    """The channels of the symbols (-1 when the encoder leaves them open)."""
    raise NotImplementedError

  @property
  def input_window(self):
    """(height, width) of an encoder with a static input shape (one window of a tiled
    image, tfcae.deploy.hostcoding), None when it takes any padded size."""
    return None

  def symbols(self, padded: np.ndarray) -> np.ndarray:
    """The encoder's output for one image.

    Args:
      padded: uint8 [H, W, 3], H and W multiples of the model's stride (edge-padded).

    Returns:
      int32 [1, H/stride, W/stride, C]: round(y − o), the symbols the entropy coder codes.
    """
    raise NotImplementedError


class DeviceTarget:
  """Base class of a device runtime. Sub-classes set `name` and `suffix` and register
  with `@DEVICE_TARGETS.register`."""

  name = None
  suffix = None  # the extension of its encoder files, e.g. ".tflite"

  def convert(self, exported, output_path: str, **options: Any) -> dict:
    """Writes the encoder of an exported model for this runtime.

    Args:
      exported: a tfcae.serving.ExportedModel.
      output_path: the encoder file (ends with `suffix`).
      **options: the target's own (e.g. quantisation).

    Returns:
      What was written (also saved beside the file as `<output_path>.json`).
    """
    raise NotImplementedError

  def load(self, encoder: Union[str, bytes], num_threads: int = 1) -> DeviceEncoder:
    """A DeviceEncoder running an encoder file (its path or bytes) on this machine."""
    raise NotImplementedError


def target_for_file(path: str) -> DeviceTarget:
  """The registered target whose encoders have `path`'s suffix; a one-line TfcaeError
  listing the known suffixes otherwise."""
  suffix = os.path.splitext(os.fspath(path))[1].lower()
  for cls in DEVICE_TARGETS.values():
    if cls.suffix == suffix:
      return cls()
  known = ", ".join(f"{cls.suffix} ({name})" for name, cls in DEVICE_TARGETS.items())
  raise TfcaeError(f"{path}: not a device encoder file this tfcae runs (known: {known})")


def open_encoder(path: str, num_threads: int = 1) -> DeviceEncoder:
  """The DeviceEncoder of an encoder file, by its suffix (target_for_file)."""
  return target_for_file(path).load(path, num_threads)
