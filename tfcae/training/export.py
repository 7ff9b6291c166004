"""A bin/train run's model, restored from its latest checkpoint.

The export itself (the SavedModel, tfcae_export.json, restoring a Keras model from an
export) is the serving layer's: tfcae.serving.export. This is what only a run directory
has: checkpoints, with the objective's state beside the model's.
"""
from __future__ import annotations

import tensorflow as tf

from tfcae import TfcaeError
from tfcae.serving import ExportedModel
from tfcae.serving.exported import restore_keras
from tfcae.training.rundir import RunDir

__all__ = ["load_trained"]


def load_trained(model_dir, for_compression: bool = True):
  """Restores the trained model of a bin/train directory.

  The architecture comes from tfcae_export.json (or train_config.json), the weights from
  the latest checkpoint; the fingerprint is then set to the exported one, so files written
  with the restored model decode with the exported SavedModel (the fingerprint hashes
  variable names, which depend on object-creation history; the weights are those of the
  export). A folder without checkpoints (a zoo model) is restored from its SavedModel.

  Args:
    model_dir: the run directory (a path or RunDir).
    for_compression: build the range-coding tables (takes a while; not needed to train).

  Returns:
    The CompressionModel.
  """
  from tfcae.models import build_model
  run = RunDir(model_dir).require()
  exported = ExportedModel(run.path)
  architecture = run.architecture()  # tfcae_export.json, else train_config.json
  latest = run.latest_checkpoint()
  if latest is None:
    if exported.is_exported():  # a zoo model: the SavedModel's variables are the weights
      return restore_keras(exported, for_compression=for_compression)
    raise TfcaeError(f"{run}: no checkpoint in {run.checkpoint_dir}")
  model = build_model(architecture)
  # Only the model: optimizer slots and objective state (masks, multipliers) are not needed.
  status = tf.train.Checkpoint(model=model).restore(latest)
  status.expect_partial()
  status.assert_existing_objects_matched()
  if not for_compression:
    return model
  model.prepare_for_compression()
  if exported.is_exported() and exported.info.get("fingerprint"):
    model.fingerprint.assign(exported.fingerprint)
  return model
