"""D-CO (van Rozendaal et al.): the Lagrange multiplier, its dual ascent, the hinge term,
checkpoint/resume, tf.distribute, the summary and the λ-trajectory plot."""
import json

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO, TWO_REPLICA_PRELUDE, run_script, run_tool, tiny_config
from tfcae.methods import dco
from tfcae.training import loop as training


class FakeContext:
  """Just what the D-CO/R-CO terms and hook read from a StepContext."""

  def __init__(self, distortion, bpp=None):
    self.value = distortion
    self.bpp = bpp

  def distortion(self, metric):
    return self.value


def reference_trajectory(constraints, lr, momentum, dampening, init, max_value):
  """torch.optim.SGD(momentum, dampening) on −(D/c − 1), written in NumPy float32."""
  mu, buf, out = np.float32(np.log(init)), None, []
  for g in constraints:
    g = np.float32(g)
    buf = g if buf is None else np.float32(momentum * buf + (1 - dampening) * g)
    mu = np.float32(min(mu + np.float32(lr) * buf, np.float32(np.log(max_value))))
    out.append(mu)
  return np.asarray(out)


def test_update_is_sgd_with_momentum_and_dampening():
  m = dco.LagrangeMultiplier(learning_rate=0.1, momentum=0.9, dampening=0.5,
                             max_value=50., initial_value=2.)
  constraints = [0.5, -0.2, 3.0, 3.0, -1.0, -1.0, 0.0, 2.0]
  mus = []
  for g in constraints:
    m.update(g)
    mus.append(float(m.mu.numpy()))
  expected = reference_trajectory(constraints, 0.1, 0.9, 0.5, 2., 50.)
  np.testing.assert_allclose(mus, expected, rtol=1e-6)
  assert int(m.steps.numpy()) == len(constraints)
  # The first step takes the gradient itself as the buffer (torch's rule), not (1 − d)·g.
  first = dco.LagrangeMultiplier(learning_rate=0.1, dampening=0.99, initial_value=1.)
  first.update(1.0)
  assert float(first.mu.numpy()) == pytest.approx(0.1, rel=1e-6)


def test_dual_ascent_converges_to_the_constrained_optimum():
  """min (θ − 3)² s.t. θ² + 1 ≤ 2: θ* = 1; stationarity 2(θ − 3) + λ·θ = 0 gives λ* = 4."""
  multiplier = dco.LagrangeMultiplier(learning_rate=5e-2)  # paper's momentum, clip, λ0
  term = dco.ConstrainedDistortion(multiplier, target=2.)
  hook = dco.DualAscent(multiplier, target=2.)
  theta = tf.Variable(0.)
  optimizer = tf.keras.optimizers.Adam(0.01)
  optimizer.build([theta])

  @tf.function
  def train(steps):
    for _ in tf.range(steps):
      with tf.GradientTape() as tape:
        penalty, _ = term(FakeContext(theta ** 2 + 1.))
        loss = (theta - 3.) ** 2 + penalty
      optimizer.apply_gradients([(tape.gradient(loss, theta), theta)])
      hook.after_apply(None, FakeContext(theta ** 2 + 1.))

  train(tf.constant(2500))
  assert float(theta.numpy()) == pytest.approx(1., abs=0.01)
  assert float(multiplier.lmbda.numpy()) == pytest.approx(4., rel=0.02)


def test_lambda_is_a_constant_in_the_models_gradient():
  multiplier = dco.LagrangeMultiplier(initial_value=3.)
  term = dco.ConstrainedDistortion(multiplier, target=10.)
  d = tf.Variable(20.)
  with tf.GradientTape() as tape:
    value, logs = term(FakeContext(d * 1.))
  assert float(value.numpy()) == pytest.approx(3. * (20. / 10. - 1.))
  assert float(tape.gradient(value, d).numpy()) == pytest.approx(3. / 10.)
  assert set(logs) == {"dco", "mse", "constraint", "lambda"}
  assert not multiplier.trainable_variables


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 1e30), st.sampled_from([0., np.nan, np.inf, -np.inf])),
                min_size=1, max_size=30),
       st.floats(1e-3, 1e3))
def test_lambda_stays_in_zero_to_clip_and_finite(distortions, target):
  m = dco.LagrangeMultiplier(learning_rate=0.5, initial_value=1., max_value=100.)
  for d in distortions:
    before = (float(m.mu.numpy()), float(m.momentum_buffer.numpy()), int(m.steps.numpy()))
    lmbda = float(m.update(np.float32(d) / np.float32(target) - 1.).numpy())
    assert np.isfinite(lmbda) and 0. <= lmbda <= 100.
    assert np.isfinite(m.mu.numpy()) and np.isfinite(m.momentum_buffer.numpy())
    if not np.isfinite(np.float32(d) / np.float32(target)):
      # A NaN/Inf distortion leaves the multiplier exactly as it was.
      assert before == (float(m.mu.numpy()), float(m.momentum_buffer.numpy()),
                        int(m.steps.numpy()))


def test_zero_distortion_lowers_lambda_without_nan_and_clip_holds():
  m = dco.LagrangeMultiplier(learning_rate=0.1, initial_value=1e3, max_value=1e3)
  for _ in range(50):
    m.update(1e6)  # far above target: pushes against the clip
  assert float(m.lmbda.numpy()) == pytest.approx(1e3) and m.at_clip()
  m2 = dco.LagrangeMultiplier(learning_rate=0.1, initial_value=1.)
  values = [float(m2.update(0. / 5. - 1.).numpy()) for _ in range(200)]  # D = 0
  assert all(np.isfinite(values)) and min(values) >= 0. and values[-1] < values[0]


def test_target_of_zero_is_refused():
  for bad in (0., -1., float("nan")):
    with pytest.raises(ValueError, match="target c_D must be a finite number > 0"):
      dco.dco_objective_parts(bad)
    with pytest.raises(ValueError, match="target c_D must be a finite number > 0"):
      dco.Hinge(10., bad)
  with pytest.raises(ValueError, match="must be < 1"):
    dco.dco_objective_parts(1.5, metric="ms-ssim")
  with pytest.raises(ValueError, match="initial λ"):
    dco.LagrangeMultiplier(initial_value=2e3, max_value=1e3)
  config = tiny_config("/tmp/unused", objective="dco", target_distortion=0.)
  with pytest.raises(ValueError, match="needs --target_distortion > 0"):
    config.validate()


def test_train_cli_refuses_a_zero_target(tmp_path):
  r = run_tool("train", f"--model_dir={tmp_path}", f"--train_images={REPO}/data/sample/train",
               "--objective=dco", "--target_distortion=0")
  assert r.returncode == 1 and "--target_distortion > 0" in r.stderr
  assert "Traceback" not in r.stderr


def test_hinge_penalises_only_violations():
  hinge = dco.Hinge(10., target=100.)
  d = tf.Variable(80.)
  with tf.GradientTape() as tape:
    value, logs = hinge(FakeContext(d * 1.))
  assert float(value.numpy()) == 0. and float(tape.gradient(value, d) or 0.) == 0.
  assert float(logs["constraint"].numpy()) == pytest.approx(-0.2)
  value, _ = hinge(FakeContext(tf.constant(150.)))
  assert float(value.numpy()) == pytest.approx(10. * 0.5)


def test_multiplier_state_survives_checkpoint_and_resume_exactly(tmp_path):
  constraints = np.random.default_rng(0).normal(size=12).astype(np.float32)
  straight = dco.LagrangeMultiplier(learning_rate=0.05)
  for g in constraints:
    straight.update(g)
  first = dco.LagrangeMultiplier(learning_rate=0.05)
  for g in constraints[:5]:
    first.update(g)
  path = tf.train.Checkpoint(multiplier=first).save(str(tmp_path / "ckpt"))
  resumed = dco.LagrangeMultiplier(learning_rate=0.05)
  tf.train.Checkpoint(multiplier=resumed).restore(path).assert_consumed()
  for g in constraints[5:]:
    resumed.update(g)
  for a, b in [(straight.mu, resumed.mu), (straight.momentum_buffer, resumed.momentum_buffer),
               (straight.steps, resumed.steps)]:
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_build_objective_maps_the_flags():
  from tfcae.objectives.terms import Distortion, Rate
  beta = training.build_objective(tiny_config("/tmp/unused", objective="beta", lmbda=0.02))
  assert [type(t) for t in beta.terms] == [Rate, Distortion] and not beta.hooks
  hinge = training.build_objective(tiny_config("/tmp/unused", objective="hinge",
                                               target_distortion=50., hinge_lambda=7.))
  assert type(hinge.terms[1]) is dco.Hinge and hinge.terms[1].weight == 7.
  objective = training.build_objective(tiny_config(
      "/tmp/unused", objective="dco", target_distortion=50., multiplier_rule="paper",
      multiplier_lr=0.1, multiplier_init=20., multiplier_max=30.))
  term, hook = objective.terms[1], objective.hooks[0]
  assert type(term) is dco.ConstrainedDistortion and type(hook) is dco.DualAscent
  assert term.multiplier is hook.multiplier and term.target == hook.target == 50.
  assert float(term.multiplier.lmbda.numpy()) == pytest.approx(20.)
  assert term.multiplier.get_config()["learning_rate"] == 0.1


@pytest.mark.slow
def test_train_logs_lambda_and_warns_at_the_clip(tmp_path, capsys):
  """An unachievable target: λ stays at its clip, summary.json and a warning say so."""
  from tfcae.evaluation import plotting
  model_dir = tmp_path / "run"
  summary = training.train(tiny_config(model_dir, objective="dco", target_distortion=1e-3,
                                       multiplier_rule="paper", multiplier_signal="train",
                                       multiplier_init=100., multiplier_max=100., epochs=2,
                                       steps_per_epoch=4))
  state = summary["objective_state"]["dco"]
  assert state["lambda_at_clip"] and state["lambda"] == pytest.approx(100.)
  assert not state["target_met"] and state["multiplier_steps"] == 8
  # The validation distortion is the real quantizer's (model.evaluate after the tables).
  assert state["validation_distortion"] == pytest.approx(summary["validation"]["mse"])
  warnings = [l for l in capsys.readouterr().err.splitlines() if l.startswith("warning:")]
  assert len(warnings) == 1  # one line: what was missed, the clip, what to change
  assert "λ is at its clip 100" in warnings[0] and "--target_distortion" in warnings[0]
  with open(model_dir / "summary.json", encoding="utf-8") as f:
    assert json.load(f)["objective_state"]["dco"]["lambda_at_clip"] is True
  assert {"lambda", "constraint", "mse", "bpp"} <= set(summary["train"])
  steps, values = plotting.read_lambda_trajectory(str(model_dir))
  np.testing.assert_array_equal(steps, [0, 4, 8])
  np.testing.assert_allclose(values, 100.)
  output = tmp_path / "lambda.png"
  plotting.plot_lambda_trajectories([("unachievable", steps, values)], str(output),
                                    lambda_max=100.)
  assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(ValueError, match="history.csv"):
    plotting.read_lambda_trajectory(str(tmp_path))


@pytest.mark.slow
def test_resume_continues_the_multiplier_and_bin_plot_draws_it(tmp_path):
  """The multiplier is in the model's checkpoint: a resumed run continues its trajectory."""
  model_dir = tmp_path / "run"
  settings = dict(objective="dco", target_distortion=1e4, multiplier_rule="paper",
                  multiplier_signal="train", multiplier_init=10., multiplier_lr=0.05,
                  steps_per_epoch=5)
  first = training.train(tiny_config(model_dir, epochs=1, **settings))
  resumed = training.train(tiny_config(model_dir, epochs=2, **settings))
  assert first["objective_state"]["dco"]["multiplier_steps"] == 5
  assert resumed["objective_state"]["dco"]["multiplier_steps"] == 10
  assert resumed["objective_state"]["dco"]["lambda"] != first["objective_state"]["dco"]["lambda"]
  output = tmp_path / "lambda.png"
  r = run_tool("plot", f"--lambda_runs=c1e4={model_dir}", f"--output={output}")
  assert r.returncode == 0, r.stderr
  assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  r = run_tool("plot", f"--lambda_runs={tmp_path}", f"--output={output}")
  assert r.returncode == 1 and "history.csv" in r.stderr and "Traceback" not in r.stderr


def test_lambda_trajectory_plot_rejects_bad_values(tmp_path):
  from tfcae.evaluation import plotting
  with pytest.raises(ValueError, match="nothing to plot"):
    plotting.plot_lambda_trajectories([], str(tmp_path / "a.png"))
  with pytest.raises(ValueError, match="finite"):
    plotting.plot_lambda_trajectories([("a", [0, 1], [1., np.nan])], str(tmp_path / "a.png"))


MIRRORED = TWO_REPLICA_PRELUDE + r"""
from tfcae.methods import dco
from tfcae.objectives.terms import Objective, Rate


def run(strategy):
  with strategy.scope():
    multiplier = dco.LagrangeMultiplier(learning_rate=0.05, initial_value=10.)
    terms, hooks = [Rate(), dco.ConstrainedDistortion(multiplier, 4.)], \
        [dco.DualAscent(multiplier, 4.)]
    model = Toy(objective=Objective(terms, hooks))
    model.compile(optimizer=tf.keras.optimizers.SGD(1e-6))
  # Replica 0 gets dark images (D ≈ 0.3), replica 1 bright ones (D ≈ 9): only their mean
  # (≈ 4.7, just above c = 4) gives the single device's λ.
  lambdas = []
  record = tf.keras.callbacks.LambdaCallback(
      on_train_batch_end=lambda b, l: lambdas.append(float(multiplier.lmbda.numpy())))
  model.fit(two_replica_data(), epochs=1, steps_per_epoch=25, verbose=0,
            callbacks=[record])
  return lambdas


single = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
mirrored = run(training.make_strategy(training.TrainConfig(strategy="mirrored")))
print(json.dumps({"single": single, "mirrored": mirrored}))
"""


def test_mirrored_two_cpus_gives_the_single_device_trajectory(tmp_path):
  out = run_script(MIRRORED)
  single, mirrored = np.asarray(out["single"]), np.asarray(out["mirrored"])
  assert len(single) == len(mirrored) == 25
  assert np.ptp(single) > 0.5  # λ really moved
  np.testing.assert_allclose(mirrored, single, rtol=1e-5)


class ShiftModel:
  """forward() reconstructs x + shift, so the held-out MSE is shift²."""

  def __init__(self, shift):
    self.shift = shift

  def forward(self, x, training):
    assert not training  # the held-out signal uses the real quantizer
    return {"x_hat": x + self.shift}


def test_validation_signal_steers_on_held_out_batches_not_the_training_batch(tmp_path):
  multiplier = dco.LagrangeMultiplier(learning_rate=0.1, initial_value=1.)
  hook = dco.DualAscent(multiplier, target=100., signal="validation")
  assert hook.log_names() == ["heldout_mse"]
  with pytest.raises(RuntimeError, match="set_validation_data"):
    hook.after_apply(ShiftModel(20.), FakeContext(1.))
  hook.set_validation_data(tf.data.Dataset.from_tensors(tf.zeros([2, 4, 4, 3])))
  gs = []
  for _ in range(3):  # a one-batch held-out set is cycled, not exhausted
    logs = hook.after_apply(ShiftModel(20.), FakeContext(1.))  # training MSE 1 is ignored
    assert float(logs["heldout_mse"]) == pytest.approx(400.)
    gs.append(400. / 100. - 1.)
  expected = reference_trajectory(gs, 0.1, 0.99, 0.99, 1., 1e3)
  np.testing.assert_allclose(multiplier.mu.numpy(), expected[-1], rtol=1e-6)
  # The iterator is not model state: the checkpoint holds the multiplier only, and restores
  # into a hook that has no held-out data.
  path = tf.train.Checkpoint(hook=hook).save(str(tmp_path / "ckpt"))
  fresh = dco.DualAscent(dco.LagrangeMultiplier(), target=100., signal="validation")
  tf.train.Checkpoint(hook=fresh).restore(path).assert_consumed()
  assert float(fresh.multiplier.mu.numpy()) == pytest.approx(float(expected[-1]), rel=1e-6)


def test_train_signal_ignores_validation_data():
  multiplier = dco.LagrangeMultiplier(learning_rate=0.1, initial_value=1.)
  hook = dco.DualAscent(multiplier, target=100., signal="train")
  hook.set_validation_data(tf.data.Dataset.from_tensors(tf.zeros([2, 4, 4, 3])))
  assert hook.after_apply(ShiftModel(20.), FakeContext(50.)) == {} and not hook.log_names()
  assert float(multiplier.mu.numpy()) == pytest.approx(0.1 * (50. / 100. - 1.), rel=1e-6)


def test_signal_flag_is_checked_and_mapped():
  with pytest.raises(ValueError, match="multiplier signal"):
    dco.DualAscent(dco.LagrangeMultiplier(), target=1., signal="test")
  with pytest.raises(ValueError, match="multiplier_signal"):
    tiny_config("/tmp/unused", objective="dco", target_distortion=50.,
                multiplier_signal="nope").validate()
  with pytest.raises(ValueError, match="one device"):
    tiny_config("/tmp/unused", objective="dco", target_distortion=50., strategy="mirrored",
                multiplier_signal="validation").validate()
  objective = training.build_objective(tiny_config(
      "/tmp/unused", objective="dco", target_distortion=50., multiplier_signal="validation"))
  assert objective.hooks[0].signal == "validation"
  assert objective.get_config()["hooks"][0]["signal"] == "validation"


@pytest.mark.slow
def test_training_with_the_validation_signal_logs_the_held_out_distortion(tmp_path):
  summary = training.train(tiny_config(
      tmp_path / "run", objective="dco", target_distortion=1e5, multiplier_rule="paper",
      multiplier_init=10., multiplier_lr=0.05, epochs=1, steps_per_epoch=4,
      multiplier_signal="validation"))
  state = summary["objective_state"]["dco"]
  assert state["multiplier_steps"] == 4
  # Held-out MSE (≤ 255² = 65,025) is below c_D = 1e5: every step pushed λ down.
  assert state["lambda"] < 10. and 0 < summary["train"]["heldout_mse"] < 1e5


# --- The default ("auto") multiplier rule and R-CO --------------------------------------


def test_auto_rule_derives_lambda0_and_the_step_from_target_and_run_length():
  s = dco.auto_multiplier_settings(445., 1500, lmbda=0.01)
  assert s["initial_value"] == pytest.approx(4.45)       # β·c_D
  assert s["learning_rate"] == pytest.approx(40. / 1500)  # η = 40/T
  assert dco.auto_multiplier_settings(445., 3000)["learning_rate"] == pytest.approx(40 / 3000)
  rate = dco.auto_multiplier_settings(0.5, 2000, lmbda=0.01, metric=dco.RATE)
  assert rate["initial_value"] == pytest.approx(0.5)      # R-CO: c_R
  # T = 2000 gives the step that configs/dco_cpu.cfg found by hand (2e-2, 0.9, 0.9).
  hand = dco.auto_multiplier_settings(330., 2000, lmbda=0.0018)
  assert (hand["learning_rate"], hand["momentum"], hand["dampening"]) == (2e-2, .9, .9)
  assert hand["initial_value"] == pytest.approx(0.594)   # the config's 0.6
  for bad in [dict(total_steps=0), dict(total_steps=1.5), dict(lmbda=0.),
              dict(lmbda=float("nan")), dict(target=-1.), dict(max_value=1.)]:
    with pytest.raises(ValueError):
      dco.auto_multiplier_settings(**dict(dict(target=445., total_steps=100), **bad))
  multiplier = dco.LagrangeMultiplier(**dco.auto_multiplier_settings(445., 100))
  assert multiplier.get_config()["engage_below"] == 0.5


def test_auto_rule_holds_a_distortion_target_from_scratch_for_half_the_run():
  """From scratch D falls with training whatever λ is: a distortion target holds λ0 for
  T/2 steps, then integrates with the whole run's authority over the remaining half; a
  rate target, or any warm start, integrates as soon as the filter allows."""
  scratch = dco.auto_multiplier_settings(445., 1500, lmbda=0.01, from_scratch=True)
  assert scratch["engage_after"] == 750
  assert scratch["prediction_horizon"] == scratch["trend_window"] == 150  # T/10
  assert scratch["learning_rate"] == pytest.approx(40. / 750)
  assert scratch["initial_value"] == pytest.approx(4.45)
  for s in (dco.auto_multiplier_settings(445., 1500, lmbda=0.01),
            dco.auto_multiplier_settings(0.5, 1500, metric=dco.RATE, from_scratch=True)):
    assert "engage_after" not in s and s["learning_rate"] == pytest.approx(40. / 1500)
    assert "prediction_horizon" not in s
  from tfcae.training.config import TrainConfig
  base = dict(objective="dco", target_distortion=445., epochs=10, steps_per_epoch=150)
  assert dco.multiplier_settings(TrainConfig(**base))["engage_after"] == 750
  warm = dco.multiplier_settings(TrainConfig(init_from="zoo:factorized/1", **base))
  assert "engage_after" not in warm
  # The multiplier holds λ0 through the first engage_after updates even where the filtered
  # constraint is already small, then integrates; the setting is in its config.
  m = dco.LagrangeMultiplier(learning_rate=0.1, initial_value=2., constraint_clip=1.,
                             engage_below=0.5, engage_after=3)
  mus = []
  for g in [0.2, 0.2, 0.2, 0.2, 0.2]:
    m.update(tf.constant(g))
    mus.append(float(m.mu.numpy()))
  np.testing.assert_allclose(mus[:3], np.log(2.), atol=1e-7)
  assert mus[3] > mus[2] and mus[4] > mus[3] and bool(m.engaged.numpy())
  assert m.get_config()["engage_after"] == 3
  for bad in (-1, 1.5):
    with pytest.raises(ValueError, match="engage_after"):
      dco.LagrangeMultiplier(engage_after=bad)


def test_prediction_extrapolates_the_constraints_trend():
  """Derivative action: on a constant constraint the prediction is the constraint (the
  multiplier moves as without it); on a falling one that is still violated it already
  lowers λ, where the plain integrator would raise it. Bad settings are refused, NaN
  leaves the averages alone and the settings are in the config."""
  def mus(constraints, **kwargs):
    m = dco.LagrangeMultiplier(learning_rate=0.05, momentum=0.9, dampening=0.9,
                               initial_value=2., constraint_clip=1., **kwargs)
    out = []
    for g in constraints:
      m.update(tf.constant(g, tf.float32))
      out.append(float(m.mu.numpy()))
    return np.asarray(out), m
  flat = [0.1] * 200
  plain, _ = mus(flat)
  predicted, m = mus(flat, prediction_horizon=100, trend_window=100)
  np.testing.assert_allclose(predicted, plain, rtol=1e-5)
  assert m.get_config()["prediction_horizon"] == m.get_config()["trend_window"] == 100
  # D/c − 1 falls linearly from +0.3 by 0.002 per step: still > 0 for the first 150 steps,
  # but 200 steps ahead it is always < 0.
  falling = [0.3 - 0.002 * t for t in range(300)]
  plain, _ = mus(falling)
  predicted, m = mus(falling, prediction_horizon=200, trend_window=50)
  assert plain[100] > plain[60]          # the integrator still climbs at steps 60-100
  assert predicted[100] < predicted[60]  # the prediction already descends there
  # After the averages settle (a few τ_s), their difference measures the slope.
  fast, slow = float(m.fast_average.numpy()), float(m.slow_average.numpy())
  slope = (fast - slow) / (50 - 10)
  assert slope == pytest.approx(-0.002, rel=0.05)
  before = (fast, slow)
  m.update(tf.constant(np.nan))
  assert (float(m.fast_average.numpy()), float(m.slow_average.numpy())) == before
  for bad in (dict(prediction_horizon=-1, trend_window=50),
              dict(prediction_horizon=10, trend_window=5)):
    with pytest.raises(ValueError, match="prediction_horizon|trend_window"):
      dco.LagrangeMultiplier(**bad)
  # An older run's multiplier (no prediction) has no averages to checkpoint.
  assert not hasattr(dco.LagrangeMultiplier(), "fast_average")


def reference_auto(constraints, lr, init, clip=1., engage=0.5, m=0.9):
  mu, buf, engaged, out = np.float32(np.log(init)), None, False, []
  for g in constraints:
    g = np.float32(np.clip(g, -clip, clip))
    buf = g if buf is None else np.float32(m * buf + (1 - m) * g)
    engaged = engaged or buf <= engage
    if engaged:
      mu = np.float32(min(mu + np.float32(lr) * buf, np.float32(np.log(1e3))))
    out.append(mu)
  return np.asarray(out)


def test_auto_multiplier_holds_until_engaged_and_clips_the_constraint():
  """From scratch D ≫ c_D: λ holds λ0 until the filtered constraint reaches 0.5, and a huge
  violation moves μ no more than a violation of 1 (anti-windup)."""
  m = dco.LagrangeMultiplier(learning_rate=0.1, momentum=0.5, dampening=0.5,
                             initial_value=2., constraint_clip=1., engage_below=0.5)
  constraints = [9., 5., 3., 1.5, 0.6, 0.2, 0.1, -0.3, 8., 4., -2.]
  mus = []
  for g in constraints:
    m.update(tf.constant(g))
    mus.append(float(m.mu.numpy()))
  np.testing.assert_allclose(mus, reference_auto(constraints, 0.1, 2., m=0.5), rtol=1e-6)
  held = np.isclose(mus, np.log(2.), rtol=0, atol=1e-7)
  assert held[:5].all() and not held[5:].any()  # held while the buffer was > 0.5
  assert bool(m.engaged.numpy())
  # Engaged stays engaged when the violation returns (8, 4 above): μ rose, bounded.
  assert np.all(np.isfinite(mus)) and np.diff(mus)[8] <= 0.1 + 1e-6
  # NaN changes nothing, also the engagement.
  fresh = dco.LagrangeMultiplier(learning_rate=0.1, engage_below=0.5, initial_value=2.)
  fresh.update(tf.constant(np.nan))
  assert not bool(fresh.engaged.numpy()) and int(fresh.steps.numpy()) == 0


def test_rco_term_and_hook_constrain_the_rate():
  from tfcae.objectives.terms import Distortion
  terms, hooks = dco.rco_objective_parts(0.5, lmbda=0.02, signal="train",
                                         initial_value=2., learning_rate=0.1)
  distortion, term = terms
  assert type(distortion) is Distortion and distortion.weight == 0.02
  assert type(term) is dco.ConstrainedRate and term.log_names()[:2] == ["rco", "bpp"]
  value, logs = term(FakeContext(100., bpp=tf.constant(0.75)))
  assert float(value) == pytest.approx(2. * (0.75 / 0.5 - 1.))
  assert float(logs["bpp"]) == pytest.approx(0.75)
  hooks[0].after_apply(None, FakeContext(100., bpp=tf.constant(0.75)))  # R above c_R
  assert float(term.multiplier.lmbda.numpy()) > 2.
  state = term.summary({"bpp": 0.6, "mse": 50.})
  assert state["metric"] == "bpp" and not state["target_met"]
  assert state["validation_distortion"] == pytest.approx(0.6)
  assert "--target_bpp" in state["warnings"][0] and len(state["warnings"]) == 1
  assert term.summary({"bpp": 0.505})["target_met"]  # within the 2 % tolerance
  with pytest.raises(ValueError, match="rate target"):
    dco.rco_objective_parts(0.)
  with pytest.raises(ValueError, match="ConstrainedRate"):
    dco.ConstrainedDistortion(term.multiplier, 1., metric=dco.RATE)


def test_build_objective_rco_and_auto_rule_from_flags():
  objective = training.build_objective(tiny_config(
      "/tmp/unused", objective="rco", target_bpp=0.8, lmbda=0.02, epochs=4,
      steps_per_epoch=50))
  term, hook = objective.terms[1], objective.hooks[0]
  assert type(term) is dco.ConstrainedRate and hook.metric == "bpp"
  assert float(term.multiplier.lmbda.numpy()) == pytest.approx(0.8)   # c_R
  assert term.multiplier.learning_rate == pytest.approx(40. / 200)
  assert hook.signal == "validation"  # auto, one device
  objective = training.build_objective(tiny_config(
      "/tmp/unused", objective="dco", target_distortion=300., lmbda=0.01))
  assert float(objective.terms[1].multiplier.lmbda.numpy()) == pytest.approx(3.)
  config = tiny_config("/tmp/unused", objective="dco", target_distortion=1.,
                       strategy="mirrored")
  assert dco.signal_of(config) == "train"


@pytest.mark.parametrize("overrides, message", [
    ({"objective": "rco"}, "--target_bpp > 0"),
    ({"objective": "dco", "target_distortion": 100., "multiplier_lr": 0.1},
     "--multiplier_lr apply to --multiplier_rule=paper"),
    ({"objective": "rco", "target_bpp": 0.5, "time_budget_minutes": 5.},
     "time budget"),
    ({"objective": "rco", "target_bpp": 0.5, "multiplier_signal": "validation",
      "strategy": "mirrored"}, "one device"),
])
def test_constrained_settings_are_validated(overrides, message):
  with pytest.raises(ValueError, match=message):
    tiny_config("/tmp/unused", **overrides).validate()


def test_runs_saved_before_the_rule_load_with_the_paper_rule(tmp_path):
  from tfcae.training.config import TrainConfig
  saved = tiny_config(str(tmp_path), objective="dco", target_distortion=100.).to_dict()
  del saved["multiplier_rule"]
  (tmp_path / "train_config.json").write_text(json.dumps(saved))
  assert TrainConfig.load(str(tmp_path / "train_config.json")).multiplier_rule == "paper"


@pytest.mark.slow
def test_rco_trains_and_records_target_met(tmp_path):
  summary = training.train(tiny_config(tmp_path / "run", objective="rco", target_bpp=0.3,
                                       epochs=2, steps_per_epoch=5))
  state = summary["objective_state"]["rco"]
  assert state["metric"] == "bpp" and isinstance(state["target_met"], bool)
  assert state["validation_distortion"] == pytest.approx(summary["validation"]["bpp"])
  assert np.isfinite(state["lambda"]) and state["multiplier_steps"] == 10
  assert "heldout_bpp" in summary["train"]


def test_the_hand_tuned_flagfiles_keep_the_papers_update(monkeypatch):
  """configs/dco_cpu_mse*.cfg measured their results with the paper's rule: they select it
  explicitly, so their multiplier is what it was (no clip, no hold)."""
  from absl import flags
  from tfcae import cli
  from tfcae.training.config import TrainConfig
  monkeypatch.chdir(REPO)
  values = flags.FlagValues()
  cli.define_flags_from_dataclass(TrainConfig, flag_values=values)
  values(["prog", "--flagfile=configs/dco_cpu_mse300.cfg", "--model_dir=x"])
  config = cli.dataclass_from_flags(TrainConfig, flag_values=values)
  assert config.multiplier_rule == "paper"
  assert dco.multiplier_settings(config) == {
      "learning_rate": 2e-2, "momentum": 0.9, "dampening": 0.9, "max_value": 1e3,
      "initial_value": 0.6}
  multiplier = dco.LagrangeMultiplier(**dco.multiplier_settings(config))
  assert "engage_below" not in multiplier.get_config()


def test_a_run_begun_before_the_prediction_resumes_without_it(tmp_path):
  """A from-scratch D-CO run checkpointed by the previous rule (no trend averages) resumes
  under today's rule: the hook drops the prediction before the restore, which then
  matches every object; a checkpoint with the averages keeps it."""
  old = dco.LagrangeMultiplier(**dict(dco.auto_multiplier_settings(445., 1500,
                                                                   from_scratch=True),
                                      prediction_horizon=0))
  old.update(tf.constant(0.3))
  path = tf.train.Checkpoint(multiplier=old).save(str(tmp_path / "old" / "ckpt"))
  keys = [name for name, _ in tf.train.list_variables(path)]
  settings = dco.auto_multiplier_settings(445., 1500, from_scratch=True)
  hook = dco.DualAscent(dco.LagrangeMultiplier(**settings), 445.)
  assert "prediction" in hook.before_restore(keys)
  tf.train.Checkpoint(multiplier=hook.multiplier).restore(path).assert_existing_objects_matched()
  assert hook.multiplier.prediction_horizon == 0
  assert "prediction_horizon" not in hook.multiplier.get_config()
  assert float(hook.multiplier.mu.numpy()) == float(old.mu.numpy())
  hook.multiplier.update(tf.constant(0.1))  # steps on without the averages
  new = dco.DualAscent(dco.LagrangeMultiplier(**settings), 445.)
  path = tf.train.Checkpoint(multiplier=new.multiplier).save(str(tmp_path / "new" / "ckpt"))
  again = dco.DualAscent(dco.LagrangeMultiplier(**settings), 445.)
  assert again.before_restore([n for n, _ in tf.train.list_variables(path)]) is None
  assert again.multiplier.prediction_horizon == 150
