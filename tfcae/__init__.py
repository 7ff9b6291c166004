"""tfcae: compressive autoencoders with cheap encoders, on TensorFlow Compression.

The package follows the compression pipeline, one folder per stage (bottom to top;
imports only run downwards, see docs/design.md):

  io/          files, the .tfcae format, bounded range decoding, the zoo's cards
  data/        tf.data pipelines, TFRecord shards
  nn/          GDN, quantizers
  models/      transforms + entropy models; the generic Keras train/test step
  objectives/  the objective seam: step context, rate, distortion, hooks; metrics
  methods/     D-CO/R-CO, ADMM (CAE-P), decorrelation, sparsity (projections, constraints,
               double descent)
  training/    settings (TrainConfig), the run directory, the fit loop, export
  deploy/      codec, TFLite and int8 encoders, channel removal, TF-MOT pruning, timing
  analysis/    MACs and memory
  evaluation/  RD evaluation, classical codecs, BD-rate, results, plots
  zoo/         the pretrained zoo (tfcae.zoo.load) and the ladder that trains it
"""

__all__ = ["TfcaeError"]

__version__ = "0.1.0"


class TfcaeError(Exception):
  """An error with a one-line, user-facing message (the CLIs print it and exit 1)."""
