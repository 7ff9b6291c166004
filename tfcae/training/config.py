"""TrainConfig: every training setting, in one place.

`bin/train` turns each field into an absl flag (same name, type, default and help), so
a setting is added here once and is then a flag, a flagfile line and an entry of
`summary.json`. The library never reads flags.
"""
import dataclasses
import json

from tfcae.registry import LazyNames

__all__ = ["VALUE", "FILTERS", "SWITCH", "TrainConfig", "ARCHITECTURE_FIELDS"]

# How an architecture setting enters the architecture config (TrainConfig.architecture(),
# which is the model's get_config() and so what its fingerprint hashes), for the
# architectures that take it (their `settings`, tfcae/models/registry.py):
VALUE = "value"        # as it is
FILTERS = "filters"    # 0 means num_filters
SWITCH = "switch"      # only when not the default, so that the configs (and fingerprints)
#                        of models trained before the setting existed are unchanged; set
#                        away from its default for an architecture that does not take it,
#                        it is refused (it would silently do nothing)


def _field(default, help_text, choices=None, architecture=None):
  return dataclasses.field(default=default, metadata={
      "help": help_text, "choices": choices, "architecture": architecture})


def _architectures():
  from tfcae.models import ARCHITECTURES  # imports TensorFlow: only when the names are read
  return ARCHITECTURES


@dataclasses.dataclass
class TrainConfig:
  model_dir: str = _field("", "Output directory: checkpoints, logs, exported SavedModel, "
                          "summary.json. Re-running the same command resumes from it.")
  # Architecture.
  # The names of the registered architectures (tfcae.models.ARCHITECTURES), read when the
  # flags are defined or validated, so importing this module does not import TensorFlow.
  model: str = _field("factorized", "Architecture: factorized prior (Ballé et al. 2017), "
                      "scale hyperprior (Ballé et al. 2018), mean-scale hyperprior (Minnen et "
                      "al. 2018, without the context model) or CAE-P.",
                      LazyNames(_architectures))
  num_filters: int = _field(128, "Filters of the hidden transform layers (N).",
                            architecture=VALUE)
  latent_channels: int = _field(0, "Latent channels (M); 0 means num_filters.",
                                architecture=FILTERS)
  hyper_filters: int = _field(0, "Hyper-transform filters (hyperprior only); 0 = num_filters.",
                              architecture=FILTERS)
  integer_hyper_synthesis: bool = _field(False, "Hyperprior only: an integer network "
                                         "(Ballé et al. 2019) computes the scale indices, so "
                                         "files decode on any platform (issue 16). With "
                                         "--init_from a float hyperprior, fine-tunes it.",
                                         architecture=SWITCH)
  gdn: str = _field("simplified", "Normalisation of the transforms: simplified GDN "
                    "(Johnston et al. 2019: x / (β + Σγ|x|), TFC's default) or the original "
                    "GDN (Ballé et al. 2016: x / sqrt(β + Σγx²)).", ("simplified", "original"),
                    architecture=SWITCH)
  decoder_quantization: str = _field("noise", "What the synthesis sees in training: the "
                                     "noisy latents (Ballé et al.) or straight-through "
                                     "rounded ones while the rate keeps the noise (Minnen & "
                                     "Singh 2020, 'mixed').", ("noise", "mixed"))
  caep_blocks: int = _field(15, "Bottleneck residual blocks on each side (caep only; widths "
                            "are num_filters/4, /2 and num_filters).", architecture=VALUE)
  # Objective.
  lmbda: float = _field(0.01, "λ in R + λ·D (D is MSE on the 0..255 scale, or 1 − MS-SSIM).")
  distortion: str = _field("mse", "Distortion metric (caep-mix: CAE-ADMM's MS-SSIM + SSIM + "
                          "MSE + PSNR mix, tfcae/objectives/terms.py).",
                          ("mse", "ms-ssim", "ssim", "caep-mix"))
  # --- D-CO, R-CO, hinge and β objectives (issues 4, 17; tfcae/methods/dco.py) ---
  objective: str = _field("beta", "beta: R + λ·D (--lmbda); dco: min R s.t. D ≤ "
                          "--target_distortion by Lagrangian dual ascent (van Rozendaal et "
                          "al.); rco: min D s.t. R ≤ --target_bpp, the same machinery; "
                          "hinge: R + --hinge_lambda·max(D/c_D − 1, 0).",
                          ("beta", "dco", "hinge", "rco"))
  target_distortion: float = _field(0.0, "c_D for dco/hinge, in --distortion's units (MSE "
                                    "on 0..255, or 1 − MS-SSIM); must be > 0.")
  target_bpp: float = _field(0.0, "c_R for rco: bits per pixel (of the training crops, from "
                             "the entropy model); must be > 0.")
  hinge_lambda: float = _field(10.0, "The fixed λ of the hinge objective.")
  target_tolerance: float = _field(0.02, "summary.json counts the target as met when the "
                                   "validation distortion (rco: bpp) is ≤ c·(1 + this).")
  multiplier_rule: str = _field("auto", "dco/rco: auto derives the multiplier's settings "
                                "from the target and the run (λ0 = --lmbda·c_D, or c_R for "
                                "rco; step 40/steps; anti-windup; tfcae/methods/dco.py); paper uses "
                                "the --multiplier_* settings (defaults: van Rozendaal et "
                                "al.'s).", ("auto", "paper"))
  multiplier_lr: float = _field(5e-3, "D-CO (--multiplier_rule=paper): learning rate of μ "
                                "(λ = exp μ); paper 5e-3.")
  multiplier_momentum: float = _field(0.99, "D-CO (--multiplier_rule=paper): momentum of "
                                      "μ's SGD; paper 0.99.")
  multiplier_dampening: float = _field(0.99, "D-CO (--multiplier_rule=paper): dampening of "
                                       "μ's SGD; paper 0.99.")
  multiplier_max: float = _field(1e3, "D-CO: clip λ ≤ this; paper 1e3.")
  multiplier_init: float = _field(1e3, "D-CO (--multiplier_rule=paper): initial λ (≤ "
                                  "--multiplier_max); paper 1e3.")
  multiplier_signal: str = _field("auto", "D-CO: the measure the dual ascent steers on: "
                                  "train (each training batch, noisy proxy; the paper), "
                                  "validation (one held-out batch per step, real quantizer; "
                                  "Cotter et al. 2019), so the target holds on held-out data; "
                                  "auto: validation on one device, train under a strategy.",
                                  ("auto", "train", "validation"))
  # --- Bottleneck decorrelation (issue 6) ---
  decorrelation_weight: float = _field(0.0, "α of the bottleneck decorrelation term "
                                      "α·Σ_{i≠j} C_ij² over the latents y (Laakom et al.); "
                                      "0 disables it.")
  decorrelation_form: str = _field("squared", "Off-diagonal covariances summed squared or "
                                   "as absolute values.", ("squared", "abs"))
  # --- ADMM pruning of the latent code (issue 5; tfcae/methods/admm.py) ---
  admm_keep_ratio: float = _field(0., "ADMM latent pruning (CAE-P): fraction of latent "
                                  "entries kept by the projection; 0 disables ADMM.")
  admm_period: int = _field(20, "Epochs between ADMM Z/U updates (paper: 20).")
  admm_rho: float = _field(1.0, "ADMM ρ: the penalty is ρ/2·mean((E(x) − Z + U)²).")
  admm_scope: str = _field("dataset", "dataset: Z, U per latent position of a crop, from "
                           "the mean code (reference code); image: each code's own "
                           "projection every step, U = 0.", ("dataset", "image"))
  # --- Weight sparsity and double descent (issue 3; tfcae/methods/double_descent.py) ---
  sparsity_constraint: str = _field("none", "Double descent (Gille et al., Algorithm 2) with "
                                    "the encoder kernels projected onto this ball; none "
                                    "trains dense.", ("none", "l1", "l11", "l1inf"))
  sparsity_groups: str = _field("output_filters", "How a kernel is split into groups for "
                                "l11/l1inf (l1 ignores it).",
                                ("output_filters", "input_channels", "kernel_positions"))
  sparsity_radius: float = _field(0.2, "Radius of the ball, per layer: a fraction of the "
                                  "layer's norm at the start of training (fixed then), or "
                                  "absolute with --nosparsity_relative_radius.")
  sparsity_relative_radius: bool = _field(True, "Read --sparsity_radius as relative.")
  sparsity_layers: str = _field("", "Comma-separated encoder layers to constrain (e.g. "
                                "conv_0,conv_1); empty: every encoder layer with a kernel.")
  first_descent_epochs: int = _field(1, "Epochs of the first descent; the rest of --epochs "
                                     "is the masked second descent.")
  project_every: str = _field("step", "When the first descent projects.",
                              ("step", "epoch", "end"))
  init_from: str = _field("", "Start from the weights of this trained model_dir (e.g. to "
                          "sparsify a dense model); its optimizer and objective state are "
                          "not loaded.")
  # Data.
  train_images: str = _field("", "Training images: folder, glob or comma list (PNG/JPEG), "
                             "or a records folder written by bin/prepare_data (its "
                             "manifest.json names the shards and the validation split).")
  val_images: str = _field("", "Validation images; empty: hold out the last 10% of "
                           "train_images (sorted by name).")
  dataset: str = _field("", "A locally prepared TFDS dataset name (e.g. clic) instead of "
                        "image files.")
  tfds_data_dir: str = _field("", "TFDS data_dir (default: TFDS's own).")
  patch_size: int = _field(256, "Side of the square training crops.")
  batch_size: int = _field(8, "Global batch size (split across replicas).")
  cache_images: bool = _field(True, "Decode the training images once and keep them in "
                              "memory (BSDS500: 230 MB), instead of decoding a file per crop.")
  # Optimisation.
  epochs: int = _field(100, "Number of epochs.")
  steps_per_epoch: int = _field(1000, "Optimizer steps per epoch.")
  validation_batches: int = _field(4, "Validation batches evaluated after each epoch.")
  time_budget_minutes: float = _field(0., "Train for this much wall-clock time instead of "
                                      "--epochs (which becomes an upper bound); the "
                                      "learning-rate schedule then runs over the time: "
                                      "equal-CPU-time recipe comparisons (bench/recipe.py).")
  learning_rate: float = _field(1e-4, "Adam learning rate (the peak, after any warm-up).")
  lr_warmup: float = _field(0., "Fraction of training over which the learning rate rises "
                            "linearly from 0 to --learning_rate.")
  lr_schedule: str = _field("step", "constant, step (×lr_decay_factor for the last "
                            "(1 − lr_decay_at) of training) or cosine.",
                            ("constant", "step", "cosine"))
  lr_decay_at: float = _field(0.8, "Fraction of training after which 'step' decays.")
  lr_decay_factor: float = _field(0.1, "Decay factor of the 'step' schedule.")
  clip_gradient_norm: float = _field(1.0, "Clip the global gradient norm to this (as "
                                     "CompressAI does; GDN models otherwise blow up now and "
                                     "then); 0 disables.")
  # Execution.
  strategy: str = _field("default", "tf.distribute strategy: default (one device), "
                         "mirrored (the devices of this machine), multi_worker "
                         "(MultiWorkerMirroredStrategy over the machines of the TF_CONFIG "
                         "environment variable; docs/scaling.md).",
                         ("default", "mirrored", "multi_worker"))
  num_cpu_devices: int = _field(0, "Split the CPU into this many logical devices (to run "
                                "'mirrored' without GPUs); 0 leaves it alone.")
  seed: int = _field(0, "Random seed (weights, crops).")
  verbose: int = _field(-1, "Keras verbosity: 0 silent, 1 progress bar, 2 one line per "
                        "epoch; -1 picks 1 on a terminal and 2 otherwise.")
  image_summaries: bool = _field(True, "Write a validation reconstruction to TensorBoard "
                                 "each epoch.")
  check_numerics: bool = _field(False, "Enable tf.debugging.enable_check_numerics.")
  jit_compile: bool = _field(False, "Compile the training step with XLA.")
  precision: str = _field("float32", "Keras mixed-precision policy of the transforms: "
                          "float32, mixed_float16 (with loss scaling) or mixed_bfloat16; the "
                          "entropy models and every loss term stay in float32, as TFC "
                          "requires.", ("float32", "mixed_float16", "mixed_bfloat16"))

  def architecture(self):
    """The architecture config these settings build (tfcae.models.build_model's argument,
    equal to the model's get_config()): the `settings` its class declares, each entered
    as its field says (VALUE, FILTERS, SWITCH). Imports TensorFlow (the classes)."""
    config = {"architecture": self.model}
    for name in _architectures().get(self.model).settings:
      field = self.__dataclass_fields__[name]
      how, value = field.metadata["architecture"], getattr(self, name)
      if how == FILTERS:
        value = value or self.num_filters
      elif how == SWITCH and value == field.default:
        continue
      config[name] = value
    return config

  def validate(self):
    """Raises ValueError for settings that cannot work (checked before any work)."""
    for f in dataclasses.fields(self):
      if f.name != "model":  # its names come from the registry: below, after the cheap ones
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
    if self.objective == "rco" and not self.target_bpp > 0:
      raise ValueError(f"--objective=rco needs --target_bpp > 0 (the constraint is "
                       f"R/c_R − 1), got {self.target_bpp}")
    if self.objective in ("dco", "rco") and self.multiplier_rule == "auto":
      changed = [f"--{name}" for name in ("multiplier_lr", "multiplier_momentum",
                                          "multiplier_dampening", "multiplier_init")
                 if getattr(self, name) != self.__dataclass_fields__[name].default]
      if changed:
        raise ValueError(f"{', '.join(changed)} apply to --multiplier_rule=paper; the auto "
                         "rule derives them from the target and the run length")
      if self.time_budget_minutes:
        raise ValueError("--multiplier_rule=auto sets the multiplier's step from the planned "
                         "steps (--epochs × --steps_per_epoch), which a time budget leaves "
                         "open: drop --time_budget_minutes or use --multiplier_rule=paper")
    if self.objective in ("dco", "hinge"):  # issue 4: checked again by tfcae.methods.dco
      if not self.target_distortion > 0:
        raise ValueError(f"--objective={self.objective} needs --target_distortion > 0 (the "
                         f"constraint is D/c_D − 1), got {self.target_distortion}")
      if self.distortion != "mse" and self.target_distortion >= 1:
        raise ValueError(f"--target_distortion for {self.distortion} is 1 − similarity: < 1")
      if not (self.hinge_lambda > 0 and self.multiplier_lr > 0 and
              0 < self.multiplier_init <= self.multiplier_max):
        raise ValueError("--hinge_lambda and --multiplier_lr must be > 0 and 0 < "
                         "--multiplier_init <= --multiplier_max")
    if self.objective in ("dco", "rco") and self.multiplier_signal == "validation" and (
        self.strategy != "default"):
      raise ValueError("--multiplier_signal=validation runs on one device only (its held-out "
                       "batches are not distributed); use --strategy=default")
    if self.distortion in ("ms-ssim", "caep-mix") and self.patch_size < 176:
      # tf.image.ssim_multiscale needs each side > (11 - 1) * 2**4 = 160 for 5 scales.
      raise ValueError(f"--distortion={self.distortion} needs --patch_size >= 176")
    if self.precision != "float32" and self.integer_hyper_synthesis:
      raise ValueError("--integer_hyper_synthesis trains in float32 (its integers are "
                       "calibrated on float32 activations); drop --precision")
    if self.strategy == "multi_worker":
      # What needs one process: a held-out batch per step, a per-worker clock, and ADMM's
      # Z/U (each worker would compute them from its own shard of the data).
      for bad, why in ((self.objective in ("dco", "rco") and
                        self.multiplier_signal == "validation", "--multiplier_signal=validation"),
                       (self.time_budget_minutes > 0, "--time_budget_minutes (each worker "
                        "has its own clock; give --epochs)"),
                       (self.admm_keep_ratio > 0, "ADMM latent pruning (--admm_keep_ratio)"),
                       (self.num_cpu_devices > 1, "--num_cpu_devices")):
        if bad:
          raise ValueError(f"--strategy=multi_worker cannot run with {why}")
    if self.sparsity_constraint != "none" and not 1 <= self.first_descent_epochs < self.epochs:
      raise ValueError("--first_descent_epochs must leave at least one epoch of --epochs for "
                       "the second descent")
    if self.sparsity_radius < 0:
      raise ValueError("--sparsity_radius must be >= 0")
    # The architecture checks import TensorFlow (the registry's classes): only after the
    # cheap checks.
    self._check_choice(self.__dataclass_fields__["model"])
    cls = _architectures().get(self.model)
    for f in dataclasses.fields(self):
      if (f.metadata.get("architecture") == SWITCH and f.name not in cls.settings and
          getattr(self, f.name) != f.default):
        takers = [name for name, c in _architectures().items() if f.name in c.settings]
        raise ValueError(f"--{f.name} applies to --model={'|'.join(takers)}, not "
                         f"{self.model}")
    stride = cls.stride
    if self.patch_size % stride:
      raise ValueError(f"--patch_size must be a multiple of the {self.model} stride ({stride})")

  def _check_choice(self, field):
    choices = field.metadata.get("choices")
    if choices and getattr(self, field.name) not in choices:
      raise ValueError(f"--{field.name}={getattr(self, field.name)!r}: expected one of "
                       f"{tuple(choices)}")

  @classmethod
  def load(cls, path):
    """The config a run saved (train_config.json); fields it lacks take their defaults,
    fields this version no longer has are ignored."""
    with open(path, encoding="utf-8") as f:
      saved = json.load(f)
    # Runs saved before --multiplier_rule existed used the paper's rule (issue 17).
    saved.setdefault("multiplier_rule", "paper")
    return cls(**{k: v for k, v in saved.items() if k in cls.__dataclass_fields__})

  def to_dict(self):
    return dataclasses.asdict(self)

  def to_json(self):
    return json.dumps(self.to_dict(), indent=2)


# The fields that define the architecture: changing one on an existing model_dir is refused.
ARCHITECTURE_FIELDS = ("model",) + tuple(
    f.name for f in dataclasses.fields(TrainConfig) if f.metadata["architecture"])
