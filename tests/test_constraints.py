"""tfcae.methods.constraints: group views, the Keras ball constraints, and their use in training."""
import numpy as np
import pytest
import tensorflow as tf

from tfcae.methods import constraints as C
from tfcae.methods import projections as P

CLASSES = [C.L1Ball, C.L11Ball, C.L1InfBall]


def random_kernel(shape, seed=0, dtype=np.float32):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=shape) * rng.uniform(0.1, 2., size=shape[-1:])).astype(dtype)


# --------------------------------------------------------------------------- group views

@pytest.mark.parametrize("groups", C.GROUPINGS)
@pytest.mark.parametrize("shape", [(3, 5, 4, 6), (7, 2), (1, 1, 1, 1), (2, 3, 5, 1)])
def test_group_views_are_exact_inverses(groups, shape):
  k = random_kernel(shape)
  m = C.to_groups(k, groups)
  assert m.shape.rank == 2 and m.shape.num_elements() == k.size
  back = C.from_groups(m, groups, k.shape)
  assert back.numpy().tobytes() == k.tobytes()
  # And the other way round: any matrix of the group shape maps to a kernel and back.
  z = np.arange(k.size, dtype=np.float32).reshape(m.shape)
  assert C.to_groups(C.from_groups(z, groups, k.shape), groups).numpy().tobytes() == z.tobytes()


def test_group_views_put_the_right_weights_in_each_row():
  k = random_kernel((3, 5, 4, 6))
  rows = C.to_groups(k, "output_filters").numpy()
  assert rows.shape == (6, 60)
  for o in range(6):
    np.testing.assert_array_equal(np.sort(rows[o]), np.sort(k[..., o].ravel()))
  rows = C.to_groups(k, "input_channels").numpy()
  assert rows.shape == (4, 90)
  for i in range(4):
    np.testing.assert_array_equal(np.sort(rows[i]), np.sort(k[:, :, i, :].ravel()))
  rows = C.to_groups(k, "kernel_positions").numpy()
  assert rows.shape == (60, 6)
  np.testing.assert_array_equal(rows[(1 * 5 + 2) * 4 + 3], k[1, 2, 3, :])
  # Dense kernels [in, out]: output filters are columns, input channels and positions rows.
  d = random_kernel((7, 2))
  np.testing.assert_array_equal(C.to_groups(d, "output_filters").numpy(), d.T)
  np.testing.assert_array_equal(C.to_groups(d, "input_channels").numpy(), d)
  np.testing.assert_array_equal(C.to_groups(d, "kernel_positions").numpy(), d)


def test_group_views_in_tf_function_with_unknown_dims():
  @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.float32)])
  def round_trip(k):
    return [C.from_groups(C.to_groups(k, g), g, tf.shape(k)) for g in C.GROUPINGS]

  k = random_kernel((3, 3, 2, 5))
  for back in round_trip(k):
    assert back.numpy().tobytes() == k.tobytes()


def test_group_view_errors():
  with pytest.raises(ValueError):
    C.to_groups(np.zeros([3, 3, 2, 2]), "rows")
  with pytest.raises(ValueError):
    C.to_groups(np.zeros([3]), "output_filters")


# --------------------------------------------------------------------------- constraints

@pytest.mark.parametrize("cls", CLASSES)
def test_config_round_trip(cls):
  extra = {"method": "bilevel"} if cls is C.L1InfBall else {}
  for kwargs in [dict(radius=2.5, groups="input_channels"),
                 dict(relative_radius=0.3, groups="kernel_positions")]:
    c = cls(**kwargs, **extra)
    config = c.get_config()
    again = cls.from_config(config)
    assert type(again) is cls and again.get_config() == config
    # Through Keras' registry, as a saved model / layer config would go.
    serialized = tf.keras.constraints.serialize(c)
    assert "tfcae>" in str(serialized)
    restored = tf.keras.constraints.deserialize(serialized)
    assert type(restored) is cls and restored.get_config() == config
    # And inside a layer's config.
    layer = tf.keras.layers.Conv2D(4, 3, kernel_constraint=c)
    clone = tf.keras.layers.Conv2D.from_config(layer.get_config())
    assert type(clone.kernel_constraint) is cls
    assert clone.kernel_constraint.get_config() == config


def test_constructor_validation():
  for cls in CLASSES:
    with pytest.raises(ValueError):
      cls()
    with pytest.raises(ValueError):
      cls(radius=1., relative_radius=0.5)
    with pytest.raises(ValueError):
      cls(radius=-1.)
    with pytest.raises(ValueError):
      cls(relative_radius=-0.1)
    with pytest.raises(ValueError):
      cls(radius=1., groups="filters")
  with pytest.raises(ValueError):
    C.L1InfBall(radius=1., method="approximate")
  assert C.L1InfBall(radius=1.).get_config() == {
      "radius": 1., "relative_radius": None, "groups": "kernel_positions", "method": "exact"}
  assert "relative_radius=0.3" in repr(C.L11Ball(relative_radius=0.3))


@pytest.mark.parametrize("cls,norm", [(C.L1Ball, P.l1_norm), (C.L11Ball, P.l11_norm),
                                      (C.L1InfBall, P.l1inf_norm)])
@pytest.mark.parametrize("groups", C.GROUPINGS)
@pytest.mark.parametrize("shape", [(5, 5, 8, 16), (12, 6)])
def test_constraint_equals_projection_of_the_group_view(cls, norm, groups, shape):
  k = random_kernel(shape, seed=len(shape))
  c = cls(relative_radius=0.2, groups=groups)
  out = c(tf.constant(k))
  assert out.shape == k.shape and out.dtype == tf.float32
  m = C.to_groups(k, groups)
  r = 0.2 * norm(m).numpy()
  assert c.radius_for(k).numpy() == pytest.approx(r)
  assert c.norm(k).numpy() == pytest.approx(norm(m).numpy())
  expected = {C.L1Ball: P.project_l1, C.L11Ball: P.project_l11,
              C.L1InfBall: P.project_l1inf}[cls](m, r)
  np.testing.assert_array_equal(C.to_groups(out, groups).numpy(), expected.numpy())
  assert norm(C.to_groups(out, groups)).numpy() <= r * (1 + 1e-5)
  # Inside the ball: unchanged, bit for bit.
  inside = cls(radius=2 * norm(m).numpy(), groups=groups)
  assert inside(tf.constant(k)).numpy().tobytes() == k.tobytes()
  # project(): the same projection at a radius given by the caller (double descent's
  # fixed radii), whatever the constraint's own radius.
  other = cls(radius=123., groups=groups)
  np.testing.assert_array_equal(other.project(tf.constant(k), tf.constant(r, tf.float64)),
                                out.numpy())


def test_structured_sparsity_of_each_grouping():
  # Groups are removed when their norms differ (as in trained kernels); give the input
  # channels different scales too (random_kernel already scales the output filters).
  k = random_kernel((5, 5, 8, 16), seed=3)
  k *= np.linspace(0.1, 2., 8, dtype=np.float32)[:, None]
  out = C.L11Ball(relative_radius=0.1, groups="output_filters")(k).numpy()
  report_l11 = C.sparsity_report(out)
  assert report_l11["zero_output_filters"] >= 4
  out = C.L11Ball(relative_radius=0.1, groups="input_channels")(k).numpy()
  report = C.sparsity_report(out)
  assert report["zero_input_channels"] >= 2
  for method in ["exact", "bilevel"]:
    out = C.L1InfBall(relative_radius=0.1, groups="kernel_positions", method=method)(k)
    rows = C.to_groups(out, "kernel_positions").numpy()
    dead = ~np.any(rows, axis=1)
    assert dead.sum() >= 0.3 * len(rows), method
    # Exact and bilevel differ, but both land on the same ball.
    assert P.l1inf_norm(rows).numpy() == pytest.approx(
        0.1 * P.l1inf_norm(C.to_groups(k, "kernel_positions")).numpy(), rel=1e-5)
  # The plain ℓ1 ball (the same set as the ℓ1,1 ball) scatters its zeros: about as many
  # weights go, but far fewer whole filters.
  out = C.L1Ball(relative_radius=0.1)(k).numpy()
  report = C.sparsity_report(out)
  assert report["zero_fraction"] > 0.5
  assert report["zero_output_filters"] < report_l11["zero_output_filters"] / 2


def test_sparsity_report():
  k = np.ones([3, 3, 4, 5], np.float32)
  k[..., 1] = 0.
  k[..., 3] = 0.
  k[:, :, 2, :] = 0.
  k[0, 0, 0, 0] = 0.
  report = C.sparsity_report(tf.constant(k))
  assert report["zero_output_filters"] == 2 and report["zero_input_channels"] == 1
  assert report["output_filters"] == 5 and report["input_channels"] == 4
  assert report["zero_fraction"] == pytest.approx(np.mean(k == 0))
  assert isinstance(report["zero_fraction"], np.floating)
  d = C.sparsity_report(np.array([[0., 1.], [0., 0.]]))
  assert d["zero_output_filters"] == 1 and d["zero_input_channels"] == 1


# --------------------------------------------------------------------------- in training

def _conv_model(constraint, seed=0):
  """A Conv2D whose filters (and kernel positions) have unequal norms, as trained ones do.

  With i.i.d. initial weights all groups have nearly the same norm and a bilevel
  projection shrinks them all without removing any; real kernels are far from that.
  """
  tf.keras.utils.set_random_seed(seed)
  model = tf.keras.Sequential([
      tf.keras.Input((8, 8, 3)),
      tf.keras.layers.Conv2D(16, 3, padding="same", kernel_constraint=constraint,
                             name="conv_0"),
  ])
  rng = np.random.default_rng(seed)
  kernel = (rng.normal(size=(3, 3, 3, 16)) * rng.uniform(0.05, 1., size=(3, 3, 3, 1))
            * rng.uniform(0.05, 1., size=16)).astype(np.float32)
  model.get_layer("conv_0").kernel.assign(kernel)
  return model


def test_keras_step_projects_and_zeroes_whole_output_filters():
  """One Keras SGD step = gradient step then projection (the optimizer applies constraints)."""
  constraint = C.L11Ball(groups="output_filters", relative_radius=0.3)
  model = _conv_model(constraint)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(4, 8, 8, 3)).astype(np.float32)
  y = rng.normal(size=(4, 8, 8, 16)).astype(np.float32)
  lr = 0.05
  model.compile(optimizer=tf.keras.optimizers.SGD(lr), loss="mse")
  conv = model.get_layer("conv_0")
  w0 = conv.kernel.numpy()
  # The kernel the gradient step produces, before Keras projects it.
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(tf.keras.losses.mean_squared_error(y, model(x)))
  pre = w0 - lr * tape.gradient(loss, conv.kernel).numpy()

  model.fit(x, y, batch_size=4, epochs=1, verbose=0)
  w1 = conv.kernel.numpy()
  radius = 0.3 * P.l11_norm(C.to_groups(pre, "output_filters")).numpy()
  after = P.l11_norm(C.to_groups(w1, "output_filters")).numpy()
  assert after <= radius * (1 + 1e-5)
  assert after == pytest.approx(radius, rel=1e-4)
  report = C.sparsity_report(w1)
  assert report["zero_output_filters"] >= 1
  zero = ~np.any(w1.reshape(-1, 16), axis=0)
  assert np.all(w1[..., zero] == 0)
  np.testing.assert_allclose(w1, constraint(pre).numpy(), atol=1e-5 * np.abs(pre).max())


@pytest.mark.parametrize("method", ["exact", "bilevel"])
def test_keras_fit_with_absolute_radius_stays_on_the_ball(method):
  k0 = _conv_model(None).get_layer("conv_0").kernel.numpy()
  radius = 0.25 * P.l1inf_norm(C.to_groups(k0, "kernel_positions")).numpy()
  model = _conv_model(C.L1InfBall(radius=radius, method=method))
  # One step (batch of 8) from a kernel 4x outside the ball. Later steps that end inside
  # the ball are left alone — dead rows then get gradient again and may come back, which
  # is why the double-descent retrain needs masks, not just the constraint.
  model.compile(optimizer=tf.keras.optimizers.SGD(1e-3), loss="mse")
  rng = np.random.default_rng(1)
  x = rng.normal(size=(8, 8, 8, 3)).astype(np.float32)
  model.fit(x, rng.normal(size=(8, 8, 8, 16)).astype(np.float32), batch_size=8, epochs=1,
            verbose=0)
  w = model.get_layer("conv_0").kernel.numpy()
  assert np.all(np.isfinite(w))
  rows = C.to_groups(w, "kernel_positions").numpy()
  assert P.l1inf_norm(rows).numpy() <= radius * (1 + 1e-5)
  assert P.l1inf_norm(rows).numpy() == pytest.approx(radius, rel=1e-5)
  assert (~np.any(rows, axis=1)).sum() >= 5
  np.testing.assert_array_equal(model.get_layer("conv_0").kernel_constraint(w).numpy(), w)


def test_dense_kernel():
  layer = tf.keras.layers.Dense(6, kernel_constraint=C.L11Ball(relative_radius=0.2,
                                                               groups="input_channels"))
  layer.build((None, 10))
  w = layer.kernel_constraint(layer.kernel).numpy()
  assert w.shape == (10, 6)
  assert C.sparsity_report(w)["zero_input_channels"] >= 3
