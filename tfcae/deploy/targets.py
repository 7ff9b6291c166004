"""The device targets tfcae ships, registered: importing this module imports each target's
module, which is what fills DEVICE_TARGETS (as tfcae.models' import fills the architecture
registry). A new target is one module, imported here, plus its test (docs/design.md).
"""
from tfcae.deploy import tflite  # noqa: F401  (registers "tflite")
from tfcae.deploy.device import DEVICE_TARGETS, open_encoder, target_for_file

__all__ = ["DEVICE_TARGETS", "open_encoder", "target_for_file"]
