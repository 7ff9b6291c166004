"""tfcae: compressive autoencoders with cheap encoders, on TensorFlow Compression.

The package follows the compression pipeline:

  data            tfcae.data          tf.data pipelines from image folders/globs or TFDS
  transforms      tfcae.models        Keras models (analysis/synthesis + TFC entropy model)
  objective       tfcae.objectives    rate, distortion and extra terms; training hooks
  training        tfcae.training      fit loop, checkpoints/resume, export
  codec           tfcae.bitstream     the file format (built in-graph for serving)
                  tfcae.codec         loading an exported model, compress/decompress files
  evaluation      tfcae.evaluation    rate-distortion on image sets (CompressAI JSON)
"""

__version__ = "0.1.0"


class TfcaeError(Exception):
  """An error with a one-line, user-facing message (the CLIs print it and exit 1)."""
