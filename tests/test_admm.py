"""ADMM pruning of the latent code (CAE-P, tfcae/methods/admm.py): the projection, the Z/U
updates, the penalty, and that the ADMM state is checkpointed and restored on resume."""
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from tfcae.methods import admm
from tfcae.objectives.terms import StepContext


def _expected_mask(x, k):
  """The k largest |x|, ties broken by the lower flat index (reference implementation)."""
  flat = np.abs(x.reshape(-1))
  order = sorted(range(flat.size), key=lambda i: (-flat[i], i))
  mask = np.zeros(flat.size)
  mask[order[:k]] = 1.
  return mask.reshape(x.shape)


@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (2, 2, 2, 3)])
def test_project_cardinality_keeps_exactly_k_largest(shape, rng):
  x = rng.normal(size=shape).astype(np.float32)
  n = x.size
  for k in sorted({0, 1, n // 3, n - 1, n}):
    mask = admm.cardinality_mask(x, k).numpy()
    assert mask.sum() == k
    np.testing.assert_array_equal(mask, _expected_mask(x, k))
    z = admm.project_cardinality(x, k).numpy()
    np.testing.assert_array_equal(z, x * mask)
    if 0 < k < n:  # every kept magnitude ≥ every dropped one
      assert np.abs(x[mask == 1]).min() >= np.abs(x[mask == 0]).max()
  np.testing.assert_array_equal(admm.project_cardinality(x, 0).numpy(), np.zeros(shape))
  np.testing.assert_array_equal(admm.project_cardinality(x, n).numpy(), x)


def test_project_cardinality_ties_and_integers_are_deterministic():
  # Quantized codes are full of ties; exactly k are kept, the lower indices first.
  x = np.array([1., -2., 2., 0., -1., 2., 1.], np.float32)
  np.testing.assert_array_equal(admm.project_cardinality(x, 2).numpy(),
                                [0., -2., 2., 0., 0., 0., 0.])
  np.testing.assert_array_equal(admm.project_cardinality(x, 4).numpy(),
                                [1., -2., 2., 0., 0., 2., 0.])
  zeros = np.zeros(6, np.float32)
  assert admm.cardinality_mask(zeros, 3).numpy().tolist() == [1., 1., 1., 0., 0., 0.]


def test_project_cardinality_per_example_and_bad_k(rng):
  x = rng.normal(size=(3, 4, 4, 2)).astype(np.float32)
  mask = admm.cardinality_mask(x, 5, per_example=True).numpy()
  for b in range(3):
    np.testing.assert_array_equal(mask[b], _expected_mask(x[b], 5))
  with pytest.raises(tf.errors.InvalidArgumentError):
    admm.project_cardinality(x, x.size + 1)
  with pytest.raises(tf.errors.InvalidArgumentError):
    admm.project_cardinality(x, -1)


def test_keep_count():
  assert admm.keep_count(0.1, 8192) == 819
  assert admm.keep_count(0., 10) == 0 and admm.keep_count(1., 10) == 10


class _FakeModel:
  pass


def _ctx(y):
  y = tf.constant(y, tf.float32)
  return StepContext(_FakeModel(), tf.zeros([y.shape[0], 8, 8, 3]),
                     {"y": y, "y_hat": tf.round(y), "x_hat": tf.zeros([y.shape[0], 8, 8, 3]),
                      "bits": tf.zeros([y.shape[0]])}, training=True)


def test_admm_steps_follow_the_paper(rng):
  shape = (2, 2, 3)
  term, hook = admm.admm_objective_parts(shape, keep_ratio=0.25, period=2, rho=0.5)
  state = hook.state
  assert term.state is state and state.k == 3
  y1 = rng.normal(size=(4,) + shape).astype(np.float32) * 3
  ctx = _ctx(y1)
  # Before the first Z exists the penalty is off.
  assert float(term.value(ctx)) == 0.
  logs = hook.after_apply(None, ctx)
  assert float(logs["admm_zero_frac"]) == pytest.approx(np.mean(np.round(y1) == 0))
  np.testing.assert_allclose(float(logs["admm_y_minus_z"]),
                             np.mean(np.sqrt((y1 ** 2).sum(axis=(1, 2, 3)))), rtol=1e-5)
  hook.on_epoch_end(None, 0, {})  # not a period boundary: nothing happens
  assert int(state.updates.numpy()) == 0 and float(state.count.numpy()) == 4.
  hook.on_epoch_end(None, 1, {})
  mean1 = y1.mean(axis=0)
  z1 = mean1 * _expected_mask(mean1, 3)
  np.testing.assert_allclose(state.z.numpy(), z1, rtol=1e-6)
  np.testing.assert_array_equal(state.u.numpy(), np.zeros(shape))
  assert float(state.count.numpy()) == 0. and not state.y_sum.numpy().any()
  # Step (1): ρ/2·mean((E(x) − Z + U)²), weighted by ρ in the objective.
  contribution, logs = term(ctx)
  expected = 0.5 * np.mean((y1 - z1) ** 2)
  np.testing.assert_allclose(float(logs["admm"]), expected, rtol=1e-5)
  np.testing.assert_allclose(float(contribution), 0.5 * expected, rtol=1e-5)
  # Steps (2)-(3) on the next period's mean code.
  y2 = rng.normal(size=(2,) + shape).astype(np.float32)
  hook.after_apply(None, _ctx(y2))
  hook.on_epoch_end(None, 3, {})
  mean2 = y2.mean(axis=0)
  z2 = (mean2 + 0.) * _expected_mask(mean2, 3)  # U was 0
  np.testing.assert_allclose(state.z.numpy(), z2, rtol=1e-6)
  np.testing.assert_allclose(state.u.numpy(), mean2 - z2, rtol=1e-6, atol=1e-7)
  assert int(state.updates.numpy()) == 2


def test_image_scope_projects_each_code():
  term, hook = admm.admm_objective_parts((1, 1, 4), keep_ratio=0.5, period=1, rho=1.,
                                         scope="image")
  y = np.array([[[[3., -1., 0.5, 2.]]], [[[0., 0., -4., 1.]]]], np.float32)
  # Distance to each code's own projection: the dropped entries.
  expected = 0.5 * np.mean(np.array([[0, -1, .5, 0], [0, 0, 0, 0]]) ** 2)
  np.testing.assert_allclose(float(term.value(_ctx(y))), expected, rtol=1e-6)
  hook.on_epoch_end(None, 0, {})  # no state, no update
  with pytest.raises(ValueError, match="scope"):
    admm.ADMMState((1, 1, 1), 0.1, scope="batch")
  with pytest.raises(ValueError, match="keep ratio"):
    admm.ADMMState((1, 1, 1), 1.5)
  with pytest.raises(ValueError, match="period"):
    admm.ADMMUpdate(admm.ADMMState((1, 1, 1), 0.1), 0)


@pytest.mark.slow
def test_admm_state_survives_checkpoint_and_resume(tmp_path):
  """Train 1 epoch (first update: Z⁰, U = 0), then resume for a 2nd: the restored state
  takes the steps (2)-(3) branch (U ≠ 0, 2 updates), which a fresh state never would."""
  from tfcae.training import loop as training
  config = tiny_config(tmp_path / "m", architecture="caep", caep_blocks=1, latent_channels=4,
                       steps_per_epoch=4, epochs=1, admm_keep_ratio=0.1, admm_period=1,
                       admm_rho=0.1)
  training.train(config)

  def state(number):
    reader = tf.train.load_checkpoint(os.path.join(str(tmp_path / "m"), "checkpoints",
                                                   f"ckpt-{number}"))
    found = {}
    for key in reader.get_variable_to_shape_map():
      for attr, name in (("z", "Z"), ("u", "U"), ("updates", "updates"),
                         ("active", "active")):
        if key.endswith(f"state/{attr}/.ATTRIBUTES/VARIABLE_VALUE"):
          found[name] = reader.get_tensor(key)
    assert set(found) == {"Z", "U", "updates", "active"}, sorted(
        reader.get_variable_to_shape_map())
    return found

  first = state(1)
  assert first["updates"] == 1 and first["active"] == 1.
  assert np.count_nonzero(first["Z"]) <= admm.keep_count(0.1, first["Z"].size)
  assert np.count_nonzero(first["Z"]) > 0 and not first["U"].any()
  config.epochs = 2
  summary = training.train(config)
  second = state(2)
  assert second["updates"] == 2 and second["U"].any()
  assert np.count_nonzero(second["Z"]) <= admm.keep_count(0.1, second["Z"].size)
  assert {"admm", "admm_zero_frac", "admm_y_minus_z"} <= set(summary["train"])
  hooks = summary["objective"]["hooks"]
  assert any(h["class"] == "ADMMUpdate" and h["keep_ratio"] == 0.1 for h in hooks)
