"""TrainConfig: every training setting, in one place.

`bin/train` turns each field into an absl flag (same name, type, default and help), so
a setting is added once and is then a flag, a flagfile line and an entry of
`summary.json`. The library never reads flags. The settings of the core (architecture,
data, optimisation, execution) are declared here; each method's settings are declared in
its own file (tfcae/methods/, e.g. `DcoSettings`) and TrainConfig is the union: every flag
keeps its name, so every flagfile and train_config.json keeps working.
"""
import dataclasses
import json
import sys
from typing import Any, ClassVar, Dict, Mapping

from tfcae.methods.registry import METHODS, settings_classes
from tfcae.registry import LazyNames, setting

__all__ = ["VALUE", "FILTERS", "SWITCH", "CoreSettings", "TrainConfig", "ARCHITECTURE_FIELDS"]

# How an architecture setting enters the architecture config (TrainConfig.architecture_config(),
# which is the model's get_config() and so what its fingerprint hashes), for the
# architectures that take it (their `settings`, tfcae/models/registry.py):
VALUE = "value"        # as it is
FILTERS = "filters"    # 0 means num_filters
SWITCH = "switch"      # only when not the default, so that the configs (and fingerprints)
#                        of models trained before the setting existed are unchanged; set
#                        away from its default for an architecture that does not take it,
#                        it is refused (it would silently do nothing)


def _architectures():
  from tfcae.models import ARCHITECTURES  # the model classes: only when the names are read
  return ARCHITECTURES


@dataclasses.dataclass
class CoreSettings:
  """The settings of the core: architecture, rate-distortion, data, optimisation and
  execution. The methods' settings are theirs (tfcae/methods/)."""

  model_dir: str = setting("", "Output directory: checkpoints, logs, exported SavedModel, "
                           "summary.json. Re-running the same command resumes from it.")
  # Architecture.
  # The names of the registered architectures (tfcae.models.ARCHITECTURES), read when the
  # flags are defined or validated, so importing this module does not import TensorFlow.
  architecture: str = setting("factorized", "Architecture: factorized prior (Ballé et al. 2017), "
                              "scale hyperprior (Ballé et al. 2018), mean-scale hyperprior "
                              "(Minnen et al. 2018, without the context model) or CAE-P.",
                              LazyNames(_architectures))
  num_filters: int = setting(128, "Filters of the hidden transform layers (N).",
                             architecture=VALUE)
  latent_channels: int = setting(0, "Latent channels (M); 0 means num_filters.",
                                 architecture=FILTERS)
  hyper_filters: int = setting(0, "Hyper-transform filters (hyperprior only); 0 = num_filters.",
                               architecture=FILTERS)
  integer_hyper_synthesis: bool = setting(False, "Hyperprior only: an integer network "
                                          "(Ballé et al. 2019) computes the scale indices, so "
                                          "files decode on any platform. With "
                                          "--init_from a float hyperprior, fine-tunes it.",
                                          architecture=SWITCH)
  gdn: str = setting("simplified", "Normalisation of the transforms: simplified GDN "
                     "(Johnston et al. 2019: x / (β + Σγ|x|), TFC's default) or the original "
                     "GDN (Ballé et al. 2016: x / sqrt(β + Σγx²)).", ("simplified", "original"),
                     architecture=SWITCH)
  decoder_quantization: str = setting("noise", "What the synthesis sees in training: the "
                                      "noisy latents (Ballé et al.) or straight-through "
                                      "rounded ones while the rate keeps the noise (Minnen & "
                                      "Singh 2020, 'mixed').", ("noise", "mixed"))
  caep_blocks: int = setting(15, "Bottleneck residual blocks on each side (caep only; widths "
                             "are num_filters/4, /2 and num_filters).", architecture=VALUE)
  rate_points: int = setting(8, "Rate points K of a variable-rate model (meanscale-vbr only): "
                             "K gain units, qualities 1..K and anything between.",
                             architecture=VALUE)
  # Objective.
  lmbda: float = setting(0.01, "λ in R + λ·D (D is MSE on the 0..255 scale, or 1 − MS-SSIM); "
                         "for a variable-rate model, the λ of quality 1.")
  lmbda_max: float = setting(0., "Variable-rate models only: the λ of the highest quality "
                             "(quality q between has λ log-spaced from --lmbda).")
  rate_point: int = setting(0, "Variable-rate models only: train and validate every image "
                            "at this one rate point k in [1, K], i.e. at fixed λ: resuming a "
                            "copy of a variable-rate run this way gives the fixed-λ model "
                            "that measures what sharing one model costs; 0: each image at "
                            "a rate point drawn at random.")
  distortion: str = setting("mse", "Distortion metric (caep-mix: CAE-ADMM's MS-SSIM + SSIM + "
                           "MSE + PSNR mix, tfcae/objectives/terms.py).",
                           ("mse", "ms-ssim", "ssim", "caep-mix"))
  init_from: str = setting("", "Start from the weights of this trained model_dir (e.g. to "
                           "sparsify a dense model); its optimizer and objective state are "
                           "not loaded.")
  # Data.
  train_images: str = setting("", "Training images: folder, glob or comma list (PNG/JPEG), "
                              "or a records folder written by bin/prepare_data (its "
                              "manifest.json names the shards and the validation split).")
  val_images: str = setting("", "Validation images; empty: hold out the last 10% of "
                            "train_images (sorted by name).")
  dataset: str = setting("", "A locally prepared TFDS dataset name (e.g. clic) instead of "
                         "image files.")
  tfds_data_dir: str = setting("", "TFDS data_dir (default: TFDS's own).")
  patch_size: int = setting(256, "Side of the square training crops.")
  batch_size: int = setting(8, "Global batch size (split across replicas).")
  cache_images: bool = setting(True, "Decode the training images once and keep them in "
                               "memory (BSDS500: 230 MB), instead of decoding a file per crop.")
  # Optimisation.
  epochs: int = setting(100, "Number of epochs.")
  steps_per_epoch: int = setting(1000, "Optimizer steps per epoch.")
  validation_batches: int = setting(4, "Validation batches evaluated after each epoch.")
  time_budget_minutes: float = setting(0., "Train for this much wall-clock time instead of "
                                       "--epochs (which becomes an upper bound); the "
                                       "learning-rate schedule then runs over the time: "
                                       "equal-CPU-time recipe comparisons (bench/recipe.py).")
  learning_rate: float = setting(1e-4, "Adam learning rate (the peak, after any warm-up).")
  lr_warmup: float = setting(0., "Fraction of training over which the learning rate rises "
                             "linearly from 0 to --learning_rate.")
  lr_schedule: str = setting("step", "constant, step (×lr_decay_factor for the last "
                             "(1 − lr_decay_at) of training) or cosine.",
                             ("constant", "step", "cosine"))
  lr_decay_at: float = setting(0.8, "Fraction of training after which 'step' decays.")
  lr_decay_factor: float = setting(0.1, "Decay factor of the 'step' schedule.")
  clip_gradient_norm: float = setting(1.0, "Clip the global gradient norm to this (as "
                                      "CompressAI does; GDN models otherwise blow up now and "
                                      "then); 0 disables.")
  # Execution.
  strategy: str = setting("default", "tf.distribute strategy: default (one device), "
                          "mirrored (the devices of this machine), multi_worker "
                          "(MultiWorkerMirroredStrategy over the machines of the TF_CONFIG "
                          "environment variable; docs/scaling.md).",
                          ("default", "mirrored", "multi_worker"))
  num_cpu_devices: int = setting(0, "Split the CPU into this many logical devices (to run "
                                 "'mirrored' without GPUs); 0 leaves it alone.")
  seed: int = setting(0, "Random seed (weights, crops).")
  verbose: int = setting(-1, "Keras verbosity: 0 silent, 1 progress bar, 2 one line per "
                         "epoch; -1 picks 1 on a terminal and 2 otherwise.")
  image_summaries: bool = setting(True, "Write a validation reconstruction to TensorBoard "
                                  "each epoch.")
  check_numerics: bool = setting(False, "Enable tf.debugging.enable_check_numerics.")
  jit_compile: bool = setting(False, "Compile the training step with XLA.")
  precision: str = setting("float32", "Keras mixed-precision policy of the transforms: "
                           "float32, mixed_float16 (with loss scaling) or mixed_bfloat16; the "
                           "entropy models and every loss term stay in float32, as TFC "
                           "requires.", ("float32", "mixed_float16", "mixed_bfloat16"))
  energy: str = setting("auto", "Measure the training's energy (kWh) and CO2 with codecarbon, "
                        "offline, into summary.json's energy_this_run (auto: when codecarbon "
                        "can; a machine where it cannot trains anyway, with one warning "
                        "line); off: do not.", ("auto", "off"))
  carbon_country: str = setting("USA", "ISO 3166-1 alpha-3 code of the grid whose carbon "
                                "intensity converts the measured kWh to CO2.")



@dataclasses.dataclass
class TrainConfig(*reversed(settings_classes()), CoreSettings):
  """Every training setting: the core's (CoreSettings) and each registered method's (its
  settings dataclass, tfcae/methods/), as one flat dataclass whose fields are the flags.

  Build it with keyword arguments (`TrainConfig(architecture="hyperprior", lmbda=0.02)`),
  from bin/train's flags (tfcae.cli.dataclass_from_flags) or from a run's
  train_config.json (`load`).
  """

  # Old field names -> new ones: still read from flags (an absl alias) and from saved
  # train_config.json files, with a one-line deprecation warning on stderr.
  RENAMED: ClassVar[Dict[str, str]] = {"model": "architecture"}

  def architecture_config(self) -> Dict[str, Any]:
    """The architecture config these settings build.

    It is tfcae.models.build_model's argument and equal to the model's get_config() (so
    the model's fingerprint hashes it): the `settings` the architecture's class declares,
    each entered as its field says (VALUE, FILTERS, SWITCH). Imports TensorFlow (the
    classes).

    Returns:
      {"architecture": <registry name>, <setting>: <value>, ...}.
    """
    config = {"architecture": self.architecture}
    for name in _architectures().get(self.architecture).settings:
      field = self.__dataclass_fields__[name]
      how, value = field.metadata["architecture"], getattr(self, name)
      if how == FILTERS:
        value = value or self.num_filters
      elif how == SWITCH and value == field.default:
        continue
      config[name] = value
    return config

  def validate(self) -> None:
    """Checks the settings before any work (the cheap checks first).

    Raises:
      ValueError: for settings that cannot work, with a one-line message naming the flag.
    """
    for f in dataclasses.fields(self):
      if f.name != "architecture":  # its names come from the registry: checked last
        self._check_choice(f)
    if not self.model_dir:
      raise ValueError("--model_dir is required")
    if not (self.train_images or self.dataset):
      raise ValueError("give --train_images or --dataset")
    positive = ("num_filters", "patch_size", "batch_size", "epochs", "steps_per_epoch",
                "validation_batches")
    for name in positive:
      if getattr(self, name) <= 0:
        raise ValueError(f"--{name} must be positive")
    if not 0 <= self.lr_warmup < 1:
      raise ValueError("--lr_warmup must be in [0, 1)")
    if self.time_budget_minutes < 0:
      raise ValueError("--time_budget_minutes must be >= 0")
    if self.lmbda <= 0 or self.learning_rate <= 0:
      raise ValueError("--lmbda and --learning_rate must be positive")
    variable_rate = getattr(_architectures().get(self.architecture), "variable_rate", False) \
        if self.architecture in _architectures().names() else False
    if variable_rate and not self.lmbda_max > self.lmbda:
      raise ValueError(f"--architecture={self.architecture} needs --lmbda_max > --lmbda (the "
                       "λ of its highest and lowest quality)")
    for name, value in (("lmbda_max", self.lmbda_max), ("rate_point", self.rate_point)):
      if value and not variable_rate:
        raise ValueError(f"--{name} applies to variable-rate architectures, not "
                         f"{self.architecture}")
    if not 0 <= self.rate_point <= (self.rate_points if variable_rate else 0):
      raise ValueError(f"--rate_point={self.rate_point} is not a rate point in "
                       f"[1, {self.rate_points}]")
    if variable_rate and self.distortion not in ("mse", "ms-ssim"):
      raise ValueError(f"--architecture={self.architecture} trains on mse or ms-ssim")
    if self.distortion in ("ms-ssim", "caep-mix") and self.patch_size < 176:
      # tf.image.ssim_multiscale needs each side > (11 - 1) * 2**4 = 160 for 5 scales.
      raise ValueError(f"--distortion={self.distortion} needs --patch_size >= 176")
    if self.precision != "float32" and self.integer_hyper_synthesis:
      raise ValueError("--integer_hyper_synthesis trains in float32 (its integers are "
                       "calibrated on float32 activations); drop --precision")
    if self.strategy == "multi_worker":
      # What needs one process: a per-worker clock would stop the workers apart.
      for bad, why in ((self.time_budget_minutes > 0, "--time_budget_minutes (each worker "
                        "has its own clock; give --epochs)"),
                       (self.num_cpu_devices > 1, "--num_cpu_devices")):
        if bad:
          raise ValueError(f"--strategy=multi_worker cannot run with {why}")
    for method in METHODS.values():  # each method checks its own settings
      method.validate(self)
    # The architecture checks import TensorFlow (the registry's classes): only after the
    # cheap checks.
    self._check_choice(self.__dataclass_fields__["architecture"])
    cls = _architectures().get(self.architecture)
    for f in dataclasses.fields(self):
      if (f.metadata.get("architecture") == SWITCH and f.name not in cls.settings and
          getattr(self, f.name) != f.default):
        takers = [name for name, c in _architectures().items() if f.name in c.settings]
        raise ValueError(f"--{f.name} applies to --architecture={'|'.join(takers)}, not "
                         f"{self.architecture}")
    stride = cls.stride
    if self.patch_size % stride:
      raise ValueError(f"--patch_size must be a multiple of the {self.architecture} stride "
                       f"({stride})")

  def _check_choice(self, field):
    choices = field.metadata.get("choices")
    if choices and getattr(self, field.name) not in choices:
      raise ValueError(f"--{field.name}={getattr(self, field.name)!r}: expected one of "
                       f"{tuple(choices)}")

  @classmethod
  def from_dict(cls, saved: Mapping[str, Any], source: str = "the config") -> "TrainConfig":
    """The config of a dict of settings as a run saved them.

    Fields it lacks take their defaults, fields this version does not have are ignored,
    methods upgrade defaults that changed since, and an old name (RENAMED) is read as the
    new one with a one-line deprecation warning on stderr.

    Args:
      saved: field name -> value (train_config.json's object).
      source: what the settings come from, for the warning (a path).

    Returns:
      The TrainConfig.
    """
    saved = dict(saved)
    for old, new in cls.RENAMED.items():
      if old in saved:
        value = saved.pop(old)
        saved.setdefault(new, value)  # a config with both names: the new one wins
        print(f"warning: {source}: \"{old}\" is deprecated, read as \"{new}\"",
              file=sys.stderr)
    for method in METHODS.values():  # defaults that changed since the run was saved
      method.upgrade(saved)
    return cls(**{k: v for k, v in saved.items() if k in cls.__dataclass_fields__})

  @classmethod
  def load(cls, path: str) -> "TrainConfig":
    """The config a run saved (train_config.json), as `from_dict` reads it.

    Args:
      path: the train_config.json file.

    Returns:
      The TrainConfig.
    """
    with open(path, encoding="utf-8") as f:
      saved = json.load(f)
    return cls.from_dict(saved, source=path)

  def to_dict(self) -> Dict[str, Any]:
    """Every field by name (what train_config.json stores)."""
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    """to_dict as indented JSON."""
    return json.dumps(self.to_dict(), indent=2)


# The fields that define the architecture: changing one on an existing model_dir is refused.
ARCHITECTURE_FIELDS = ("architecture",) + tuple(
    f.name for f in dataclasses.fields(TrainConfig) if f.metadata["architecture"])
