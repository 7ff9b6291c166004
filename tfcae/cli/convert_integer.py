"""Convert a float scale hyperprior's hyper-synthesis to the integer network (no training).

The converted model is cross-platform (tfcae/models/integer.py, Ballé et al. 2019):

  bin/convert_integer --model=runs/hp01 --output_dir=runs/hp01_integer \\
      --calibration_images=../shared/data/train

Every float weight is kept, the integer layers' activation steps are calibrated on one
batch of random crops of --calibration_images, and the result is exported (SavedModel,
tfcae_export.json) to --output_dir. Its files decode on any machine; on Kodak the rate
is that of the float model (−0.2 %, docs/results.md), and the pixels are the same.
"""
from absl import flags

from tfcae import cli
import tensorflow as tf  # noqa: F401  (before cli.run: see its docstring)
from tfcae import TfcaeError
from tfcae.data import images as data
from tfcae.training import loop as training
from tfcae.serving.export import export_model
from tfcae.serving import ExportedModel

__all__ = ["main"]

cli.define_model_flags()
flags.DEFINE_string("output_dir", None, "Where the converted model is exported.")
flags.DEFINE_string("calibration_images", None, "Folder, glob or list of training images.")
flags.DEFINE_integer("patch_size", 128, "Calibration crop size (the training crop size).")
flags.DEFINE_integer("batch_size", 8, "Calibration crops.")
flags.mark_flags_as_required(["output_dir", "calibration_images"])
FLAGS = flags.FLAGS


def main():
  model_dir = cli.model_dir_from_flags()
  if ExportedModel(FLAGS.output_dir).is_exported():
    raise TfcaeError(f"{FLAGS.output_dir} already holds an exported model")
  files = data.image_files(FLAGS.calibration_images, "calibration images")
  batch = next(iter(data.train_dataset(files, FLAGS.patch_size, FLAGS.batch_size, seed=0)))
  model = training.convert_to_integer_hyper_synthesis(model_dir, batch)
  export_model(model, FLAGS.output_dir)
  print(f"wrote {FLAGS.output_dir} (fingerprint {model.fingerprint.numpy().hex()})")
