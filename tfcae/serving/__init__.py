"""The serving layer: an exported model as an object, and the files it writes and reads.

Below training (which writes exports) and above the models (which it restores), so that
deploy, the zoo, evaluation and the command line work on an exported model without
reaching into training:

  open_model(reference)        a directory or 'zoo:<family>/<quality>' -> ExportedModel
  ExportedModel                paths, tfcae_export.json, fingerprint, signatures, the
                               SavedModel, restore_keras()
  codec.Codec(exported)        compress / decompress bytes, with the file checks
  codec.compress_file, codec.decompress_file
  export_model, reexport       (tfcae.serving.export: writing an export)
"""
from tfcae.serving.exported import ExportedModel, open_model

# Codec, compress_file and decompress_file are tfcae.serving.codec's: that module imports
# TensorFlow, which reading an export's JSON (and the run directory) does not need.
__all__ = ["ExportedModel", "open_model"]
