"""The TFLite device target: encoders as TFLite flatbuffers, run in tf.lite.Interpreter.

Range coding cannot run inside TFLite, so the work is split:

  device  the analysis transform and the rounding, as a TFLite flatbuffer of builtin ops
          only. Input: float32 [1, H, W, 3] pixels in [0, 255] (uint8 for int8 models), H
          and W multiples of the model's stride (the host edge-pads, as `compress` does).
          Output "symbols": int32 [1, H/s, W/s, C] = round(y − o), exactly the integers
          TFC's entropy coder codes (o: the offset of the model's latent codec, the
          per-channel median offsets of the factorized prior, zero for the hyperprior
          and CAE-P).
  host    `CompressionModel.compress_symbols` (its latent codec's, tfcae.models.
          latent_codecs) adds o back and calls the entropy model's `compress`, which
          quantises round((k + o) − o) = k again, and writes the same
          tfcae file format (tfcae.io.bitstream). For a float encoder whose symbols equal the
          SavedModel's, the file is byte-identical to `bin/compress`'s; bin/decompress
          on a server decodes it either way. The host side is tfcae.deploy.hostcoding,
          which takes any target's encoder (tfcae.deploy.device).

Quantisation (`quantize`): "none" (float32), "float16" (float16 weights, float compute) or
"int8" (full-integer post-training quantisation calibrated on crops of representative
images, built by `tfcae.deploy.qat`: uint8 input, int8 weights and activations, GDN in int8
but for its division (or wholly in float: `int8_gdn="float"`), and
an int8 latent with step 1 that already is the symbol round(y − o); its Keras model,
`int8_encoder`, is the reference the flatbuffer's symbols are checked against).

A sparse model's encoder with dead filters is exported physically reduced
(`tfcae.deploy.reduction.reduce_encoder`, identical latents): XNNPACK gets no speed-up from
zero weights in strided convolutions, only from fewer channels.
"""
import glob
import json
import os

import numpy as np
import tensorflow as tf
import tensorflow_compression  # noqa: F401  (registers the range coding ops)

from tfcae import TfcaeError
from tfcae.deploy.device import DEVICE_TARGETS, DeviceEncoder, DeviceTarget
from tfcae.io.fileio import expand_images, load_rgb_image
from tfcae.models import tiling
from tfcae.serving import open_model

__all__ = ["QUANTIZE", "RUNTIMES", "RUNTIME_VARIABLE", "TFLiteEncoder", "TFLiteTarget",
           "interpreter_class", "runtimes", "cpu_name", "measure_latency", "latent_offset",
           "encoder_function", "device_encoder",
           "representative_crops", "convert", "convert_integer", "int8_encoder", "op_names",
           "write_export_info", "image_paths", "save_int8_reference", "fine_tune_int8",
           "export_tflite"]

QUANTIZE = ("none", "float16", "int8")
_IMAGE = tf.TensorSpec([1, None, None, 3], tf.float32, name="image")


def _image_spec(window=None):
  """The encoder's input: any padded size, or a static [1, window, window, 3] (one window
  of a tiled image, tfcae.deploy.hostcoding)."""
  return _IMAGE if not window else tf.TensorSpec([1, window, window, 3], tf.float32,
                                                 name="image")


# --- running a flatbuffer ------------------------------------------------------------
# The interpreter that runs a flatbuffer here. LiteRT (the `ai-edge-litert` package, the
# runtime devices ship; its XNNPACK runs tfcae's int8 encoders ≈ 2× faster than float32)
# when it is installed, else the interpreter bundled in TensorFlow 2.14 (an older XNNPACK,
# on which int8 is slower than float32). $TFCAE_TFLITE_RUNTIME chooses for every tool.
RUNTIMES = ("auto", "litert", "tensorflow")
RUNTIME_VARIABLE = "TFCAE_TFLITE_RUNTIME"


def interpreter_class(runtime: str = None):
  """The TFLite interpreter class of a runtime, and the runtime's name and version.

  Args:
    runtime: "litert", "tensorflow", or "auto" (LiteRT when installed, else TensorFlow's);
      None: $TFCAE_TFLITE_RUNTIME, else "auto".

  Returns:
    (Interpreter class, e.g. "LiteRT 2.3.0" or "TensorFlow Lite 2.14.1").

  Raises:
    TfcaeError: an unknown runtime, or "litert" without ai-edge-litert installed.
  """
  runtime = runtime or os.environ.get(RUNTIME_VARIABLE) or "auto"
  if runtime not in RUNTIMES:
    raise TfcaeError(f"unknown TFLite runtime {runtime!r} (${RUNTIME_VARIABLE} or "
                     f"--tflite_runtime); one of {', '.join(RUNTIMES)}")
  if runtime != "tensorflow":
    try:
      from ai_edge_litert.interpreter import Interpreter
    except ImportError:
      if runtime == "litert":
        raise TfcaeError("the litert TFLite runtime needs the ai-edge-litert package "
                         "(pip install -c constraints.txt -e '.[device]')") from None
    else:
      from importlib import metadata
      return Interpreter, f"LiteRT {metadata.version('ai-edge-litert')}"
  return tf.lite.Interpreter, f"TensorFlow Lite {tf.__version__}"


class TFLiteEncoder(DeviceEncoder):
  """A TFLite device encoder in a TFLite interpreter (XNNPACK, `num_threads`).

  Args:
    tflite: a .tflite path or the flatbuffer's bytes.
    num_threads: the interpreter's threads.
    runtime: the interpreter (interpreter_class): LiteRT when installed, by default.
  """

  def __init__(self, tflite, num_threads: int = 1, runtime: str = None):
    interpreter, self.runtime = interpreter_class(runtime)
    self.num_threads = int(num_threads)
    if isinstance(tflite, (bytes, bytearray)):
      self.interpreter = interpreter(model_content=bytes(tflite), num_threads=num_threads)
    else:
      tflite = os.fspath(tflite)
      if not os.path.isfile(tflite):
        raise TfcaeError(f"{tflite}: no such TFLite model")
      self.interpreter = interpreter(model_path=tflite, num_threads=num_threads)
    self._input = self.interpreter.get_input_details()[0]
    self._output = self.interpreter.get_output_details()[0]
    self._shape = None

  @property
  def latent_channels(self) -> int:
    return int(self._output["shape_signature"][-1])

  @property
  def input_window(self):
    signature = [int(d) for d in self._input["shape_signature"]]
    return None if min(signature[1:3]) < 0 else (signature[1], signature[2])

  def prepare(self, height: int, width: int) -> None:
    """Resizes the input to a padded [1, height, width, 3] (re-plans the graph once)."""
    window = self.input_window
    if window is not None and window != (height, width):
      raise TfcaeError(f"this encoder takes {window[1]}x{window[0]} windows only, got "
                       f"{width}x{height}")
    if self._shape != (height, width):
      self.interpreter.resize_tensor_input(self._input["index"], [1, height, width, 3])
      self.interpreter.allocate_tensors()
      self._shape = (height, width)

  def set_input(self, padded: np.ndarray) -> None:
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

  def invoke(self) -> None:
    self.interpreter.invoke()

  def output(self) -> np.ndarray:
    return self.interpreter.get_tensor(self._output["index"])

  def symbols(self, padded: np.ndarray) -> np.ndarray:
    self.set_input(padded)
    self.invoke()
    return self.output()


def runtimes() -> list:
  """[(runtime, its name and version)] of the installed TFLite runtimes, LiteRT first."""
  found = []
  for runtime in ("litert", "tensorflow"):
    try:
      found.append((runtime, interpreter_class(runtime)[1]))
    except TfcaeError:
      pass
  return found


def cpu_name() -> str:
  """This machine's CPU model (/proc/cpuinfo), which a latency is only valid for."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    return "unknown"


def measure_latency(arms, threads=(1, 2), repeats: int = 15) -> list:
  """Device latency and energy of TFLite encoders, each arm's calls interleaved.

  At each thread count every arm runs in every installed runtime, one invoke each in turn
  after one warm-up (tfcae.deploy.timing.interleaved_seconds: a busy machine slows all
  alike), under a codecarbon meter (tfcae.training.energy): joules per call are the
  median seconds × the CPU power it measured over the loop (RAPL where readable, else its
  load × TDP estimate, named in "power_source").

  Args:
    arms: [(key, .tflite path, padded uint8 [H, W, 3] image)].
    threads: the interpreter thread counts.
    repeats: timed invokes per arm (median).

  Returns:
    [{"key", "runtime", "threads", "ms", "joules", "cpu_power_w", "power_source"}], in the
    order thread count × arm × runtime.
  """
  from tfcae.deploy import timing
  from tfcae.training.energy import EnergyMeter
  rows, installed = [], runtimes()
  for count in threads:
    calls, keys = [], []
    for key, path, padded in arms:
      for runtime, name in installed:
        encoder = TFLiteEncoder(path, count, runtime)
        encoder.set_input(padded)
        calls.append(encoder.invoke)
        keys.append((key, name))
    with EnergyMeter() as meter:
      seconds = timing.interleaved_seconds(calls, repeats, warmup=1)
    energy = meter.summary()
    power = energy.get("cpu_power_w") if energy.get("measured") else None
    for (key, name), s in zip(keys, seconds):
      rows.append({"key": key, "runtime": name, "threads": count, "ms": round(1000 * s, 2),
                   "joules": round(s * power, 3) if power else None, "cpu_power_w": power,
                   "power_source": energy.get("power_source")})
  return rows


# --- the trained Keras model ---------------------------------------------------------
def latent_offset(model):
  """The offset o of the symbols round(y − o) a device encoder of `model` sends (its latent
  codec's)."""
  return model.latent_codec().offset().numpy()


def encoder_function(model, encoder=None, window=None):
  """tf.function: float32 [1, H, W, 3] pixels (H = W = window when given) -> int32
  symbols round(y − o)."""
  encoder = encoder if encoder is not None else model.analysis_transform
  offset = tf.constant(latent_offset(model), tf.float32)
  gain = float(model.latent_codec().symbol_gain)

  @tf.function(input_signature=[_image_spec(window)])
  def encode(image):
    y = encoder(image)
    if gain != 1.:  # a codec that codes g·y (LatentCodec.symbol_gain)
      y = gain * y
    return {"symbols": tf.cast(tf.round(y - offset), tf.int32)}

  return encode


def device_encoder(model):
  """(Keras encoder to put on the device, reduced?): the analysis transform rebuilt without
  its dead filters (tfcae.deploy.reduction, same latents) when it has any, else itself."""
  from tfcae.deploy import reduction
  if not reduction.can_reduce(model):  # e.g. CAE-P's residual blocks: exported as they are
    return model.analysis_transform, False
  reduced, plans = reduction.reduce_encoder(model)
  removed = any(len(p.keep_out) < p.out_channels or len(p.keep_in) < p.in_channels
                for p in plans if p.kind in ("conv", "gdn"))
  return (reduced, True) if removed else (model.analysis_transform, False)


# --- conversion ----------------------------------------------------------------------
def representative_crops(paths, crop=256, per_image=2, seed=0):
  """float32 [1, crop, crop, 3] crops of the images (for int8 calibration)."""
  rng = np.random.default_rng(seed)
  crops = []
  for path in paths:
    image = load_rgb_image(path)
    h, w = image.shape[:2]
    size_h, size_w = min(crop, h), min(crop, w)
    for _ in range(per_image):
      top, left = rng.integers(0, h - size_h + 1), rng.integers(0, w - size_w + 1)
      crops.append(image[None, top:top + size_h, left:left + size_w].astype(np.float32))
  return crops


def convert(model, quantize="none", representative=None, encoder=None, window=None):
  """The device encoder as TFLite flatbuffer bytes (builtin ops only).

  `representative`: a list of float32 [1, h, w, 3] arrays (int8 only: they calibrate the
  activation ranges of `tfcae.deploy.qat.integer_encoder`). `window`: a static input
  shape [1, window, window, 3] (None: any size).
  """
  if quantize not in QUANTIZE:
    raise TfcaeError(f"--quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
  if quantize == "int8":
    if not representative:
      raise TfcaeError("--quantize=int8 needs representative images "
                       "(--representative_images=GLOB)")
    return convert_integer(int8_encoder(model, representative, encoder), window)
  function = encoder_function(model, encoder, window)
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [function.get_concrete_function()], model)
  if quantize == "float16":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
  return _convert(converter)


def convert_integer(integer, window=None):
  """Flatbuffer bytes of a `tfcae.deploy.qat.IntegerEncoder` (calibrated, maybe fine-tuned),
  with a static input shape of `window` pixels when given."""
  function = tf.function(integer.scaled_symbols, input_signature=[_image_spec(window)])
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [function.get_concrete_function()], _variables_only(integer.quantized))
  # The fake-quant ranges of the Keras model become the integer kernels' ranges.
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.inference_input_type = tf.uint8
  return _convert(converter)


def _convert(converter):
  # Builtins only: conversion fails rather than emitting Flex (TF) ops a phone lacks.
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  try:
    return converter.convert()
  except Exception as e:  # the converter raises several types; keep the tool's one line
    raise TfcaeError(f"TFLite conversion failed: {str(e).splitlines()[0]}") from None


def int8_encoder(model, representative, encoder=None, gdn="integer"):
  """The calibrated `tfcae.deploy.qat.IntegerEncoder` of the device encoder: what an int8
  flatbuffer computes, as a Keras model (its `symbols` are the int8 reference); `gdn`: a
  `qat.GDN_MODES` value."""
  from tfcae.deploy import qat
  encoder = encoder if encoder is not None else model.analysis_transform
  integer = qat.integer_encoder(encoder, latent_offset(model), gdn)
  qat.calibrate(integer, representative)
  return integer


def op_names(tflite_bytes):
  """The flatbuffer's operator names (builtin ones are upper case, e.g. CONV_2D)."""
  interpreter = tf.lite.Interpreter(model_content=tflite_bytes)
  return sorted({op["op_name"] for op in interpreter._get_ops_details()})


# --- running it ----------------------------------------------------------------------
def write_export_info(tflite_path, info):
  with open(tflite_path + ".json", "w", encoding="utf-8") as f:
    json.dump(info, f, indent=2, sort_keys=True)


def image_paths(pattern, flag="--representative_images"):
  """Files of a glob (or a folder), for calibration or fine-tuning."""
  if os.path.isdir(pattern):
    return expand_images(pattern)
  paths = sorted(glob.glob(pattern))
  if not paths:
    raise TfcaeError(f"{flag}={pattern}: no images")
  return paths


def _variables_only(keras_model):
  """A tf.Module tracking only the model's variables. Handing the Keras model itself to
  the converter (or to tf.saved_model.save) makes Keras serialise its layers, after which
  TFC's GDN can no longer be traced: its Python branches on α and ε are left to
  AutoGraph, which Keras' serialisation tracing turns off."""
  module = tf.Module()
  module.weights = list(keras_model.weights)
  return module


def save_int8_reference(integer, path):
  """Saves an int8 encoder's Keras model as a SavedModel with one signature, `symbols`
  (float32 [1, H, W, 3] pixels -> int32 symbols): the device's computation on a server
  (≥ 99 % of its symbols equal the flatbuffer's, the rest off by one)."""
  module = _variables_only(integer.quantized)

  @tf.function(input_signature=[_IMAGE])
  def symbols(image):  # a def, not a lambda: AutoGraph must convert GDN's Python branches
    return {"symbols": integer.symbols(image)}

  module.symbols = symbols
  tf.saved_model.save(module, path, signatures={"symbols": symbols})


def fine_tune_int8(integer, model_dir, model, qat_images, steps, learning_rate=1e-5,
                   lmbda=None, verbose=1):
  """Fine-tunes an int8 encoder quantization-aware (tfcae.deploy.qat.fine_tune) with the
  model's objective: its λ (unless `lmbda`) and distortion. Returns what was done."""
  from tfcae.deploy import qat
  if not qat_images:
    raise TfcaeError("--qat_steps needs --qat_images=GLOB (training crops)")
  objective = open_model(model_dir).trained_objective() or {}
  if not lmbda and "lmbda" not in objective:
    raise TfcaeError(f"{model_dir}: its training objective is not recorded; give --qat_lmbda "
                     "(the distortion is then mse)")
  lmbda = lmbda or objective["lmbda"]
  distortion = objective.get("distortion", "mse")
  final = qat.fine_tune(integer, model, image_paths(qat_images, "--qat_images"), steps, lmbda,
                        distortion, learning_rate, verbose=verbose)
  return {"steps": steps, "learning_rate": learning_rate, "lmbda": lmbda,
          "distortion": distortion, "final": final}


def export_tflite(model_dir, tflite_path, quantize="none", representative_images="",
                  qat_steps=0, qat_images="", qat_learning_rate=1e-5, qat_lmbda=None,
                  int8_reference="", tile=0, int8_gdn="integer"):
  """What bin/export does: writes the device encoder and `<tflite_path>.json`.

  int8 only: `qat_steps` > 0 fine-tunes the calibrated int8 encoder quantization-aware on
  crops of `qat_images` (tfcae.deploy.qat.fine_tune; λ: the run's --lmbda unless `qat_lmbda`);
  `int8_reference` names a folder for the int8 encoder's SavedModel (save_int8_reference);
  `int8_gdn` is how its GDNs run (tfcae.deploy.qat.GDN_MODES: "integer", their pool in
  int8 and only the division in float, or "float", the whole GDN in float).
  `tile` > 0: a static input shape, windows of the core tile (rounded up to the latent
  stride) plus the analysis transform's halo on each side (tfcae.deploy.hostcoding).
  """
  from tfcae.io.fileio import atomic_write_bytes
  if quantize != "int8" and (qat_steps or int8_reference):
    raise TfcaeError("--qat_steps and --int8_reference need --quantize=int8")
  exported = open_model(model_dir)
  if exported.rate_points:
    # Its symbols are round(g(q) ⊙ y − o): the gains of one quality would be baked in.
    raise TfcaeError(f"{exported}: device encoders of variable-rate models are not "
                     "supported yet (their symbols depend on the quality)")
  window = None
  if tile:
    exported.check_tile(tile)
    halos = exported.tiling
    window = tiling.core_pixels(tile, halos["latent_stride"]) + 2 * halos["analysis_halo"]
  model = exported.restore_keras()
  encoder, reduced = device_encoder(model)
  size = f"{window}, {window}" if window else "H, W"
  info = {"model_dir": os.path.abspath(exported.path), "quantize": quantize,
          "reduced_encoder": reduced, "fingerprint": model.fingerprint.numpy().hex(),
          "stride": model.stride, "latent_channels": model.latent_channels,
          "input": f"float32 [1, {size}, 3] in [0, 255]" if quantize != "int8" else
                   f"uint8 [1, {size}, 3]",
          "output": "int32 symbols [1, H/stride, W/stride, C] = round(y - latent_offset)"}
  if quantize == "int8":
    if not representative_images:
      raise TfcaeError("--quantize=int8 needs --representative_images=GLOB (crops of them "
                       "calibrate the activation ranges)")
    integer = int8_encoder(model, representative_crops(image_paths(representative_images)),
                           encoder, int8_gdn)
    info["int8_gdn"] = int8_gdn
    if qat_steps:
      info["qat"] = fine_tune_int8(integer, exported, model, qat_images, qat_steps,
                                   qat_learning_rate, qat_lmbda)
    if int8_reference:
      save_int8_reference(integer, int8_reference)
      info["int8_reference"] = os.path.abspath(int8_reference)
    data = convert_integer(integer, window)
  else:
    data = convert(model, quantize, None, encoder, window)
  atomic_write_bytes(tflite_path, data)
  info.update(ops=op_names(data), bytes=len(data))
  write_export_info(tflite_path, info)
  return info


@DEVICE_TARGETS.register
class TFLiteTarget(DeviceTarget):
  """TFLite (LiteRT's flatbuffer format): builtin ops only, float32, float16 or int8."""

  name = "tflite"
  suffix = ".tflite"

  def convert(self, exported, output_path, **options):
    """export_tflite's options: quantize, representative_images, qat_steps, qat_images,
    qat_learning_rate, qat_lmbda, int8_reference, tile, int8_gdn."""
    return export_tflite(exported, output_path, **options)

  def load(self, encoder, num_threads=1):
    return TFLiteEncoder(encoder, num_threads)
