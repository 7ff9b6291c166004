"""Writing a trained model as a self-contained tf.saved_model.

The SavedModel holds one function per entry of the model's `SIGNATURES`
(tfcae.models.base.CompressionModel), each under its name, as a serving signature and as
an attribute (`loaded.compress(...)`), plus `loaded.fingerprint` and the variables. For
today's models:

  compress(image: uint8 [H, W, 3]) -> {"bitstream": string}   the exact bytes of a .tfcae file
  decompress(bitstream: string [])  -> {"image": uint8 [H, W, 3]}
  decompress_limited(bitstream: string [], max_pixels: int64 [])
                                    -> {"image": uint8 [H, W, 3]}  with a size limit (0: none);
                                       decompress's is bitstream.DEFAULT_MAX_PIXELS
  estimate_bits(image: uint8 [H, W, 3]) -> {"bits": float32}  entropy-model estimate
  compress_tiled(image, tile: int32 []), decompress_tiled(bitstream, max_pixels, tile: int32 [])
                                    the same with the transforms run in core tiles of
                                       `tile` pixels (0: whole image; -1: as the others,
                                       tiles above 640 x 640), tfcae.models.tiling
  compress_symbols(symbols: int32 [1, h, w, C], height: int32 [], width: int32 [])
                                    -> {"bitstream": string}  the file of a device encoder's
                                       symbols round(y − o) (tfcae.deploy)

Loading needs only `import tensorflow, tensorflow_compression` (TFC registers the range
coding ops), not tfcae. tfcae_export.json records what a file decoder checks before the
SavedModel runs (the string layout) and each signature's inputs.
"""
from __future__ import annotations

import os
from typing import Optional

import tensorflow as tf

from tfcae.serving.exported import ExportedModel, restore_keras

__all__ = ["export_model", "reexport"]

# Keys export_model writes; everything else in tfcae_export.json is the caller's.
_OWN_KEYS = ("architecture", "fingerprint", "stride", "num_strings", "signatures",
             "signature_inputs", "string_layout", "latent_codec", "tiling")


def export_model(model, model_dir: str, extra_info: Optional[dict] = None) -> dict:
  """Writes the SavedModel and tfcae_export.json.

  Args:
    model: a CompressionModel after prepare_for_compression().
    model_dir: the output directory.
    extra_info: more keys for tfcae_export.json (e.g. the training summary's name).

  Returns:
    The export info written.
  """
  if not model.compression_ready:
    raise ValueError("call model.prepare_for_compression() before exporting")
  functions = model.serving_functions()
  module = tf.Module()
  # Only what serving needs: the compiled functions and the variables they capture
  # (transforms, priors, coding tables, fingerprint). No Keras objects, so saving is
  # quick and loading needs no tfcae code.
  for name, (function, _) in functions.items():
    setattr(module, name, function)
  module.fingerprint = model.fingerprint
  module.model_variables = model.state_variables() + [
      v for coder in model.entropy_models() for v in coder.variables]
  signatures = {name: _named(function, output)
                for name, (function, output) in functions.items()}
  tf.saved_model.save(module, os.fspath(model_dir), signatures=signatures)
  info = {"architecture": model.get_config(), "fingerprint": model.fingerprint.numpy().hex(),
          "stride": model.stride, "num_strings": model.num_strings,
          "signatures": sorted(signatures),
          "signature_inputs": {name: [[spec.name, spec.dtype.name,
                                       [None if d is None else int(d) for d in spec.shape]]
                                      for spec in function.input_signature]
                               for name, (function, _) in sorted(functions.items())},
          "string_layout": type(model).string_layout(),
          "latent_codec": type(model.latent_codec()).__name__,
          # The windows' halos (tfcae.models.tiling): what a host that tiles a device
          # encoder's input, and a check of a requested tile, need.
          "tiling": model.tiling_halos()}
  info.update(extra_info or {})
  ExportedModel(model_dir).write_info(info)
  return info


def reexport(model_dir: str, out_dir: str) -> dict:
  """Writes an exported model again with today's serving graph: the same variables,
  coding tables and fingerprint, so it writes and reads the same files; the export info
  is kept, bar what export_model sets.

  Args:
    model_dir: the exported model.
    out_dir: where to write it (may not be `model_dir`).

  Returns:
    The new export info.
  """
  exported = ExportedModel(model_dir)
  model = restore_keras(exported)
  old = exported.info
  extra = {k: v for k, v in old.items() if k not in _OWN_KEYS}
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
