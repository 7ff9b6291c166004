"""The magnitude-pruning baseline for sparse encoders, with TF-MOT.

Zhu & Gupta ("To prune, or not to prune", 2017) as TF-MOT implements it: the encoder's
convolutions are wrapped by `tfmot.sparsity.keras.prune_low_magnitude`; during a short
fine-tuning with the codec's own objective (R + λD, the model's generic train_step) the
smallest-magnitude kernel weights are masked, the sparsity rising along a polynomial
schedule to the target S; `strip_pruning` then leaves plain layers with zero weights.
GDNs go through the same wrapper (tfcae.nn.layers.GDN is a `PrunableLayer`) but have no
prunable weights, so S counts the convolution kernels, as for the ℓ1,1 projections.

Magnitude pruning zeroes single weights, unstructured: it rarely empties a whole filter,
so the encoder cannot be reduced physically (tfcae.deploy.reduction finds no dead channel) and
XNNPACK, which skips no zeros of strided convolutions, runs it at dense speed.
"""
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from tfcae.data import images as data
from tfcae.io.fileio import atomic_write_json
from tfcae.models import build_model
from tfcae.nn.layers import GDN
from tfcae.objectives.terms import rate_distortion
from tfcae.serving.export import export_model
from tfcae.serving.exported import assign_matching
from tfcae.training.export import load_trained
from tfcae.training.rundir import RunDir

__all__ = ["PruneLowMagnitude", "wrap_encoder", "strip", "kernel_sparsity", "restore",
           "magnitude_prune", "dense_filter_count"]

PruneLowMagnitude = tfmot.sparsity.keras.prune_low_magnitude


class _PruningEncoder(tf.keras.Sequential):
  """The wrapped encoder. The model's forward() calls the analysis transform without a
  `training` argument, and TF-MOT only updates masks in training mode, so this Sequential
  runs its layers in training mode while `update_masks` is set (during fit)."""

  update_masks = False

  def call(self, inputs, training=None, mask=None):
    # Explicitly per layer: Sequential's graph path takes `training` from the call
    # context, not from this argument.
    training = True if self.update_masks else training
    for layer in self.layers:
      inputs = layer(inputs, training=training)
    return inputs


def wrap_encoder(model, sparsity, begin_step, end_step, frequency=50):
  """Replaces `model.analysis_transform` by its prune_low_magnitude-wrapped layers."""
  schedule = tfmot.sparsity.keras.PolynomialDecay(
      initial_sparsity=0., final_sparsity=float(sparsity), begin_step=int(begin_step),
      end_step=int(end_step), frequency=int(frequency))
  wrapped = []
  for layer in model.analysis_transform.layers:
    if isinstance(layer, (tf.keras.layers.Conv2D, GDN)):
      layer = PruneLowMagnitude(layer, pruning_schedule=schedule)
    wrapped.append(layer)
  encoder = _PruningEncoder(wrapped, name="analysis")
  encoder.build((None, None, None, 3))
  model.analysis_transform = encoder
  return encoder


def strip(encoder):
  """strip_pruning: the plain layers (masked kernels) as a Sequential named "analysis"."""
  stripped = tfmot.sparsity.keras.strip_pruning(encoder)
  plain = tf.keras.Sequential(list(stripped.layers), name="analysis")
  plain.build((None, None, None, 3))
  return plain


def kernel_sparsity(encoder):
  """Fraction of zero weights over the encoder's convolution kernels."""
  kernels = [layer.kernel.numpy() for layer in encoder.layers
             if isinstance(layer, tf.keras.layers.Conv2D)]
  return float(sum((k == 0).sum() for k in kernels) / sum(k.size for k in kernels))


def _copy(source, target):
  for s, t in zip(source.variables, target.variables):
    if s.shape != t.shape:
      raise ValueError(f"cannot copy {s.name} {s.shape} into {t.name} {t.shape}")
    t.assign(s)


def restore(model_dir):
  """The trained model of `model_dir` (latest checkpoint) and its TrainConfig."""
  model = load_trained(model_dir, for_compression=False)
  return model, RunDir(model_dir).read_config()


def magnitude_prune(model_dir, out_dir, sparsity, steps, train_images, patch_size=128,
                    batch_size=8, learning_rate=1e-4, lmbda=None, seed=0, verbose=2):
  """Prunes a trained model's encoder to kernel sparsity S with fine-tuning; saves a
  model_dir (checkpoint + SavedModel) the other tools use. Returns a summary dict.

  The schedule reaches S at 2/3 of the steps; the last third fine-tunes at constant S.
  steps=0 prunes one-shot (masks computed once from the trained weights, no training).
  """
  model, config = restore(model_dir)
  lmbda = config.lmbda if lmbda is None else lmbda
  model.objective = rate_distortion(lmbda)
  encoder = wrap_encoder(model, sparsity, begin_step=0, end_step=max(1, 2 * steps // 3),
                         frequency=max(1, min(50, steps // 20)))
  model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate, global_clipnorm=1.))
  history = {}
  if steps > 0:
    files = data.image_files(train_images, "training images")
    dataset = data.train_dataset(files, patch_size, batch_size, seed)
    encoder.update_masks = True
    history = model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=verbose,
                        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()]).history
    encoder.update_masks = False
  else:  # one-shot: the schedule's final sparsity at its last step, masks applied once
    for layer in _pruning_wrappers(encoder):
      layer.pruning_step.assign(max(1, 2 * steps // 3))
      layer.pruning_obj.conditional_mask_update()
      layer.pruning_obj.weight_mask_op()
  stripped = strip(encoder)

  # A fresh model of the same architecture (the checkpoint structure every tool restores):
  # the pruned encoder, and every other weight of the fine-tuned model, matched by name.
  pruned = build_model(model.get_config())
  for source, target in zip(stripped.layers, pruned.analysis_transform.layers):
    _copy(source, target)
  others = lambda m, encoder: [v for v in m.weight_variables()
                               if id(v) not in {id(e) for e in encoder.variables}]
  assign_matching(others(pruned, pruned.analysis_transform), others(model, encoder), model_dir)
  pruned.prepare_for_compression()
  out = RunDir(out_dir).create()
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=pruned), out.checkpoint_dir,
                                       max_to_keep=1)
  manager.save(checkpoint_number=1)
  summary = {"source": model_dir, "method": "tfmot prune_low_magnitude (PolynomialDecay)",
             "target_sparsity": float(sparsity), "fine_tune_steps": int(steps),
             "kernel_sparsity": kernel_sparsity(pruned.analysis_transform), "lmbda": lmbda,
             "learning_rate": learning_rate,
             "final_loss": float(history["loss"][-1]) if history else None}
  export_model(pruned, out_dir, {"pruning": summary})
  out.write_config(dict(config.to_dict(), model_dir=out_dir))
  atomic_write_json(out.join("pruning.json"), summary)
  return summary


def dense_filter_count(encoder):
  """Per conv layer: (filters with a non-zero kernel, filters)."""
  counts = {}
  for layer in encoder.layers:
    if isinstance(layer, tf.keras.layers.Conv2D):
      kernel = layer.kernel.numpy()
      alive = np.any(kernel.reshape(-1, kernel.shape[-1]) != 0, axis=0)
      counts[layer.name] = (int(alive.sum()), int(kernel.shape[-1]))
  return counts


def _pruning_wrappers(encoder):
  from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper
  return pruning_wrapper.collect_prunable_layers(encoder)
