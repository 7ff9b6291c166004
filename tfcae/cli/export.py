"""Export a trained model's encoder for a device runtime (a device target; TFLite today).

  tfcae export --model=runs/quickstart --target=tflite --output=encoder.tflite \\
      [--quantize=none|float16|int8] [--representative_images='data/sample/train/*.jpg']
      [--int8_gdn=integer|float] [--qat_steps=N --qat_images=GLOB] [--int8_reference=DIR]
  tfcae export --model=zoo:factorized/3 --tflite=encoder.tflite     # the same as --target=tflite

The encoder holds the analysis transform (physically reduced when the model is sparse)
and the rounding: its output is the int32 symbols the entropy coder codes. Range coding
runs on the host: tfcae compress --tflite=encoder.tflite --model=... (tfcae/deploy/).
"""
import os

from absl import flags

from tfcae import TfcaeError, cli
import tensorflow as tf  # noqa: F401  (before cli.run: see its docstring)
from tfcae.deploy import qat, tflite
from tfcae.deploy.targets import DEVICE_TARGETS
from tfcae.serving import open_model

__all__ = ["main"]

cli.define_model_flags()
flags.DEFINE_string("target", "tflite", "The device runtime, one of the registered device "
                    f"targets: {', '.join(DEVICE_TARGETS)} (tfcae.deploy.targets).")
flags.DEFINE_string("output", None, "Output encoder file, with the target's suffix (plus "
                    "<file>.json describing it); never a file of the model.")
flags.DEFINE_string("tflite", None, "The same as --target=tflite --output=FILE.")
flags.DEFINE_enum("quantize", "none", list(tflite.QUANTIZE),
                  "none: float32; float16: float16 weights; int8: full-integer post-training "
                  "quantisation, uint8 input, int8 symbols (tfcae.deploy.qat; needs "
                  "--representative_images).")
flags.DEFINE_string("representative_images", "",
                    "Glob or folder of images whose crops calibrate int8 activations.")
flags.DEFINE_integer("qat_steps", 0, "int8: steps of quantization-aware fine-tuning of the "
                     "encoder (decoder and entropy model fixed); 0: calibration only.")
flags.DEFINE_string("qat_images", "", "int8 with --qat_steps: glob or folder of training "
                    "images (random 128² crops, batch 8).")
flags.DEFINE_float("qat_learning_rate", 1e-5, "Adam learning rate of the fine-tuning.")
flags.DEFINE_float("qat_lmbda", 0., "λ of the fine-tuning's R + λ·D (0: the run's --lmbda).")
flags.DEFINE_string("int8_reference", "", "int8: also save the int8 encoder as a SavedModel "
                    "here (signature `symbols`: what the device computes, on a server).")
flags.DEFINE_enum("int8_gdn", "integer", list(qat.GDN_MODES),
                  "int8: how the encoder's GDNs run. integer: |x| and the C×C pool in int8, "
                  "only the division in float (≈ 0.34× float32's time on LiteRT); float: "
                  "each whole GDN in float between DEQUANTIZE and QUANTIZE (≈ 0.44×).")
flags.DEFINE_integer("tile", 0, "A static input shape: windows of this core tile (pixels, "
                     "rounded up to the latent stride) plus the receptive field's halo on "
                     "each side; bin/compress --tflite feeds any image in such windows. "
                     "0: any input size.", lower_bound=0)
FLAGS = flags.FLAGS
# The TFLite target's options, passed to its convert().
TFLITE_OPTIONS = ("quantize", "representative_images", "qat_steps", "qat_images",
                  "qat_learning_rate", "qat_lmbda", "int8_reference", "tile", "int8_gdn")


def _inside(path, folder):
  path, folder = os.path.realpath(path), os.path.realpath(folder)
  return path == folder or path.startswith(os.path.join(folder, ""))


def main():
  if FLAGS.tflite and (FLAGS.output or FLAGS["target"].present and FLAGS.target != "tflite"):
    raise TfcaeError("--tflite=FILE is --target=tflite --output=FILE: give one of them")
  target, output = ("tflite", FLAGS.tflite) if FLAGS.tflite else (FLAGS.target, FLAGS.output)
  flag = "--tflite" if FLAGS.tflite else "--output"
  if not output:
    raise TfcaeError("give --output=FILE (or --tflite=FILE)")
  device = DEVICE_TARGETS.get(target)()
  model_dir = cli.model_dir_from_flags()
  cli.check_output(model_dir, output, (device.suffix,),
                   f"the {target} target writes {device.suffix} files", flag=flag)
  # The .json beside the encoder must not replace a file of the model either.
  cli.check_output(model_dir, output + ".json", (".json",), "export writes .json", flag=flag)
  if FLAGS.int8_reference and _inside(FLAGS.int8_reference, model_dir) and (
      os.path.lexists(FLAGS.int8_reference)):
    raise TfcaeError(f"--int8_reference={FLAGS.int8_reference} is (in) the model "
                     f"{model_dir}: refusing to overwrite it")
  if target == "tflite":
    options = {name: FLAGS[name].value for name in TFLITE_OPTIONS}
  else:
    given = [f"--{name}" for name in TFLITE_OPTIONS if FLAGS[name].present]
    if given:
      raise TfcaeError(f"{', '.join(given)}: options of the tflite target, not {target}")
    options = {}
  info = device.convert(open_model(model_dir), output, **options)
  if target == "tflite":
    print(f"{output}: {info['bytes']} bytes, {FLAGS.quantize}, "
          f"{'reduced' if info['reduced_encoder'] else 'dense'} encoder, "
          f"ops {','.join(info['ops'])}")
  else:
    print(f"{output}: {target} encoder")
