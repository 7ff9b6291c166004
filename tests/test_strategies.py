"""ADMM latent pruning and double descent under tf.distribute.MirroredStrategy:
their state (Z, U and the code sums; masks, projections, the rewind) stays identical on
every replica and matches a single device. Each script runs in its own process with two
logical CPU devices (they must be configured before TensorFlow starts)."""
import os

import numpy as np
import pytest

from conftest import REPO, TWO_REPLICA_PRELUDE, run_script

ADMM = TWO_REPLICA_PRELUDE + r"""
from tfcae.methods import admm
from tfcae.objectives.terms import Objective, ObjectiveEpochCallback, Rate


def run(strategy):
  with strategy.scope():
    term, hook = admm.admm_objective_parts((8, 8, 3), keep_ratio=0.25, period=1, rho=1.)
    model = Toy(objective=Objective([Rate(), term], [hook]))
    model.compile(optimizer=tf.keras.optimizers.SGD(1e-4))
  # The two replicas see different images (dark, bright): only the sum over both gives
  # the single device's mean code.
  model.fit(two_replica_data(), epochs=3, steps_per_epoch=4, verbose=0,
            callbacks=[ObjectiveEpochCallback()])
  state = hook.state
  replicas = [[v.numpy().tolist() for v in strategy.experimental_local_results(var)]
              for var in (state.z, state.u)]
  return {"z": state.z.numpy().tolist(), "u": state.u.numpy().tolist(),
          "updates": int(state.updates.numpy()), "count": float(state.count.numpy()),
          "replicas": replicas}


single = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
mirrored = run(training.make_strategy(training.TrainConfig(strategy="mirrored")))
print(json.dumps({"single": single, "mirrored": mirrored}))
"""

DOUBLE_DESCENT = TWO_REPLICA_PRELUDE + r"""
from tfcae.models import build_model
sys.path.insert(0, sys.argv[2])
from conftest import tiny_config

config = tiny_config(sys.argv[1], strategy="mirrored", batch_size=4, steps_per_epoch=5,
                     epochs=2, sparsity_constraint="l11", sparsity_radius=0.1,
                     first_descent_epochs=1)
built = []
summary = training.train(config, model_fn=lambda objective: built.append(
    build_model(config.architecture_config(), objective=objective)) or built[-1])
model = built[-1]
strategy = model.distribute_strategy
assert strategy.num_replicas_in_sync == 2
hook = model.objective.hooks[0]
layers = [l for l in model.encoder_layers() if hasattr(l, "kernel")]
different = [v.name for v in model.state_variables() + hook.kernel_masks
             if len({np.asarray(r).tobytes()
                     for r in strategy.experimental_local_results(v)}) != 1]
masks = [m.numpy() for m in hook.kernel_masks]
print(json.dumps({
    "phase": int(hook.phase.numpy()), "different": different,
    "zeros_in_masks": int(sum((m == 0).sum() for m in masks)),
    "kernel_nonzero_where_masked": int(sum(
        (l.kernel.numpy()[m == 0] != 0).sum() for l, m in zip(layers, masks))),
    "export": summary["fingerprint"]}))
"""




def test_admm_under_mirrored_matches_one_device():
  out = run_script(ADMM)
  single, mirrored = out["single"], out["mirrored"]
  assert single["updates"] == mirrored["updates"] == 3  # one per epoch (period 1)
  assert mirrored["count"] == 0.  # the sums restart after each update
  z, u = np.asarray(mirrored["z"]), np.asarray(mirrored["u"])
  assert np.count_nonzero(z) == 48  # keep 25 % of 8·8·3: Z is on the cardinality set
  assert np.abs(u).max() > 0  # U moved: step (3) ran with the replicas' summed codes
  np.testing.assert_allclose(z, single["z"], rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(u, single["u"], rtol=1e-5, atol=1e-4)
  for replicas in mirrored["replicas"]:
    assert replicas[0] == replicas[1]


@pytest.mark.slow
def test_double_descent_under_mirrored_keeps_the_replicas_identical(tmp_path):
  """Masks, projections and the rewind run in replica context and in the epoch-end
  callback: afterwards every variable (bar the metrics' per-replica totals) is
  bit-identical on both replicas, the second descent has begun and its masks hold."""
  out = run_script(DOUBLE_DESCENT, str(tmp_path), os.path.join(REPO, "tests"))
  assert out["phase"] == 2
  assert out["different"] == []
  assert out["zeros_in_masks"] > 0 and out["kernel_nonzero_where_masked"] == 0
  assert os.path.isfile(tmp_path / "saved_model.pb")
