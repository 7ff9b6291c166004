"""Exporting a trained model as a self-contained tf.saved_model.

The SavedModel in `model_dir` has three named signatures:

  compress(image: uint8 [H, W, 3]) -> {"bitstream": string}   the exact bytes of a .tfcae file
  decompress(bitstream: string [])  -> {"image": uint8 [H, W, 3]}
  decompress_limited(bitstream: string [], max_pixels: int64 [])
                                    -> {"image": uint8 [H, W, 3]}  with a size limit (0: none);
                                       decompress's is bitstream.DEFAULT_MAX_PIXELS
  estimate_bits(image: uint8 [H, W, 3]) -> {"bits": float32}  entropy-model estimate
  compress_symbols(symbols: int32 [1, h, w, C], height: int32 [], width: int32 [])
                                    -> {"bitstream": string}  the file of a device encoder's
                                       symbols round(y − o) (tfcae.deploy.tflite)

and the same functions as attributes (`loaded.compress(...)`), plus `loaded.fingerprint`.
Loading needs only `import tensorflow, tensorflow_compression` (TFC registers the range
coding ops), not tfcae.
"""
import os

import tensorflow as tf

from tfcae.training.rundir import RunDir

__all__ = ["export_model", "reexport", "assign_matching", "restore_keras", "load_trained"]


def export_model(model, model_dir, extra_info=None):
  """Writes the SavedModel (prepare_for_compression() must have run) and its info JSON."""
  if not model.compression_ready:
    raise ValueError("call model.prepare_for_compression() before exporting")
  signatures = {
      "compress": _named(model.compress, "bitstream"),
      "decompress": _named(model.decompress, "image"),
      "decompress_limited": _named(model.decompress_limited, "image"),
      "estimate_bits": _named(model.estimate_bits, "bits"),
      # Host coding of a device encoder's symbols from the SavedModel alone.
      "compress_symbols": _named(model.compress_symbols, "bitstream"),
  }
  module = tf.Module()
  # Only what serving needs: the compiled functions and the variables they capture
  # (transforms, priors, coding tables, fingerprint). No Keras objects, so saving is
  # quick and loading needs no tfcae code.
  module.compress = model.compress
  module.decompress = model.decompress
  module.decompress_limited = model.decompress_limited
  module.estimate_bits = model.estimate_bits
  module.compress_symbols = model.compress_symbols
  module.fingerprint = model.fingerprint
  module.model_variables = model.state_variables() + [
      v for coder in model.entropy_models() for v in coder.variables]
  tf.saved_model.save(module, os.fspath(model_dir), signatures=signatures)
  info = {"architecture": model.get_config(), "fingerprint": model.fingerprint.numpy().hex(),
          "stride": model.stride, "num_strings": model.num_strings,
          "signatures": sorted(signatures)}
  info.update(extra_info or {})
  RunDir(model_dir).write_export_info(info)
  return info


def reexport(model_dir, out_dir):
  """Writes an exported model again with today's serving graph (e.g. bounded decoding,
  smaller constants): the same variables, coding tables and fingerprint, so it writes and
  reads the same files; the export info is kept, bar what export_model sets."""
  model = restore_keras(model_dir)
  old = RunDir(model_dir).read_export_info()
  extra = {k: v for k, v in old.items()
           if k not in ("architecture", "fingerprint", "stride", "num_strings", "signatures")}
  info = export_model(model, out_dir, extra)
  if info["fingerprint"] != old["fingerprint"]:  # restore_keras assigns it: cannot differ
    raise AssertionError(f"{model_dir}: re-export changed the fingerprint")
  return info


def _named(function, output_name):
  """Wraps a tf.function so its serving signature has a named output."""
  spec = function.input_signature

  @tf.function(input_signature=spec)
  def serving(*args):
    return {output_name: function(*args)}

  return serving


def assign_matching(targets, sources, what):
  """Assigns each target variable the source variable of the same name and shape (the
  k-th target of a (name, shape) gets the k-th such source: names repeat, order does
  not change). Raises ValueError naming the first variable without a source."""
  pool = {}
  for v in sources:
    pool.setdefault((v.name, tuple(v.shape)), []).append(v)
  used = {}
  for v in targets:
    key = (v.name, tuple(v.shape))
    k = used.get(key, 0)
    candidates = pool.get(key, [])
    if k >= len(candidates):
      raise ValueError(f"{what} has no variable {v.name} {tuple(v.shape)}")
    v.assign(candidates[k])
    used[key] = k + 1


def restore_keras(model_dir, for_compression=True):
  """The Keras model of an exported SavedModel (a zoo model has no checkpoint): the
  architecture from tfcae_export.json, every weight from the SavedModel's variables;
  with `for_compression`, its coding tables and fingerprint too, so files it writes are
  the SavedModel's own, byte for byte."""
  from tfcae import TfcaeError
  from tfcae.models import build_model
  run = RunDir(model_dir).require_export()
  info = run.read_export_info()
  saved = tf.saved_model.load(run.path)
  model = build_model(info["architecture"])
  try:
    assign_matching(model.weight_variables(), saved.model_variables, model_dir)
    if for_compression:
      model.prepare_for_compression()
      # The saved tables, not ones rebuilt here: they are what the files were coded with.
      coder_variables = [v for coder in model.entropy_models() for v in coder.variables]
      assign_matching(coder_variables, saved.model_variables, model_dir)
  except ValueError as e:
    raise TfcaeError(f"{model_dir}: the SavedModel does not match its architecture "
                     f"({e})") from None
  model.fingerprint.assign(saved.fingerprint)
  return model


def load_trained(model_dir, for_compression=True):
  """Restores the trained model of a bin/train directory (ready to compress, unless
  `for_compression=False`: building the range-coding tables takes a while).

  Architecture from tfcae_export.json (or train_config.json), weights from the latest
  checkpoint. The fingerprint is then set to the exported one, so files written with the
  restored model decode with the exported SavedModel (the fingerprint hashes variable
  names, which depend on object-creation history; the weights are those of the export).
  """
  from tfcae import TfcaeError
  from tfcae.models import build_model
  run = RunDir(model_dir).require()
  architecture = run.architecture()  # tfcae_export.json, else train_config.json
  info = run.read_export_info() if os.path.exists(run.export_info_path) else None
  latest = run.latest_checkpoint()
  if latest is None:
    if run.is_exported():  # a zoo model: the SavedModel's variables are the weights
      return restore_keras(run, for_compression=for_compression)
    raise TfcaeError(f"{run}: no checkpoint in {run.checkpoint_dir}")
  model = build_model(architecture)
  # Only the model: optimizer slots and objective state (masks, multipliers) are not needed.
  status = tf.train.Checkpoint(model=model).restore(latest)
  status.expect_partial()
  status.assert_existing_objects_matched()
  if not for_compression:
    return model
  model.prepare_for_compression()
  if info is not None and info.get("fingerprint"):
    model.fingerprint.assign(bytes.fromhex(info["fingerprint"]))
  return model
