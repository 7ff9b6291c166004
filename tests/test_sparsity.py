"""Double descent (Gille et al., Algorithm 2) as a training hook: masks, rewind, resume."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from tfcae.methods.double_descent import DoubleDescent
from tfcae.models import build_model
from tfcae.objectives.terms import Objective, ObjectiveEpochCallback, Rate, Distortion
from tfcae.training import loop as training

ARCH = {"architecture": "factorized", "num_filters": 8, "latent_channels": 8}


def _images(n=4, size=64, seed=0):
  rng = np.random.default_rng(seed)
  # Smooth random images (a photo-like spectrum is not needed for the mechanics).
  base = rng.uniform(0, 255, (n, size // 8, size // 8, 3)).astype(np.float32)
  return tf.image.resize(base, [size, size]).numpy()


def _model(hook):
  model = build_model(ARCH, objective=Objective([Rate(), Distortion(0.01)], [hook]))
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
  model.optimizer.build(model.trainable_variables)
  return model


def _fit(model, epochs, initial_epoch=0, steps=5):
  ds = tf.data.Dataset.from_tensor_slices(_images()).batch(2).repeat()
  model.fit(ds, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps, verbose=0,
            callbacks=[ObjectiveEpochCallback()])


def test_rejects_bad_settings():
  with pytest.raises(ValueError, match="constraint"):
    DoubleDescent("l2")
  with pytest.raises(ValueError, match="project_every"):
    DoubleDescent(project_every="sometimes")
  with pytest.raises(ValueError, match="radius"):
    DoubleDescent(radius=-1.)
  with pytest.raises(ValueError, match="groups"):
    DoubleDescent(groups="rows")
  with pytest.raises(ValueError, match="no encoder layer"):
    _model(DoubleDescent(layers=["conv_9"]))


# ℓ1,∞ over kernel positions needs a much smaller relative radius to zero anything: a
# position's max |w| over 8 filters is large next to the ℓ1,∞ norm's average.
@pytest.mark.parametrize("constraint,groups,radius", [
    ("l11", "output_filters", 0.3),
    pytest.param("l1inf", "kernel_positions", 0.02, marks=pytest.mark.slow),
    pytest.param("l1", "output_filters", 0.3, marks=pytest.mark.slow)])
def test_double_descent_masks_rewinds_and_keeps_zeros(constraint, groups, radius):
  tf.keras.utils.set_random_seed(0)
  hook = DoubleDescent(constraint, groups, radius=radius, first_descent_epochs=1)
  model = _model(hook)
  initial = [v.numpy() for v in model.trainable_variables]
  layers = [l for l in model.encoder_layers() if getattr(l, "kernel", None) is not None]

  # First descent: projected after every step, so the kernels are on (inside) their balls.
  _fit(model, epochs=1)
  assert int(hook.phase.numpy()) == 2  # the switch ran at the end of epoch 1
  masks = [m.numpy() for m in hook.kernel_masks]
  assert all(m.min() == 0. for m in masks), "the projection zeroed nothing"
  # Rewind: right after the switch every weight is its initial value times the mask.
  masked_ids = {id(l.kernel): m for l, m in zip(layers, masks)}
  for v, v0 in zip(model.trainable_variables, initial):
    expected = v0 * masked_ids[id(v)] if id(v) in masked_ids else v0
    if id(v) in {id(l.bias) for l in layers}:
      continue  # biases: checked below
    np.testing.assert_array_equal(v.numpy(), expected)
  assert all(int(v.numpy()) == 0 for v in model.optimizer.variables if v.dtype == tf.int64)

  # Second descent: pruned weights stay exactly zero (masked gradients + re-applied mask,
  # although Adam's momentum would otherwise move them), the others train.
  _fit(model, epochs=3, initial_epoch=1)
  for layer, mask, bias_mask in zip(layers, masks, hook.bias_masks):
    kernel = layer.kernel.numpy()
    assert np.all(kernel[mask == 0] == 0)
    dead = np.all(mask == 0, axis=(0, 1, 2))
    assert np.all(layer.bias.numpy()[dead] == 0)
    np.testing.assert_array_equal(bias_mask.numpy(), (~dead).astype(np.float32))
  first_kernel = layers[0].kernel.numpy()
  assert not np.array_equal(first_kernel, initial[0] * masks[0]), "second descent did not train"
  if constraint == "l1inf":
    # ℓ1,∞ over kernel positions zeroes whole positions (rows), nothing else.
    for mask in masks:
      rows = mask.reshape(-1, mask.shape[-1])
      assert set(rows.min(axis=1)) <= {0., 1.} and np.all(rows.min(1) == rows.max(1))


def test_radius_fixed_once_from_initial_norm():
  tf.keras.utils.set_random_seed(0)
  hook = DoubleDescent("l11", "output_filters", radius=0.5, first_descent_epochs=1)
  model = _model(hook)
  kernel = model.encoder_layers()[1].kernel  # conv_0 (after the rescaling layer)
  expected = 0.5 * np.abs(kernel.numpy()).sum()
  np.testing.assert_allclose(hook.radii.numpy()[0], expected, rtol=1e-6)
  _fit(model, epochs=1, steps=2)
  np.testing.assert_allclose(hook.radii.numpy()[0], expected, rtol=1e-6)


@pytest.mark.slow
def test_train_resumes_in_second_descent(tmp_path):
  """bin/train's path: the phase, masks and initial weights survive checkpoint/resume."""
  config = tiny_config(tmp_path, steps_per_epoch=5, epochs=2, sparsity_constraint="l11",
                       sparsity_radius=0.1, first_descent_epochs=1)
  training.train(config)
  restored = build_model(ARCH, objective=training.build_objective(config))
  restored.compile(optimizer=tf.keras.optimizers.Adam())
  restored.optimizer.build(restored.trainable_variables)
  ckpt = tf.train.Checkpoint(model=restored, optimizer=restored.optimizer,
                             epoch=tf.Variable(0, dtype=tf.int64))
  ckpt.restore(tf.train.latest_checkpoint(tmp_path / "checkpoints")).expect_partial()
  hook = restored.objective.hooks[0]
  assert int(hook.phase.numpy()) == 2
  masks = [m.numpy() for m in hook.kernel_masks]
  zeros_before = sum(int((m == 0).sum()) for m in masks)
  assert zeros_before > 0

  # Resume for one more epoch: the restored masks hold.
  config.epochs = 3
  summary = training.train(config)
  assert summary["epochs_completed"] == 3
  assert summary["train"]["phase"] == 2.
  again = build_model(ARCH, objective=training.build_objective(config))
  again.compile(optimizer=tf.keras.optimizers.Adam())
  tf.train.Checkpoint(model=again).restore(
      tf.train.latest_checkpoint(tmp_path / "checkpoints")).expect_partial()
  hook2 = again.objective.hooks[0]
  for m_before, m_after, layer in zip(masks, hook2.kernel_masks,
                                      [l for l in again.encoder_layers() if hasattr(l, "kernel")]):
    np.testing.assert_array_equal(m_before, m_after.numpy())
    assert np.all(layer.kernel.numpy()[m_before == 0] == 0)
  with open(tmp_path / "summary.json", encoding="utf-8") as f:
    assert json.load(f)["objective"]["hooks"][0]["constraint"] == "l11"


@pytest.mark.slow
def test_init_from_loads_trained_weights(tmp_path, factorized_dir):
  config = tiny_config(tmp_path / "warm", steps_per_epoch=1, epochs=1, learning_rate=1e-9,
                       init_from=factorized_dir)
  training.train(config)
  source = build_model(ARCH)
  tf.train.Checkpoint(model=source).restore(
      tf.train.latest_checkpoint(os.path.join(factorized_dir, "checkpoints"))).expect_partial()
  warm = build_model(ARCH)
  tf.train.Checkpoint(model=warm).restore(
      tf.train.latest_checkpoint(tmp_path / "warm" / "checkpoints")).expect_partial()
  # One step at lr 1e-9 barely moves a weight: the run started from the trained ones.
  np.testing.assert_allclose(warm.analysis_transform.layers[1].kernel.numpy(),
                             source.analysis_transform.layers[1].kernel.numpy(), atol=1e-6)


@pytest.mark.slow
def test_init_from_refuses_other_architecture(tmp_path, factorized_dir):
  config = tiny_config(tmp_path / "warm", num_filters=16, init_from=factorized_dir)
  with pytest.raises(Exception, match="different architecture"):
    training.train(config)
