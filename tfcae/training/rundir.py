"""The run directory: what `bin/train` writes into `--model_dir`, and the one owner of it.

A run directory (also a zoo model's folder, which holds only the export part) is::

  train_config.json     the TrainConfig of the run (bin/train writes it first)
  checkpoints/          tf.train.CheckpointManager: model, optimizer, objective, epoch
  logs/                 TensorBoard scalars and images
  history.csv           Keras' CSVLogger, appended across resumes
  saved_model.pb, fingerprint.pb, variables/, assets/   the exported tf.saved_model
  tfcae_export.json     architecture, fingerprint, stride, number of strings
  summary.json          final training and validation numbers (written last)

Why one class: these names used to be string literals in a dozen modules, benches and
tools, with a loader of their own in several of them; a layout change (or a question
such as "which architecture is this?") then had to be answered everywhere at once.
`RunDir` names every path once and reads the small JSON files with one-line TfcaeErrors.

It is deliberately low in the import graph: it imports neither TensorFlow (only
`latest_checkpoint` needs it, imported when called) nor the zoo. The zoo sits above it
(tfcae.zoo builds Codecs, which read run directories), so a `zoo:<family>/<quality>`
name is resolved by the caller (`RunDir(tfcae.zoo.resolve(spec))`); RunDir refuses an
unresolved one instead of looking for files under a directory called "zoo:...".
Loading the Keras model is tfcae.training.export.load_trained (it needs the models and the
SavedModel, which are above this module); it goes through RunDir for every path.
"""
import json
import os

from tfcae import TfcaeError
from tfcae.io.fileio import atomic_write_json
# tfcae.zoo's names ('zoo:factorized/3'): RunDir refuses one (resolve it first).
from tfcae.io.zoo_index import PREFIX as ZOO_PREFIX

__all__ = [
    "ASSETS_DIR", "CHECKPOINT_DIR", "CONFIG_FILE", "EXPORT_INFO_FILE", "HISTORY_FILE",
    "LOG_DIR", "SAVED_MODEL_FILE", "SAVED_MODEL_FINGERPRINT_FILE", "SUMMARY_FILE",
    "VARIABLES_DIR", "ZOO_PREFIX", "RunDir",
]

# Written by bin/train (tfcae.training.loop).
CONFIG_FILE = "train_config.json"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
HISTORY_FILE = "history.csv"
SUMMARY_FILE = "summary.json"
# Written by the export (tfcae.training.export): tfcae's own file and tf.saved_model's.
EXPORT_INFO_FILE = "tfcae_export.json"
SAVED_MODEL_FILE = "saved_model.pb"
SAVED_MODEL_FINGERPRINT_FILE = "fingerprint.pb"
VARIABLES_DIR = "variables"
ASSETS_DIR = "assets"


class RunDir:
  """One run directory (a path; nothing is read until asked, so one object stays valid
  while a training run fills the folder)."""

  def __init__(self, path):
    path = os.fspath(path)
    if path.startswith(ZOO_PREFIX):
      raise TfcaeError(f"{path!r} is a zoo model name, not a directory: resolve it first "
                       "(tfcae.zoo.resolve)")
    self.path = path

  def __fspath__(self):
    return self.path

  def __str__(self):  # error messages name the directory as the user gave it
    return self.path

  def __repr__(self):
    return f"RunDir({self.path!r})"

  def join(self, *names):
    """A path inside the directory (for files a tool adds, e.g. pruning.json)."""
    return os.path.join(self.path, *names)

  # --- paths ---------------------------------------------------------------------------
  @property
  def config_path(self):
    return self.join(CONFIG_FILE)

  @property
  def export_info_path(self):
    return self.join(EXPORT_INFO_FILE)

  @property
  def summary_path(self):
    return self.join(SUMMARY_FILE)

  @property
  def history_path(self):
    return self.join(HISTORY_FILE)

  @property
  def checkpoint_dir(self):
    return self.join(CHECKPOINT_DIR)

  @property
  def log_dir(self):
    return self.join(LOG_DIR)

  @property
  def saved_model_path(self):
    return self.join(SAVED_MODEL_FILE)

  @property
  def variables_dir(self):
    return self.join(VARIABLES_DIR)

  # --- what is there -------------------------------------------------------------------
  def exists(self):
    return os.path.isdir(self.path)

  def require(self):
    """Returns self; a one-line TfcaeError when the directory does not exist."""
    if not self.exists():
      raise TfcaeError(f"{self}: no such model directory")
    return self

  def is_exported(self):
    """Whether the folder holds an exported SavedModel (a zoo model always does)."""
    return os.path.isfile(self.saved_model_path)

  def require_export(self, hint=""):
    """Returns self; a one-line TfcaeError when there is no exported SavedModel."""
    if not self.is_exported():
      raise TfcaeError(f"{self}: no exported model ({SAVED_MODEL_FILE})"
                       + (f"; {hint}" if hint else ""))
    return self

  def is_finished(self):
    """Whether bin/train finished here: summary.json is written last, after the export."""
    return os.path.isfile(self.summary_path)

  def latest_checkpoint(self):
    """The latest checkpoint's prefix, or None (also for a folder without checkpoints/,
    such as a zoo model)."""
    import tensorflow as tf  # here: everything else in this module runs without it
    return tf.train.latest_checkpoint(self.checkpoint_dir)

  # --- reading -------------------------------------------------------------------------
  def _read_json(self, path, missing):
    try:
      with open(path, encoding="utf-8") as f:
        value = json.load(f)
    except FileNotFoundError:
      raise TfcaeError(f"{self}: no {os.path.basename(path)} ({missing})") from None
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError included
      raise TfcaeError(f"{path}: cannot read it ({e.__class__.__name__}: "
                       f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(value, dict):
      raise TfcaeError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value

  def read_config(self):
    """The run's TrainConfig (TrainConfig.load: fields it lacks take their defaults)."""
    from tfcae.training.config import TrainConfig  # the flags' dataclass sits above this module
    self.read_config_dict()  # the one-line errors
    return TrainConfig.load(self.config_path)

  def read_config_dict(self):
    """train_config.json as stored: for copying a config verbatim (fields this version no
    longer has survive) or reading settings without filling in today's defaults."""
    return self._read_json(self.config_path, "not a bin/train run directory")

  def read_export_info(self):
    return self._read_json(self.export_info_path, "not an exported tfcae model")

  def read_summary(self):
    return self._read_json(self.summary_path, "the run has not finished")

  def read_history(self):
    """The rows of history.csv (dicts of strings; a resumed run repeats epochs)."""
    import csv
    try:
      with open(self.history_path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))
    except FileNotFoundError:
      raise TfcaeError(f"{self}: no {HISTORY_FILE} (no epoch has finished)") from None

  def architecture(self):
    """The model's get_config(): from the export info, else from the training config."""
    if os.path.exists(self.export_info_path):
      return self.read_export_info()["architecture"]
    if os.path.exists(self.config_path):
      return self.read_config().architecture()
    raise TfcaeError(f"{self}: not a tfcae model directory (no {EXPORT_INFO_FILE} or "
                     f"{CONFIG_FILE})")

  # --- writing (atomically: a reader never sees half a file) -----------------------------
  def create(self):
    os.makedirs(self.path, exist_ok=True)
    return self

  def write_config(self, config):
    """A TrainConfig, or a dict of its fields."""
    atomic_write_json(self.config_path,
                      config.to_dict() if hasattr(config, "to_dict") else dict(config))

  def write_export_info(self, info):
    atomic_write_json(self.export_info_path, info)

  def write_summary(self, summary):
    atomic_write_json(self.summary_path, summary)
