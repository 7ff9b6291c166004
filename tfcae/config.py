"""TrainConfig: every training setting, in one place.

`bin/train` turns each field into an absl flag (same name, type, default and help), so
a setting is added here once and is then a flag, a flagfile line and an entry of
`summary.json`. The library never reads flags.
"""
import dataclasses
import json

ARCHITECTURE_FIELDS = ("model", "num_filters", "latent_channels", "hyper_filters")


def _field(default, help_text, choices=None):
  return dataclasses.field(default=default, metadata={"help": help_text, "choices": choices})


@dataclasses.dataclass
class TrainConfig:
  model_dir: str = _field("", "Output directory: checkpoints, logs, exported SavedModel, "
                          "summary.json. Re-running the same command resumes from it.")
  # Architecture.
  model: str = _field("factorized", "Architecture.", ("factorized", "hyperprior"))
  num_filters: int = _field(128, "Filters of the hidden transform layers (N).")
  latent_channels: int = _field(0, "Latent channels (M); 0 means num_filters.")
  hyper_filters: int = _field(0, "Hyper-transform filters (hyperprior only); 0 = num_filters.")
  # Objective.
  lmbda: float = _field(0.01, "λ in R + λ·D (D is MSE on the 0..255 scale, or 1 − MS-SSIM).")
  distortion: str = _field("mse", "Distortion metric.", ("mse", "ms-ssim"))
  # --- D-CO, hinge and β objectives (issue 4; tfcae/dco.py) ---
  # --- Bottleneck decorrelation (issue 6) ---
  # --- ADMM pruning of the latent code (issue 5; tfcae/admm.py) ---
  # --- Weight sparsity and double descent (issue 3; tfcae/sparsity.py) ---
  # Data.
  train_images: str = _field("", "Training images: folder, glob or comma list (PNG/JPEG).")
  val_images: str = _field("", "Validation images; empty: hold out the last 10% of "
                           "train_images (sorted by name).")
  dataset: str = _field("", "A locally prepared TFDS dataset name (e.g. clic) instead of "
                        "image files.")
  tfds_data_dir: str = _field("", "TFDS data_dir (default: TFDS's own).")
  patch_size: int = _field(256, "Side of the square training crops.")
  batch_size: int = _field(8, "Global batch size (split across replicas).")
  # Optimisation.
  epochs: int = _field(100, "Number of epochs.")
  steps_per_epoch: int = _field(1000, "Optimizer steps per epoch.")
  validation_batches: int = _field(4, "Validation batches evaluated after each epoch.")
  learning_rate: float = _field(1e-4, "Adam learning rate.")
  lr_schedule: str = _field("step", "constant, step (×lr_decay_factor for the last "
                            "(1 − lr_decay_at) of training) or cosine.",
                            ("constant", "step", "cosine"))
  lr_decay_at: float = _field(0.8, "Fraction of training after which 'step' decays.")
  lr_decay_factor: float = _field(0.1, "Decay factor of the 'step' schedule.")
  clip_gradient_norm: float = _field(1.0, "Clip the global gradient norm to this (as "
                                     "CompressAI does; GDN models otherwise blow up now and "
                                     "then); 0 disables.")
  # Execution.
  strategy: str = _field("default", "tf.distribute strategy.", ("default", "mirrored"))
  num_cpu_devices: int = _field(0, "Split the CPU into this many logical devices (to run "
                                "'mirrored' without GPUs); 0 leaves it alone.")
  seed: int = _field(0, "Random seed (weights, crops).")
  verbose: int = _field(-1, "Keras verbosity: 0 silent, 1 progress bar, 2 one line per "
                        "epoch; -1 picks 1 on a terminal and 2 otherwise.")
  image_summaries: bool = _field(True, "Write a validation reconstruction to TensorBoard "
                                 "each epoch.")
  check_numerics: bool = _field(False, "Enable tf.debugging.enable_check_numerics.")

  def architecture(self):
    config = {"architecture": self.model, "num_filters": self.num_filters,
              "latent_channels": self.latent_channels or self.num_filters}
    if self.model == "hyperprior":
      config["hyper_filters"] = self.hyper_filters or self.num_filters
    return config

  def validate(self):
    """Raises ValueError for settings that cannot work (checked before any work)."""
    for f in dataclasses.fields(self):
      choices = f.metadata.get("choices")
      if choices and getattr(self, f.name) not in choices:
        raise ValueError(f"--{f.name}={getattr(self, f.name)!r}: expected one of {choices}")
    if not self.model_dir:
      raise ValueError("--model_dir is required")
    if not (self.train_images or self.dataset):
      raise ValueError("give --train_images or --dataset")
    positive = ("num_filters", "patch_size", "batch_size", "epochs", "steps_per_epoch",
                "validation_batches")
    for name in positive:
      if getattr(self, name) <= 0:
        raise ValueError(f"--{name} must be positive")
    if self.lmbda <= 0 or self.learning_rate <= 0:
      raise ValueError("--lmbda and --learning_rate must be positive")
    if self.distortion == "ms-ssim" and self.patch_size < 176:
      # tf.image.ssim_multiscale needs each side > (11 - 1) * 2**4 = 160 for 5 scales.
      raise ValueError("--distortion=ms-ssim needs --patch_size >= 176")
    from tfcae.models import MODELS  # imports TensorFlow; only after the cheap checks
    stride = MODELS[self.model].stride
    if self.patch_size % stride:
      raise ValueError(f"--patch_size must be a multiple of the {self.model} stride ({stride})")

  def to_dict(self):
    return dataclasses.asdict(self)

  def to_json(self):
    return json.dumps(self.to_dict(), indent=2)
