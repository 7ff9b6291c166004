"""Training: datasets -> model + objective -> Keras fit with checkpoints -> export.

`train(config)` is what `bin/train` runs. It is resumable: the model, the optimizer, every
variable of the objective's terms and hooks, and the epoch counter are saved with
tf.train.CheckpointManager in `model_dir/checkpoints` after every epoch; running the same
command again restores the latest checkpoint and continues with the next epoch.
"""
import contextlib
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from tfcae import TfcaeError
from tfcae.data import images as data
from tfcae.data import records
from tfcae.methods import registry as methods
from tfcae.models import ARCHITECTURES, build_model
from tfcae.objectives.terms import (Distortion, ObjectiveEpochCallback, Rate,
                                     VariableRateDistortion)
from tfcae.serving import export
from tfcae.serving.exported import assign_matching
from tfcae.training.energy import EnergyMeter
from tfcae.training.config import ARCHITECTURE_FIELDS, TrainConfig
from tfcae.training.rundir import RunDir
# The file names of the previous layout's API (tests and scripts import them from here).
from tfcae.training.rundir import CONFIG_FILE, HISTORY_FILE, SUMMARY_FILE  # noqa: F401

__all__ = ["build_objective", "ProgressSchedule", "learning_rate_schedule", "TimeBudget",
           "configure_devices", "make_strategy", "worker_role",
           "EpochCheckpoint", "Throughput", "ReconstructionImages", "warm_start",
           "convert_to_integer_hyper_synthesis", "split_files", "datasets", "train",
           "cpu_lacks_bfloat16"]


def build_objective(config):
  """The objective for a config: R + λ·D with every enabled method's terms and hooks
  (tfcae.methods.registry.build_objective: a loop over the registered methods; docs/
  design.md, "The objective seam"); models never change."""
  if getattr(ARCHITECTURES.get(config.architecture), "variable_rate", False):
    distortion = VariableRateDistortion(config.lmbda, config.lmbda_max, config.rate_points,
                                        config.distortion)
  else:
    distortion = Distortion(config.lmbda, config.distortion)
  return methods.build_objective(config, [Rate(), distortion])


class ProgressSchedule(tf.keras.optimizers.schedules.LearningRateSchedule):
  """The learning rate as a function of training progress p in [0, 1]: a linear warm-up
  over the first `warmup` of it to `peak`, then constant, a step (×factor from p =
  decay_at) or a cosine to 0. p is steps / total_steps, or, with a time budget, the
  fraction of it spent (`elapsed` seconds, a variable kept by TimeBudget, over
  `budget_seconds`), so that the schedule of an equal-wall-clock run completes whatever its
  speed."""

  def __init__(self, kind, peak, total_steps, warmup=0., decay_at=.8, factor=.1,
               elapsed=None, budget_seconds=0.):
    self.kind, self.peak, self.total_steps = kind, float(peak), max(int(total_steps), 1)
    self.warmup, self.decay_at, self.factor = float(warmup), float(decay_at), float(factor)
    self.elapsed, self.budget_seconds = elapsed, float(budget_seconds)

  def __call__(self, step):
    if self.elapsed is not None:
      p = tf.cast(self.elapsed / self.budget_seconds, tf.float32)
    else:
      p = tf.cast(step, tf.float32) / self.total_steps
    p = tf.clip_by_value(p, 0., 1.)
    if self.kind == "constant":
      lr = tf.constant(self.peak)
    elif self.kind == "step":
      lr = tf.where(p < self.decay_at, self.peak, self.peak * self.factor)
    else:  # cosine over what follows the warm-up
      q = tf.clip_by_value((p - self.warmup) / max(1. - self.warmup, 1e-9), 0., 1.)
      lr = self.peak * .5 * (1. + tf.cos(np.pi * q))
    if self.warmup > 0:
      lr = lr * tf.minimum(p / self.warmup, 1.)
    return lr

  def get_config(self):
    return {"kind": self.kind, "peak": self.peak, "total_steps": self.total_steps,
            "warmup": self.warmup, "decay_at": self.decay_at, "factor": self.factor}


def learning_rate_schedule(config, elapsed=None):
  total = config.epochs * config.steps_per_epoch
  if config.lr_schedule == "constant" and not config.lr_warmup:
    return config.learning_rate
  return ProgressSchedule(config.lr_schedule, config.learning_rate, total,
                          warmup=config.lr_warmup, decay_at=config.lr_decay_at,
                          factor=config.lr_decay_factor, elapsed=elapsed,
                          budget_seconds=config.time_budget_minutes * 60.)


class TimeBudget(tf.keras.callbacks.Callback):
  """Stops training once `budget_seconds` of training time (validation excluded, summed
  over resumed runs through the checkpointed `elapsed` variable, which ProgressSchedule
  reads) are spent."""

  def __init__(self, budget_seconds, elapsed):
    super().__init__()
    self.budget, self.elapsed = float(budget_seconds), elapsed
    self.exhausted = False

  def on_train_batch_begin(self, batch, logs=None):
    self._start = time.perf_counter()

  def on_train_batch_end(self, batch, logs=None):
    if self.elapsed.assign_add(time.perf_counter() - self._start).numpy() >= self.budget:
      self.exhausted = True
      self.model.stop_training = True


def configure_devices(num_cpu_devices):
  """Splits the CPU into logical devices; must run before TensorFlow initialises."""
  if num_cpu_devices > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * num_cpu_devices)


def make_strategy(config):
  """None (one device), a MirroredStrategy, or a MultiWorkerMirroredStrategy configured by
  TF_CONFIG. The multi-worker strategy must be created before any other TensorFlow op of
  the process (its collectives are configured at start-up): train() creates it first."""
  if config.strategy == "default":
    return None
  if config.strategy == "multi_worker":
    import json
    try:
      resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
      cluster = resolver.cluster_spec().as_dict()
    except (ValueError, json.JSONDecodeError) as e:
      raise TfcaeError(f"TF_CONFIG is not valid JSON of a cluster and a task: {e}") from None
    if not cluster or resolver.task_type is None:
      raise TfcaeError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                       "(a cluster and this process's task; docs/scaling.md)")
    # RING: collectives over gRPC, which every platform has (NCCL needs GPUs).
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING)
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver,
                                                     communication_options=options)
  gpus = tf.config.list_logical_devices("GPU")
  devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
  # Tests and CPU runs have no NCCL: reduce on the host.
  return tf.distribute.MirroredStrategy(
      devices, cross_device_ops=tf.distribute.ReductionToOneDevice())


@contextlib.contextmanager
def _plain_string_variables(strategy):
  """MultiWorkerMirroredStrategy broadcasts every new variable's initial value from the
  chief, and its collective broadcast has no kernel for strings: the model's fingerprint
  (a tf.string variable that prepare_for_compression sets from the weights, so it is equal
  wherever the weights are) is created as a plain variable on each worker instead."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    yield
    return
  # TF's own marker for "one device, not mirrored" (internal; TF 2.14 is pinned).
  from tensorflow.python.distribute import numpy_dataset

  def creator(next_creator, **kwargs):
    dtype, value = kwargs.get("dtype"), kwargs.get("initial_value")
    if (tf.as_dtype(dtype) == tf.string if dtype is not None else
        isinstance(value, (bytes, str))):
      kwargs["colocate_with"] = numpy_dataset.SingleDevice("/cpu:0")
    return next_creator(**kwargs)

  with tf.variable_creator_scope(creator):
    yield


def worker_role(strategy):
  """(index, count, is_chief) of this process among a multi-worker run's workers (the
  chief is index 0); (0, 1, True) otherwise. As TF's convention: the "chief" task, or
  worker 0 when the cluster has no chief."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
    return 0, 1, True
  cluster = resolver.cluster_spec().as_dict()
  chiefs, workers = len(cluster.get("chief", [])), len(cluster.get("worker", []))
  task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
  index = task_id if task_type == "chief" else chiefs + task_id
  return index, chiefs + workers, index == 0


class EpochCheckpoint(tf.keras.callbacks.Callback):
  """Saves model + optimizer + objective state + epoch counter after every epoch."""

  def __init__(self, manager, epoch_variable):
    super().__init__()
    self.manager = manager
    self.epoch_variable = epoch_variable

  def on_epoch_end(self, epoch, logs=None):
    # Keras still ends the epoch after TerminateOnNaN stops it: never overwrite the last
    # good checkpoint with diverged weights. (A spent time budget also stops training; its
    # last, partial epoch is saved.)
    if not np.isfinite((logs or {}).get("loss", 0.)):
      return
    self.epoch_variable.assign(epoch + 1)
    self.manager.save(checkpoint_number=epoch + 1)


class Throughput(tf.keras.callbacks.Callback):
  """Adds `steps_per_sec` (training steps only, validation excluded) to the epoch logs."""

  def on_epoch_begin(self, epoch, logs=None):
    self._start, self._steps = time.perf_counter(), 0

  def on_train_batch_end(self, batch, logs=None):
    self._steps += 1
    self._last = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None and self._steps:
      logs["steps_per_sec"] = self._steps / max(self._last - self._start, 1e-9)


class ReconstructionImages(tf.keras.callbacks.Callback):
  """Writes one validation crop and its reconstruction to TensorBoard each epoch."""

  def __init__(self, log_dir, images):
    super().__init__()
    self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "images"))
    self.images = images

  def on_epoch_end(self, epoch, logs=None):
    x_hat = self.model(self.images, training=False)
    with self.writer.as_default(step=epoch + 1):
      tf.summary.image("original", self.images / 255., max_outputs=2)
      tf.summary.image("reconstruction", tf.clip_by_value(x_hat / 255., 0., 1.), max_outputs=2)


def _check_resume_compatible(model_dir, config):
  run = RunDir(model_dir)
  if not os.path.exists(run.config_path):
    return
  # A field added after that run was written had its default then (TrainConfig.load).
  previous = run.read_config()
  changed = [k for k in ARCHITECTURE_FIELDS if getattr(previous, k) != getattr(config, k)]
  if changed:
    raise TfcaeError(f"{model_dir} holds a model trained with a different architecture "
                     f"({', '.join(f'{k}={getattr(previous, k)!r}' for k in changed)}); use "
                     "another --model_dir")


def warm_start(model, source):
  """Loads a trained model's weights (not its optimizer or objective state), e.g. to
  sparsify a trained dense model: from a bin/train directory's latest checkpoint, or from
  an exported SavedModel such as a zoo model (`zoo:factorized/3`)."""
  from tfcae.io import zoo_index as zoo
  run = RunDir(zoo.resolve(source))
  source_dir = run.path
  latest = run.latest_checkpoint()
  if latest is None and not run.exported().is_exported():
    raise TfcaeError(f"--init_from={source}: no checkpoint in {run.checkpoint_dir} and "
                     "no exported model")
  if latest is None:
    architecture = run.exported().architecture
  else:
    architecture = run.read_config().architecture_config() if os.path.exists(run.config_path) else None
  if architecture is not None and architecture != model.get_config():
    if architecture == _float_hyper_synthesis(model.get_config()):
      _warm_start_integer(model, source, architecture)
      return
    parts = getattr(type(model), "shared_parts", lambda *_: [])(architecture,
                                                                 model.get_config())
    if parts:
      _warm_start_parts(model, source, architecture, parts)
      return
    raise TfcaeError(f"--init_from={source} holds a different architecture ({architecture}); "
                     f"this run builds {model.get_config()}")
  if latest is None:
    assign_matching(model.weight_variables(), tf.saved_model.load(source_dir).model_variables,
                    source_dir)
    print(f"Initialised the weights from the SavedModel {source_dir}", flush=True)
    return
  # The transforms and priors only: this run's objective state and metrics start fresh.
  parts = {name: child for name, child in model._trackable_children("checkpoint").items()
           if name not in ("objective", "fingerprint", "_trackers")}
  weights = tf.train.Checkpoint(model=tf.train.Checkpoint(**parts))
  weights.restore(latest).expect_partial().assert_existing_objects_matched()
  print(f"Initialised the weights from {latest}", flush=True)


def _float_hyper_synthesis(architecture):
  """The float hyperprior an integer-hyper-synthesis architecture fine-tunes from."""
  if not architecture.get("integer_hyper_synthesis"):
    return None
  return {k: v for k, v in architecture.items() if k != "integer_hyper_synthesis"}


def _warm_start_integer(model, source, architecture):
  """A float hyperprior -> the same model with an integer hyper-synthesis: every weight
  of the float model lands (its kernels and biases are the integer layers' float
  weights); the integer layers' own state (steps, frozen integers) starts fresh and
  `calibrate` sets it."""
  float_model = build_model(architecture)
  warm_start(float_model, source)
  sources = float_model.weight_variables()
  names = {(v.name, tuple(v.shape)) for v in sources}
  targets = [v for v in model.weight_variables() if (v.name, tuple(v.shape)) in names]
  if len(targets) != len(sources):
    raise TfcaeError(f"--init_from={source}: {len(sources) - len(targets)} of its weights "
                     "have no place in the integer hyper-synthesis model")
  assign_matching(targets, sources, source)


def _warm_start_parts(model, source, architecture, parts):
  """The parts (attributes) that another architecture shares with this one, e.g. a
  factorized model's transforms in a variable-rate hyperprior; the rest starts fresh."""
  source_model = build_model(architecture)
  warm_start(source_model, source)
  for part in parts:
    assign_matching(getattr(model, part).variables, getattr(source_model, part).variables,
                    f"{source}'s {part}")
  print(f"Initialised {', '.join(parts)} from {source} ({architecture['architecture']})",
        flush=True)


def convert_to_integer_hyper_synthesis(source, calibration_batch):
  """A trained float hyperprior (a run directory or an exported/zoo model) with its
  hyper-synthesis made the integer network, without training: every float weight kept,
  the activation steps calibrated on `calibration_batch` (images [B, H, W, 3], 0..255),
  the integers frozen. The cheap route to cross-platform files for an existing model;
  fine-tuning (`--integer_hyper_synthesis --init_from`) is the other (docs/results.md
  compares them). Returns the model, ready to compress and export."""
  from tfcae.io import zoo_index as zoo
  architecture = RunDir(zoo.resolve(source)).architecture()
  takes = ARCHITECTURES.get(architecture.get("architecture")).settings if (
      architecture.get("architecture") in ARCHITECTURES.names()) else ()
  if "integer_hyper_synthesis" not in takes or architecture.get("integer_hyper_synthesis"):
    raise TfcaeError(f"{source}: not a float hyperprior that takes an integer "
                     f"hyper-synthesis ({architecture})")
  model = build_model({**architecture, "integer_hyper_synthesis": True})
  warm_start(model, source)
  model.calibrate(tf.convert_to_tensor(calibration_batch, tf.float32))
  model.prepare_for_compression()
  return model


def split_files(train_images, val_images=""):
  """(training files, validation files): --val_images, or else the last tenth of
  --train_images by name (at least one image) is held out."""
  train_files = data.image_files(train_images, "training images")
  if val_images:
    val_files = data.image_files(val_images, "validation images")
  else:
    if len(train_files) < 2:
      raise TfcaeError("need at least 2 training images to hold some out for validation "
                       "(or give --val_images)")
    n_val = max(1, len(train_files) // 10)
    train_files, val_files = train_files[:-n_val], train_files[-n_val:]
  overlap = set(map(os.path.abspath, train_files)) & set(map(os.path.abspath, val_files))
  if overlap:
    raise TfcaeError(f"{len(overlap)} images are both training and validation images")
  return train_files, val_files


def datasets(config, worker=0, workers=1):
  """(training, validation) datasets. With several workers each trains on its own shard
  of the files (data.worker_share) and keeps the whole validation set, so tf.data's
  auto-sharding is off; a TFDS dataset's training stream is sharded by tf.data (policy
  DATA, explicit: its files may be fewer than the workers), its validation kept whole."""
  options = tf.data.Options()
  policy = tf.data.experimental.AutoShardPolicy
  if config.dataset:
    train, val = data.tfds_datasets(config.dataset, config.patch_size, config.batch_size,
                                    config.tfds_data_dir or None, seed=config.seed,
                                    max_val_batches=config.validation_batches)
    whole = tf.data.Options()
    whole.experimental_distribute.auto_shard_policy = policy.OFF
    options.experimental_distribute.auto_shard_policy = policy.DATA
    return train.with_options(options), val.with_options(whole)
  if records.is_records_dir(config.train_images):  # written by bin/prepare_data
    options.experimental_distribute.auto_shard_policy = policy.OFF  # shards dealt by hand
    train = records.train_dataset(config.train_images, config.patch_size, config.batch_size,
                                  config.seed + worker, worker, workers,
                                  cache=config.cache_images)
    val = (data.validation_dataset(data.image_files(config.val_images, "validation images"),
                                   config.patch_size, config.batch_size,
                                   config.validation_batches) if config.val_images else
           records.validation_dataset(config.train_images, config.patch_size,
                                      config.batch_size, config.validation_batches))
    return train.with_options(options), val.with_options(options)
  train_files, val_files = split_files(config.train_images, config.val_images)
  if workers > 1:
    train_files = data.worker_share(
        train_files, worker, workers, f"{len(train_files)} training images for {workers} "
        "workers: each worker needs at least one")
    print(f"worker {worker} of {workers}: {len(train_files)} training images", flush=True)
  options.experimental_distribute.auto_shard_policy = policy.OFF
  return (data.train_dataset(train_files, config.patch_size, config.batch_size,
                             config.seed + worker, cache=config.cache_images
                             ).with_options(options),
          data.validation_dataset(val_files, config.patch_size, config.batch_size,
                                  config.validation_batches).with_options(options))


def train(config: TrainConfig,
          model_fn: Optional[Callable[[Any], tf.keras.Model]] = None) -> Dict[str, Any]:
  """Trains (or resumes) a model, exports its SavedModel and writes summary.json.

  Resumable: run again with the same config, it restores the latest checkpoint in
  `config.model_dir` and continues with the next epoch.

  Args:
    config: every training setting (validated here first).
    model_fn: builds the model from the objective instead of the registry's
      `config.architecture` (for a model defined outside tfcae, e.g. bench/recipe.py's TFC
      example arm); None: the registry's.

  Returns:
    The run's summary (what summary.json holds): "validation" metrics, "train" figures,
    the architecture, timings.

  Raises:
    ValueError: for settings that cannot work (TrainConfig.validate).
    TfcaeError: for a model_dir that holds another architecture, unusable data, or a
      training that diverged (NaN/Inf loss; the last good checkpoint is kept).
  """
  config.validate()
  strategy = make_strategy(config)  # first: a multi-worker strategy must precede any op
  worker, workers, chief = worker_role(strategy)
  model_dir = config.model_dir
  run = RunDir(model_dir)
  if chief:
    run.create()
    _check_resume_compatible(model_dir, config)
    run.write_config(config)
  # Only the chief writes into model_dir; other workers save their (identical) checkpoints
  # and export into a temporary folder, removed at the end, since under
  # MultiWorkerMirroredStrategy every worker must take part in saving.
  out = run if chief else RunDir(tempfile.mkdtemp(prefix=f"tfcae-worker{worker}-")).create()
  try:
    return _train(config, model_fn, strategy, run, out, worker, workers)
  finally:
    if not chief:
      shutil.rmtree(out.path, ignore_errors=True)


@contextlib.contextmanager
def _scope(strategy):
  # The default strategy's scope() breaks TFC's GDN build (its initial values cannot be
  # lifted out of Keras' build graph), so only enter a scope for a real strategy.
  with strategy.scope() if strategy else contextlib.nullcontext(), \
      _plain_string_variables(strategy):
    yield


@contextlib.contextmanager
def _precision(policy):
  """Keras' global mixed-precision policy while the model is built (layers take it at
  construction); restored afterwards, so that nothing else in the process inherits it."""
  previous = tf.keras.mixed_precision.global_policy()
  tf.keras.mixed_precision.set_global_policy(policy)
  try:
    yield
  finally:
    tf.keras.mixed_precision.set_global_policy(previous)


def _compiled_model(config, model_fn, elapsed=None, init_from=""):
  """The model with its objective, warm-started from `init_from` (before compile: hooks
  such as double descent size themselves on the starting weights when built), compiled,
  the optimizer's slots created (so that a checkpoint restores them immediately)."""
  objective = build_objective(config)
  model = (model_fn(objective) if model_fn else
           build_model(config.architecture_config(), objective=objective))
  model.decoder_quantization = config.decoder_quantization
  if config.rate_point:  # a variable-rate model trained at one rate point (fixed λ)
    model.fixed_rate_point = config.rate_point
  if init_from:
    warm_start(model, init_from)
  model.compile(optimizer=tf.keras.optimizers.Adam(
      learning_rate_schedule(config, elapsed),
      global_clipnorm=config.clip_gradient_norm or None), jit_compile=config.jit_compile)
  model.optimizer.build(model.trainable_variables)
  return model


def _float32_copy(config, model_fn, strategy, checkpoint_path):
  """A float32 model holding a mixed-precision run's final checkpoint (weights and
  objective state): what is validated and exported, so that the SavedModel codes in
  float32 whatever the training precision (variables are float32 under every policy)."""
  with _scope(strategy), _precision("float32"):
    model = _compiled_model(config, model_fn)
  tf.train.Checkpoint(model=model).restore(checkpoint_path).expect_partial()
  return model


def cpu_lacks_bfloat16(cpuinfo="/proc/cpuinfo"):
  """True on a CPU-only Linux machine whose CPU has neither AVX512-BF16 nor AMX-BF16:
  oneDNN then emulates bfloat16 convolutions, and mixed_bfloat16 trains ≈ 11× slower than
  float32 instead of ≈ 1.8× faster (docs/results.md, "Throughput on a CPU without AVX-512")."""
  if tf.config.list_physical_devices("GPU") or not os.path.isfile(cpuinfo):
    return False  # a GPU, or not Linux: nothing to say
  with open(cpuinfo, encoding="utf-8", errors="replace") as f:
    flags_ = {w for line in f if line.startswith("flags") for w in line.split()}
  return bool(flags_) and not flags_ & {"avx512_bf16", "amx_bf16"}


def _train(config, model_fn, strategy, run, out, worker, workers):
  chief = out is run
  if config.precision == "mixed_bfloat16" and chief and cpu_lacks_bfloat16():
    print("warning: --precision=mixed_bfloat16 on a CPU without AVX512-BF16 or AMX runs "
          "emulated and is slower than float32; use --precision=float32 here",
          file=sys.stderr, flush=True)
  if config.check_numerics:
    tf.debugging.enable_check_numerics()
  tf.keras.utils.set_random_seed(config.seed)

  train_ds, val_ds = datasets(config, worker, workers)
  # Training time spent (for --time_budget_minutes; the schedule runs over it).
  budget = config.time_budget_minutes * 60.
  with _scope(strategy), _precision(config.precision):
    elapsed = tf.Variable(0., trainable=False, dtype=tf.float64, name="elapsed_seconds")
    model = _compiled_model(config, model_fn, elapsed if budget else None, config.init_from)
    epoch = tf.Variable(0, trainable=False, dtype=tf.int64, name="epoch")
  checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, epoch=epoch,
                                   elapsed_seconds=elapsed)
  manager = tf.train.CheckpointManager(checkpoint, out.checkpoint_dir, max_to_keep=3)
  latest = tf.train.latest_checkpoint(run.checkpoint_dir)  # every worker resumes the chief's
  if latest:
    keys = [name for name, _ in tf.train.list_variables(latest)]
    for hook in model.objective.hooks:
      note = hook.before_restore(keys)
      if note and chief:
        print(f"note: {note}", flush=True)
    checkpoint.restore(latest).assert_existing_objects_matched()
    print(f"Resuming from {latest} (epoch {int(epoch.numpy())} of "
          f"{config.epochs})", flush=True)
  else:
    # Every worker must calibrate alike: on the (unsharded) validation batch when several.
    model.calibrate(next(iter(train_ds if workers == 1 else val_ds)))
  initial_epoch = int(epoch.numpy())
  for hook in model.objective.hooks:
    hook.set_validation_data(val_ds)

  log_dir = run.log_dir
  callbacks = [
      tf.keras.callbacks.TerminateOnNaN(),
      ObjectiveEpochCallback(),
      Throughput(),
      EpochCheckpoint(manager, epoch),
  ]
  if chief:  # logs: the chief's alone
    callbacks += [
        tf.keras.callbacks.CSVLogger(run.history_path, append=True),
        tf.keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch",
                                       write_graph=False, profile_batch=0)]
    if config.image_summaries:
      callbacks.append(ReconstructionImages(log_dir, next(iter(val_ds))[:2]))
  time_budget = TimeBudget(budget, elapsed) if budget else None
  if time_budget:
    callbacks.insert(0, time_budget)  # before EpochCheckpoint sees the epoch's end
  verbose = config.verbose if config.verbose >= 0 else (1 if sys.stdout.isatty() else 2)
  start = time.time()
  history = {}
  # The energy of this run's training (the chief measures the machine; resumed runs each
  # record their own, as train_seconds_this_run).
  energy = EnergyMeter(config.carbon_country, enabled=chief and config.energy != "off")
  with energy:
    if initial_epoch < config.epochs and not (budget and elapsed.numpy() >= budget):
      history = model.fit(train_ds, epochs=config.epochs,
                          steps_per_epoch=config.steps_per_epoch, initial_epoch=initial_epoch,
                          validation_data=val_ds, callbacks=callbacks, verbose=verbose).history
      stopped_early = model.stop_training and not (time_budget and time_budget.exhausted)
      if stopped_early or any(not np.isfinite(v) for v in history.get("loss", [0.])):
        raise TfcaeError("training diverged (NaN/Inf loss); the last good checkpoint is kept "
                         f"in {manager.directory}")
  train_seconds = time.time() - start

  if config.precision != "float32":
    model = _float32_copy(config, model_fn, strategy, manager.latest_checkpoint)
  # Validation with the real quantizer and the coding tables (not the noisy proxy).
  model.prepare_for_compression()
  validation = model.evaluate(val_ds, verbose=0, return_dict=True)
  summary = {
      "architecture": model.get_config(),
      "objective": model.objective.get_config(),
      "fingerprint": model.fingerprint.numpy().hex(),
      "epochs_completed": int(epoch.numpy()),
      "train": _final_training_logs(out.path, history),
      "validation": {k: float(v) for k, v in validation.items()},
      "train_seconds_this_run": round(train_seconds, 1),
      "train_seconds": round(float(elapsed.numpy()), 1),  # all runs, batches only
      "energy_this_run": energy.summary(),
      "steps": int(model.optimizer.iterations.numpy()),
      "settings": config.to_dict(),
      "tensorflow": tf.__version__,
  }
  # Any term or hook may report state at the end (e.g. D-CO: target met, final λ).
  for item in model.objective.terms + model.objective.hooks:
    if hasattr(item, "summary"):
      state = summary.setdefault("objective_state", {})[item.name] = item.summary(validation)
      for warning in state.get("warnings", []) if chief else []:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
  objective = {"lmbda": config.lmbda, "distortion": config.distortion}
  if config.lmbda_max:  # a variable-rate model: λ of quality 1 and of quality K
    objective["lmbda_max"] = config.lmbda_max
  export.export_model(model, out.path, {"summary": SUMMARY_FILE, "objective": objective})
  if workers > 1:  # equal on every worker iff the weights and tables are (tests compare)
    print(f"worker {worker} of {workers}: fingerprint {summary['fingerprint']}", flush=True)
  if chief:
    run.write_summary(summary)
  return summary


def _final_training_logs(model_dir, history):
  """Last epoch's training logs, from this run or, after a no-op resume, history.csv."""
  if history:
    return {k: float(v[-1]) for k, v in history.items() if not k.startswith("val_")}
  run = RunDir(model_dir)
  if not os.path.exists(run.history_path):
    return {}
  rows = run.read_history()
  if not rows:
    return {}
  return {k: float(v) for k, v in rows[-1].items()
          if not k.startswith("val_") and v not in ("", None) and _is_number(v)}


def _is_number(text):
  try:
    float(text)
    return True
  except ValueError:
    return False
