"""Host-side coding of a device (TFLite) encoder's symbols (issue 7).

The device runs the analysis transform and the rounding (tfcae.deploy.tflite builds that
flatbuffer); the host runs it here in a plain tf.lite.Interpreter and range-codes its
int32 symbols round(y − o) with the trained model's entropy model
(`CompressionModel.compress_symbols`), writing the ordinary tfcae file format. An export
with the `compress_symbols` signature (tfcae.training.export) is all the host needs: the
SavedModel's function codes the symbols, with no Keras model rebuilt from a checkpoint.
Older exports fall back to the checkpoint (checked against the export).

This is the piece both tfcae.deploy.codec (`TFLiteCodec`, what `bin/compress --tflite` uses)
and tfcae.deploy.tflite (conversion, quality checks) need. It lived in tfcae.deploy.tflite, which made
codec and tflite import each other; here it sits below both, and imports neither.
"""
import os

import numpy as np
import tensorflow as tf
import tensorflow_compression  # noqa: F401  (registers the range coding ops)

from tfcae import TfcaeError
from tfcae.training.export import load_trained
from tfcae.training.rundir import RunDir

__all__ = ["HostCoder", "TFLiteEncoder", "load_trained_model", "pad_to_stride"]


# --- the trained Keras model ---------------------------------------------------------
def load_trained_model(model_dir):
  """Rebuilds the exported model of `model_dir` from its latest checkpoint, with coding
  tables, and carrying the exported fingerprint (files it writes decode with the
  SavedModel). Checks that the checkpoint holds the exported weights."""
  run = RunDir(model_dir).require_export()
  model = load_trained(run)  # with the exported fingerprint: the check below is
  # what guarantees the weights (the fingerprint hashes training-time state, Keras' own
  # loss tracker included, which a rebuilt model does not reproduce)
  if run.latest_checkpoint() is not None:
    _check_against_export(model, run)  # a zoo model's weights are the SavedModel's
  return model


def _check_against_export(model, model_dir):
  """Every weight the encoder and the entropy coder use must equal the SavedModel's."""
  exported = {}
  for v in tf.saved_model.load(os.fspath(model_dir)).model_variables:
    exported.setdefault(v.name, []).append(v)
  for v in model.trainable_variables:
    candidates = exported.get(v.name, [])
    if not any(c.shape == v.shape and np.array_equal(c.numpy(), v.numpy())
               for c in candidates):
      raise TfcaeError(f"{model_dir}: the latest checkpoint is not the exported model "
                       f"({v.name} differs); re-run bin/train to re-export")


# --- running the device encoder ------------------------------------------------------
class TFLiteEncoder:
  """A device encoder in a plain tf.lite.Interpreter (XNNPACK, `num_threads`)."""

  def __init__(self, tflite, num_threads=1):
    if isinstance(tflite, (bytes, bytearray)):
      self.interpreter = tf.lite.Interpreter(model_content=bytes(tflite),
                                             num_threads=num_threads)
    else:
      if not os.path.isfile(tflite):
        raise TfcaeError(f"{tflite}: no such TFLite model")
      self.interpreter = tf.lite.Interpreter(model_path=tflite, num_threads=num_threads)
    self._input = self.interpreter.get_input_details()[0]
    self._output = self.interpreter.get_output_details()[0]
    self._shape = None

  @property
  def latent_channels(self):
    """The channels of the output symbols (-1 when the flatbuffer leaves them open)."""
    return int(self._output["shape_signature"][-1])

  def prepare(self, height, width):
    """Resizes the input to a padded [1, height, width, 3] (re-plans the graph once)."""
    if self._shape != (height, width):
      self.interpreter.resize_tensor_input(self._input["index"], [1, height, width, 3])
      self.interpreter.allocate_tensors()
      self._shape = (height, width)

  def set_input(self, padded):
    """padded: uint8 [H, W, 3], H and W multiples of the stride."""
    self.prepare(*padded.shape[:2])
    x = padded[None]
    if self._input["dtype"] == np.float32:
      x = x.astype(np.float32)
    elif self._input["quantization"][1] != 0 or self._input["dtype"] != np.uint8:
      raise TfcaeError(f"unexpected quantised input {self._input['dtype'].__name__} "
                       f"{self._input['quantization']}: not a tfcae int8 encoder")
    # else: tfcae's int8 encoders take the pixels themselves (uint8, zero point 0; their
    # scale, 1/255, is the encoder's Rescaling: tfcae.deploy.qat).
    self.interpreter.set_tensor(self._input["index"], x)

  def invoke(self):
    self.interpreter.invoke()

  def output(self):
    return self.interpreter.get_tensor(self._output["index"])

  def symbols(self, padded):
    self.set_input(padded)
    self.invoke()
    return self.output()


def pad_to_stride(image, stride):
  """Edge padding at the bottom/right to multiples of `stride` (as base.edge_pad)."""
  h, w = image.shape[:2]
  ph, pw = (-h) % stride, (-w) % stride
  return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="edge")


# --- range coding on the host --------------------------------------------------------
class HostCoder:
  """Runs a TFLite encoder (a .tflite path or its bytes) and range-codes its symbols with
  the model's entropy model."""

  def __init__(self, tflite_path, model_dir, num_threads=1):
    self.encoder = TFLiteEncoder(tflite_path, num_threads)
    run = RunDir(model_dir).require_export()
    info = run.read_export_info()
    if "compress_symbols" in info.get("signatures", ()):
      self._module = tf.saved_model.load(os.fspath(run.path))  # keeps its variables alive
      self._code = self._module.compress_symbols
    else:  # exported before the signature existed
      self._model = load_trained_model(model_dir)  # a tf.function method holds it weakly
      self._code = self._model.compress_symbols
    self.stride = int(info["stride"])
    architecture = info["architecture"]
    latent_channels = int(architecture.get("latent_channels") or architecture["num_filters"])
    channels = self.encoder.latent_channels
    if channels not in (-1, latent_channels):
      raise TfcaeError(f"{tflite_path} outputs {channels} latent channels, the model in "
                       f"{model_dir} codes {latent_channels}")

  def compress(self, image):
    """uint8 [H, W, 3] -> bytes of a tfcae file."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
      raise TfcaeError(f"expected a uint8 RGB image [H, W, 3], got {image.dtype} {image.shape}")
    symbols = self.encoder.symbols(pad_to_stride(image, self.stride))
    return self._code(tf.constant(symbols, tf.int32), tf.constant(image.shape[0], tf.int32),
                      tf.constant(image.shape[1], tf.int32)).numpy()
