"""Training and evaluating the MNIST autoencoder of Laakom et al. (bottleneck decorrelation).

The protocol of the paper's Table 1: 50k training / 10k validation (the last 10k of the
training set) / 10k test images; encoder 784-128-64-n, decoder n-64-128-784
(tfcae.models.mnist); binary cross-entropy, optionally + α·Σ_{i≠j} C_ij² over the bottleneck
(tfcae.methods.decorrelation.Decorrelation); Adam 5e-4, batch 128, 100 epochs; reported: test RMSE.

`train_mnist(config)` is what `bin/train_mnist` runs; `bench/mnist_decorrelation.py` calls
it for every (n, loss, seed) of Table 1.
"""
import dataclasses
import os
import time

import numpy as np
import tensorflow as tf

from tfcae import TfcaeError
from tfcae.data import images as data
from tfcae.methods import registry as methods
from tfcae.methods.decorrelation import decorrelation_penalty
from tfcae.models.mnist import MnistAutoencoder
from tfcae.objectives.terms import BinaryCrossEntropy
from tfcae.registry import setting
from tfcae.training.rundir import SUMMARY_FILE, RunDir

__all__ = ["WEIGHTS", "MnistConfig", "load_splits", "build_objective", "rmse", "bottleneck",
           "code_statistics", "train_mnist", "load_trained"]

WEIGHTS = "weights"  # TF checkpoint prefix inside model_dir


# The methods that apply to the MNIST autoencoder (it has no entropy model or conv kernels).
METHOD_NAMES = ("decorrelation",)


@dataclasses.dataclass
class _MnistCore:
  model_dir: str = setting("", "Output directory: weights, history.csv, summary.json.")
  mnist_dir: str = setting("../shared/data/mnist", "Folder with the four standard MNIST IDX "
                           ".gz files (train-images-idx3-ubyte.gz, ...).")
  use_tfds: bool = setting(False, "Read a locally prepared TFDS 'mnist' instead of "
                           "--mnist_dir (never downloads).")
  tfds_data_dir: str = setting("", "TFDS data_dir (default: TFDS's own).")
  num_validation: int = setting(10000, "Last training images held out for validation.")
  bottleneck: int = setting(8, "Bottleneck size n (784-128-64-n).")
  epochs: int = setting(100, "Epochs over the 50k training images.")
  batch_size: int = setting(128, "Batch size.")
  learning_rate: float = setting(5e-4, "Adam learning rate.")
  validation_freq: int = setting(10, "Evaluate the validation loss every this many epochs.")
  seed: int = setting(0, "Random seed (weights, shuffling).")
  steps_per_execution: int = setting(50, "Training steps per compiled call (speed only).")
  verbose: int = setting(0, "Keras verbosity (0 silent, 1 progress bar, 2 one line/epoch).")


@dataclasses.dataclass
class MnistConfig(*reversed(methods.settings_classes(METHOD_NAMES)), _MnistCore):
  """Every setting of one MNIST autoencoder run (each is a bin/train_mnist flag): its own
  and those of the methods that apply (METHOD_NAMES, declared in tfcae/methods/)."""

  def validate(self):
    for f in dataclasses.fields(self):
      choices = f.metadata.get("choices")
      if choices and getattr(self, f.name) not in choices:
        raise ValueError(f"--{f.name}={getattr(self, f.name)!r}: expected one of {choices}")
    for name in ("bottleneck", "epochs", "batch_size", "validation_freq",
                 "steps_per_execution", "num_validation"):
      if getattr(self, name) <= 0:
        raise ValueError(f"--{name} must be positive")
    if self.learning_rate <= 0:
      raise ValueError("--learning_rate must be positive")
    for name in METHOD_NAMES:
      methods.METHODS.get(name).validate(self)

  def to_dict(self):
    return dataclasses.asdict(self)


def load_splits(config):
  """train / validation / test ([N, 784] float32 in [0, 1], labels) for a config."""
  if config.use_tfds:
    mnist = data.load_mnist_tfds(config.tfds_data_dir or None)
  else:
    if not os.path.isdir(config.mnist_dir):
      raise TfcaeError(f"MNIST folder {config.mnist_dir!r} does not exist (give --mnist_dir "
                       "or --use_tfds)")
    mnist = data.load_mnist_idx(config.mnist_dir)
  return data.mnist_splits(mnist, config.num_validation)


def build_objective(config):
  """BCE, plus the enabled methods' terms (α·Σ_{i≠j} C_ij² over the bottleneck y when
  α > 0: Laakom et al., eq. 2), composed by the loop the codecs use."""
  return methods.build_objective(config, [BinaryCrossEntropy()], METHOD_NAMES)


def rmse(model, images, batch_size=2000):
  """Root-mean-square error over every pixel of `images` ([0, 1] scale)."""
  total = 0.
  for start in range(0, len(images), batch_size):
    x = images[start:start + batch_size]
    x_hat = model(x, training=False).numpy()
    total += float(np.sum(np.square(x_hat.astype(np.float64) - x)))
  return float(np.sqrt(total / images.size))


def bottleneck(model, images, batch_size=2000):
  """The bottleneck codes y [N, n] of `images`."""
  return np.concatenate([model.encode(images[s:s + batch_size]).numpy()
                         for s in range(0, len(images), batch_size)])


def code_statistics(codes):
  """Off-diagonal covariance Σ_{i≠j} C_ij² and mean |correlation| of codes [N, n]."""
  codes = np.asarray(codes, np.float64)
  stats = {"offdiag_cov_sq": float(decorrelation_penalty(codes.astype(np.float32)))}
  if codes.shape[1] > 1:
    corr = np.corrcoef(codes, rowvar=False)
    off = ~np.eye(len(corr), dtype=bool)
    stats["mean_abs_corr"] = float(np.mean(np.abs(corr[off])))
  return stats


def train_mnist(config, splits=None):
  """Trains one autoencoder; writes model_dir/{weights*, history.csv, summary.json}.

  Returns (model, summary). `splits` (from load_splits) may be passed to share the data
  between runs. The summary holds validation and test RMSE, the final losses and the test
  codes' off-diagonal covariance.
  """
  config.validate()
  if splits is None:
    splits = load_splits(config)
  run = RunDir(config.model_dir).create() if config.model_dir else None
  tf.keras.utils.set_random_seed(config.seed)
  train_x = splits["train"][0]
  val_x = splits["validation"][0]
  # Shuffle indices, not 50k × 784 floats: filling a 157 MB shuffle buffer every epoch
  # costs more than the MLP's steps.
  images = tf.constant(train_x)
  train_ds = (tf.data.Dataset.range(len(train_x))
              .shuffle(len(train_x), seed=config.seed, reshuffle_each_iteration=True)
              .batch(config.batch_size).map(lambda i: tf.gather(images, i))
              .prefetch(tf.data.AUTOTUNE))
  val_ds = tf.data.Dataset.from_tensor_slices(val_x).batch(2000)
  model = MnistAutoencoder(config.bottleneck, objective=build_objective(config))
  model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate),
                steps_per_execution=config.steps_per_execution)
  callbacks = []
  if run is not None:
    callbacks.append(tf.keras.callbacks.CSVLogger(run.history_path))
  start = time.time()
  history = model.fit(train_ds, epochs=config.epochs, validation_data=val_ds,
                      validation_freq=config.validation_freq, callbacks=callbacks,
                      verbose=config.verbose).history
  train_seconds = time.time() - start
  if not np.isfinite(history["loss"][-1]):
    raise TfcaeError("MNIST training diverged (NaN/Inf loss)")
  test_x = splits["test"][0]
  summary = {
      "model": model.get_config(),
      "objective": model.objective.get_config(),
      "train": {k: float(v[-1]) for k, v in history.items() if not k.startswith("val_")},
      "validation_rmse": rmse(model, val_x),
      "test_rmse": rmse(model, test_x),
      "test_codes": code_statistics(bottleneck(model, test_x)),
      "train_seconds": round(train_seconds, 1),
      "settings": config.to_dict(),
      "tensorflow": tf.__version__,
  }
  if run is not None:
    model.save_weights(run.join(WEIGHTS))
    run.write_summary(summary)
  return model, summary


def load_trained(model_dir):
  """Rebuilds a trained autoencoder from its model_dir (summary.json + weights)."""
  run = RunDir(model_dir)
  if not run.is_finished():
    raise TfcaeError(f"{model_dir} holds no trained MNIST autoencoder ({SUMMARY_FILE} missing)")
  model = MnistAutoencoder(**run.read_summary()["model"])
  model.load_weights(run.join(WEIGHTS)).expect_partial()
  return model
