"""The run directory: what `bin/train` writes into `--model_dir`, and the one owner of it.

A run directory is::

  train_config.json     the TrainConfig of the run (bin/train writes it first)
  checkpoints/          tf.train.CheckpointManager: model, optimizer, objective, epoch
  logs/                 TensorBoard scalars and images
  history.csv           Keras' CSVLogger, appended across resumes
  (the export)          saved_model.pb, variables/, tfcae_export.json: an exported model,
                        owned by tfcae.serving.ExportedModel (as a zoo folder is)
  summary.json          final training and validation numbers (written last)

`RunDir` names training's files once and reads the small JSON files with one-line
TfcaeErrors; everything about the export is asked of `exported()`. It imports TensorFlow
only in `latest_checkpoint`. A `zoo:<family>/<quality>` name is not a directory: RunDir
refuses one (tfcae.serving.open_model resolves model references).
"""
import os

from tfcae import TfcaeError
from tfcae.io.fileio import atomic_write_json
from tfcae.io.zoo_index import PREFIX as ZOO_PREFIX
from tfcae.serving.exported import ExportedModel, read_json_object

__all__ = ["CHECKPOINT_DIR", "CONFIG_FILE", "HISTORY_FILE", "LOG_DIR", "SUMMARY_FILE",
           "RunDir"]

# Written by bin/train (tfcae.training.loop).
CONFIG_FILE = "train_config.json"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
HISTORY_FILE = "history.csv"
SUMMARY_FILE = "summary.json"


class RunDir:
  """One run directory (a path; nothing is read until asked, so one object stays valid
  while a training run fills the folder)."""

  def __init__(self, path):
    path = os.fspath(path)
    if path.startswith(ZOO_PREFIX):
      raise TfcaeError(f"{path!r} is a zoo model name, not a directory: use "
                       "tfcae.serving.open_model for model references")
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

  # --- what is there -------------------------------------------------------------------
  def exists(self):
    return os.path.isdir(self.path)

  def require(self):
    """Returns self; a one-line TfcaeError when the directory does not exist."""
    if not self.exists():
      raise TfcaeError(f"{self}: no such model directory")
    return self

  def exported(self):
    """The run's export (tfcae.serving.ExportedModel; it may not be written yet)."""
    return ExportedModel(self.path)

  def is_finished(self):
    """Whether bin/train finished here: summary.json is written last, after the export."""
    return os.path.isfile(self.summary_path)

  def latest_checkpoint(self):
    """The latest checkpoint's prefix, or None (also for a folder without checkpoints/,
    such as a zoo model)."""
    import tensorflow as tf  # here: everything else in this module runs without it
    return tf.train.latest_checkpoint(self.checkpoint_dir)

  # --- reading -------------------------------------------------------------------------
  def read_config(self):
    """The run's TrainConfig (TrainConfig.load: fields it lacks take their defaults)."""
    from tfcae.training.config import TrainConfig  # the flags' dataclass sits above this module
    self.read_config_dict()  # the one-line errors
    return TrainConfig.load(self.config_path)

  def read_config_dict(self):
    """train_config.json as stored: for copying a config verbatim (fields this version no
    longer has survive) or reading settings without filling in today's defaults."""
    return read_json_object(self.config_path, "not a bin/train run directory")

  def read_summary(self):
    return read_json_object(self.summary_path, "the run has not finished")

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
    exported = self.exported()
    if os.path.exists(exported.export_info_path):
      return exported.architecture
    if os.path.exists(self.config_path):
      return self.read_config().architecture_config()
    raise TfcaeError(f"{self}: not a tfcae model directory (no "
                     f"{os.path.basename(exported.export_info_path)} or {CONFIG_FILE})")

  # --- writing (atomically: a reader never sees half a file) -----------------------------
  def create(self):
    os.makedirs(self.path, exist_ok=True)
    return self

  def write_config(self, config):
    """A TrainConfig, or a dict of its fields."""
    atomic_write_json(self.config_path,
                      config.to_dict() if hasattr(config, "to_dict") else dict(config))

  def write_summary(self, summary):
    atomic_write_json(self.summary_path, summary)
