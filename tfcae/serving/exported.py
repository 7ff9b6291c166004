"""The exported model directory: what every tool after training works on.

An exported model (what bin/train writes at the end of a run, and each zoo folder) is::

  saved_model.pb, fingerprint.pb, variables/, assets/   the tf.saved_model
  tfcae_export.json     architecture, fingerprint, stride, number of strings, the string
                        layout and latent codec the file decoder checks, the signatures
                        and their inputs
  card.json             zoo folders only: the model card (tfcae.io.zoo_index)

`ExportedModel` names these files once and answers every question about them (the
architecture, the fingerprint, the signatures, the SavedModel, the Keras model restored
from its variables; `tfcae.serving.Codec(exported)` codes files with it), so deploy, zoo, evaluation and the command line never
re-wrap a path. `open_model` turns a model reference — a directory or
`zoo:<family>/<quality>` — into one: the one parser of model names.

Reading the JSON needs only the standard library; TensorFlow is imported by the methods
that load the SavedModel.
"""
from __future__ import annotations

import json
import os
from typing import Any, Optional, Union

from tfcae import TfcaeError
from tfcae.io import zoo_index

__all__ = ["ASSETS_DIR", "EXPORT_INFO_FILE", "SAVED_MODEL_FILE", "SAVED_MODEL_FINGERPRINT_FILE",
           "VARIABLES_DIR", "ExportedModel", "assign_matching", "open_model", "read_json_object",
           "restore_keras"]

EXPORT_INFO_FILE = "tfcae_export.json"
SAVED_MODEL_FILE = "saved_model.pb"
SAVED_MODEL_FINGERPRINT_FILE = "fingerprint.pb"
VARIABLES_DIR = "variables"
ASSETS_DIR = "assets"


def read_json_object(path: str, missing: str) -> dict:
  """A JSON object from a file, with one-line TfcaeErrors.

  Args:
    path: the file.
    missing: what its absence means, for the error (e.g. "not an exported tfcae model").

  Returns:
    The parsed object (a dict).

  Raises:
    TfcaeError: the file is missing, unreadable, not JSON or not an object.
  """
  try:
    with open(path, encoding="utf-8") as f:
      value = json.load(f)
  except FileNotFoundError:
    raise TfcaeError(f"{os.path.dirname(path) or '.'}: no {os.path.basename(path)} "
                     f"({missing})") from None
  except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError included
    raise TfcaeError(f"{path}: cannot read it ({e.__class__.__name__}: "
                     f"{str(e).splitlines()[0] if str(e) else ''})") from None
  if not isinstance(value, dict):
    raise TfcaeError(f"{path}: expected a JSON object, got {type(value).__name__}")
  return value


class ExportedModel:
  """One exported model directory. Nothing is read until asked; what is read is kept.

  Args:
    path: the directory (not a zoo name: use `open_model` for references).
  """

  def __init__(self, path: Union[str, os.PathLike]):
    path = os.fspath(path)
    if path.startswith(zoo_index.PREFIX):
      raise TfcaeError(f"{path!r} is a zoo model name, not a directory: use "
                       "tfcae.serving.open_model")
    self.path = path
    self._info = None
    self._module = None

  def __fspath__(self) -> str:
    return self.path

  def __str__(self) -> str:  # error messages name the directory as the user gave it
    return self.path

  def __repr__(self) -> str:
    return f"ExportedModel({self.path!r})"

  def join(self, *names: str) -> str:
    """A path inside the directory."""
    return os.path.join(self.path, *names)

  # --- what is there -------------------------------------------------------------------
  @property
  def export_info_path(self) -> str:
    return self.join(EXPORT_INFO_FILE)

  @property
  def saved_model_path(self) -> str:
    return self.join(SAVED_MODEL_FILE)

  @property
  def variables_dir(self) -> str:
    return self.join(VARIABLES_DIR)

  def is_exported(self) -> bool:
    """Whether the folder holds an exported SavedModel (a zoo model always does)."""
    return os.path.isfile(self.saved_model_path)

  def require(self, hint: str = "") -> "ExportedModel":
    """Returns self; a one-line TfcaeError when the directory or its SavedModel is missing.

    Args:
      hint: what to do about a missing SavedModel, appended to the error.
    """
    if not os.path.isdir(self.path):
      raise TfcaeError(f"{self}: no such model directory")
    if not self.is_exported():
      raise TfcaeError(f"{self}: no exported model ({SAVED_MODEL_FILE})"
                       + (f"; {hint}" if hint else ""))
    return self

  # --- tfcae_export.json ---------------------------------------------------------------
  @property
  def info(self) -> dict:
    """tfcae_export.json (read once)."""
    if self._info is None:
      self._info = read_json_object(self.export_info_path, "not an exported tfcae model")
    return self._info

  def write_info(self, info: dict) -> None:
    """Writes tfcae_export.json atomically."""
    from tfcae.io.fileio import atomic_write_json
    atomic_write_json(self.export_info_path, info)
    self._info = dict(info)

  @property
  def architecture(self) -> dict:
    """The model's get_config() (what tfcae.models.build_model takes)."""
    return self.info["architecture"]

  @property
  def fingerprint(self) -> bytes:
    """The 8 bytes every file this model writes carries in its header."""
    return bytes.fromhex(self.info["fingerprint"])

  @property
  def stride(self) -> int:
    return int(self.info["stride"])

  @property
  def rate_points(self) -> Optional[int]:
    """K of a variable-rate model (it codes at any quality in [1, K]); None otherwise."""
    points = self.architecture.get("rate_points")
    return None if points is None else int(points)

  @property
  def tiling(self) -> Optional[dict]:
    """{"analysis_halo": pixels, "synthesis_halo": latents, "latent_stride": s} of an
    export that codes in tiles (tfcae.models.tiling); None for an older export."""
    tiling = self.info.get("tiling")
    return dict(tiling) if isinstance(tiling, dict) and "compress_tiled" in self.signatures \
        else None

  def check_tile(self, tile: Optional[int]) -> Optional[int]:
    """A requested core tile in pixels (None: the export's default; 0: the whole image).

    Raises:
      TfcaeError: a negative tile, one smaller than the analysis transform's receptive
        field, or a tile for an export without tiled coding.
    """
    if tile is None:
      return None
    tile = int(tile)
    if tile < 0:
      raise TfcaeError(f"--tile must be 0 (the whole image) or a size in pixels, got {tile}")
    tiling = self.tiling
    if tiling is None:
      raise TfcaeError(f"{self}: this export codes whole images only (it predates tiled "
                       "coding); re-export it (tfcae.serving.reexport, bin/zoo --refresh)")
    if 0 < tile < tiling["analysis_halo"]:
      raise TfcaeError(f"--tile={tile} is smaller than the model's receptive field "
                       f"({tiling['analysis_halo']} pixels)")
    return tile

  @property
  def num_strings(self) -> int:
    return int(self.info["num_strings"])

  @property
  def signatures(self) -> list:
    """The SavedModel's serving signatures, by name."""
    return list(self.info.get("signatures", ()))

  def signature_inputs(self, name: str) -> Optional[list]:
    """[(input name, dtype name, shape)] of a signature, as the export recorded them
    (None for an export that did not record inputs)."""
    inputs = self.info.get("signature_inputs", {}).get(name)
    return None if inputs is None else [tuple(i) for i in inputs]

  @property
  def string_layout(self) -> list:
    """Per string of a file: {"table", "stride", "coding"} (LatentCodec.layout). Exports
    that do not record it get their architecture's, from the model registry."""
    layout = self.info.get("string_layout")
    if layout is None:
      from tfcae.models import ARCHITECTURES
      name = self.architecture.get("architecture")
      layout = ARCHITECTURES.get(name).string_layout() if name in ARCHITECTURES else None
    return layout

  def trained_objective(self) -> Optional[dict]:
    """{"lmbda", "distortion"} the model was trained with (what a fine-tuning of its
    encoder keeps): recorded by bin/train's export, on a zoo card, or in the training
    summary the export info names; None when none says."""
    if "objective" in self.info:
      return dict(self.info["objective"])
    card = self.card
    if card is not None and "lmbda" in card:
      return {"lmbda": float(card["lmbda"]), "distortion": card.get("distortion", "mse")}
    if self.info.get("summary"):
      path = self.join(os.path.basename(self.info["summary"]))
      if os.path.isfile(path):
        settings = read_json_object(path, "the training summary").get("settings", {})
        if "lmbda" in settings:
          return {"lmbda": float(settings["lmbda"]),
                  "distortion": settings.get("distortion", "mse")}
    return None

  @property
  def card(self) -> Optional[dict]:
    """The zoo card (card.json) of a zoo folder, else None."""
    return zoo_index.card_at(self.path)

  # --- the SavedModel ------------------------------------------------------------------
  def saved_model(self) -> Any:
    """The loaded tf.saved_model (loaded once); a one-line TfcaeError if it is damaged."""
    if self._module is None:
      import tensorflow as tf
      import tensorflow_compression  # noqa: F401  (registers the range coding ops)
      self.require("train one with bin/train, which exports at the end")
      try:
        self._module = tf.saved_model.load(self.path)
      except Exception as e:  # noqa: BLE001 (protobuf, OSError, ValueError, TF's own: all one)
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise TfcaeError(f"{self.path}: the SavedModel is damaged or not a tfcae export "
                         f"({e.__class__.__name__}{': ' + first[:200] if first else ''})"
                         ) from None
    return self._module

  def restore_keras(self, for_compression: bool = True):
    """The Keras model, restored from the SavedModel's variables (`restore_keras`)."""
    return restore_keras(self, for_compression)


def open_model(reference: Union[str, os.PathLike, ExportedModel],
               quality: Optional[int] = None) -> ExportedModel:
  """The exported model a reference names, checked to exist.

  Args:
    reference: a directory, `zoo:<family>/<quality>`, an ExportedModel, or (with
      `quality`) a zoo family name.
    quality: the zoo quality when `reference` is a family.

  Returns:
    The ExportedModel.

  Raises:
    TfcaeError: an unknown zoo model (listing those that exist), or a directory without
      an exported model.
  """
  if isinstance(reference, ExportedModel):
    return reference.require()
  reference = os.fspath(reference)
  if quality is not None:
    folder = zoo_index.path(reference, quality)
  else:
    folder = zoo_index.resolve(reference)
  return ExportedModel(folder).require("train one with bin/train, which exports at the end")


def assign_matching(targets, sources, what: str) -> None:
  """Assigns each target variable the source variable of the same name and shape (the
  k-th target of a (name, shape) gets the k-th such source: names repeat, order does
  not change).

  Raises:
    ValueError: naming the first target variable without a source.
  """
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


def restore_keras(model_dir, for_compression: bool = True):
  """The Keras model of an exported SavedModel (a zoo model has no checkpoint).

  Args:
    model_dir: an ExportedModel or its directory.
    for_compression: also restore the coding tables and fingerprint, so the files the
      model writes are the SavedModel's own, byte for byte.

  Returns:
    The CompressionModel: the architecture from tfcae_export.json, every weight from the
    SavedModel's variables.
  """
  from tfcae.models import build_model
  exported = model_dir if isinstance(model_dir, ExportedModel) else ExportedModel(model_dir)
  saved = exported.require().saved_model()
  model = build_model(exported.architecture)
  try:
    assign_matching(model.weight_variables(), saved.model_variables, exported.path)
    if for_compression:
      model.prepare_for_compression()
      # The saved tables, not ones rebuilt here: they are what the files were coded with.
      coder_variables = [v for coder in model.entropy_models() for v in coder.variables]
      assign_matching(coder_variables, saved.model_variables, exported.path)
  except ValueError as e:
    raise TfcaeError(f"{exported}: the SavedModel does not match its architecture "
                     f"({e})") from None
  model.fingerprint.assign(saved.fingerprint)
  return model
