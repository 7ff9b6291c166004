"""tfcae.methods.projections: the ℓ1, bilevel ℓ1,1, exact and bilevel ℓ1,∞ projections.

Exactness is checked against slow, independent NumPy references (nested bisections on the
dual variables, float64, 80 halvings each: 2^-80 of the bracket) and against scipy's SLSQP on tiny instances;
Euclidean optimality against the variational inequality ⟨w − P(w), y − P(w)⟩ <= 0 for
feasible y.
"""
import numpy as np
import pytest
import scipy.optimize
import tensorflow as tf
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from tfcae.methods import projections as P

DTYPES = [np.float32, np.float64]


# --------------------------------------------------------------------------- references

def _bisect(fn, lo, hi, iters=80):
  """Largest x in [lo, hi] with fn(x) > 0 for a decreasing fn (vectorised over arrays)."""
  lo, hi = np.array(lo, np.float64), np.array(hi, np.float64)
  for _ in range(iters):
    mid = (lo + hi) / 2
    big = fn(mid) > 0
    lo, hi = np.where(big, mid, lo), np.where(big, hi, mid)
  return (lo + hi) / 2


def ref_rows_l1(w, radii):
  """Each row of w onto its own ℓ1 ball, soft threshold found by bisection."""
  a = np.abs(w)
  radii = np.asarray(radii, np.float64)
  tau = _bisect(lambda t: np.maximum(a - t[:, None], 0).sum(1) - radii,
                np.zeros(len(a)), a.max(1, initial=0.))
  tau = np.where(a.sum(1) <= radii, 0., tau)
  return np.sign(w) * np.maximum(a - tau[:, None], 0)


def ref_l1(w, r):
  return ref_rows_l1(np.reshape(w, [1, -1]), [r]).reshape(np.shape(w))


def ref_l11(w, r):
  t = ref_l1(np.abs(w).sum(1), r)
  return ref_rows_l1(w, t)


def ref_l1inf(w, r):
  """Euclidean projection onto the ℓ1,∞ ball by bisection on θ, then on each μ_i(θ)."""
  a = np.abs(w)
  if a.max(1).sum() <= r:
    return w

  def mu_of(theta):
    mu = _bisect(lambda m: np.maximum(a - m[:, None], 0).sum(1) - theta,
                 np.zeros(len(a)), a.max(1))
    return np.where(a.sum(1) <= theta, 0., mu)

  theta = _bisect(lambda th: mu_of(th).sum() - r, 0., a.sum(1).max())
  return np.sign(w) * np.minimum(a, mu_of(theta)[:, None])


def ref_l1inf_bilevel(w, r):
  v = np.abs(w).max(1)
  u = ref_l1(v, r)
  return np.sign(w) * np.minimum(np.abs(w), u[:, None])


def np_l1(w):
  return np.abs(np.asarray(w, np.float64)).sum()


def np_l1inf(w):
  return np.abs(np.asarray(w, np.float64)).max(1).sum()


# (name, projection, its norm, reference, is it the Euclidean projection onto its ball)
METHODS = {
    "l1": (P.project_l1, np_l1, ref_l1, True),
    "l11": (P.project_l11, np_l1, ref_l11, False),
    "l1inf": (P.project_l1inf, np_l1inf, ref_l1inf, True),
    "l1inf_bilevel": (P.project_l1inf_bilevel, np_l1inf, ref_l1inf_bilevel, False),
}
MATRIX_METHODS = ["l11", "l1inf", "l1inf_bilevel"]


def random_matrix(seed, n=17, m=11, dtype=np.float64):
  rng = np.random.default_rng(seed)
  # Heavy-ish tails and a few scaled rows so the row norms differ a lot.
  w = rng.standard_t(3, size=(n, m)) * rng.uniform(0.1, 3., size=(n, 1))
  return w.astype(dtype)


def rtol(dtype):
  return 1e-5 if dtype == np.float32 else 1e-9


# --------------------------------------------------------------------------- norms

def test_norms():
  w = np.array([[1., -2., 0.5], [0., 0., -3.]])
  assert P.l1_norm(w).numpy() == 6.5
  assert P.l11_norm(w).numpy() == 6.5
  assert P.l1inf_norm(w).numpy() == 5.
  assert P.l1_norm(w.reshape(3, 1, 2)).numpy() == 6.5
  assert P.l1inf_norm(np.zeros([3, 0])).numpy() == 0.
  assert P.l1inf_norm(np.zeros([0, 3])).numpy() == 0.
  with pytest.raises(ValueError):
    P.l1inf_norm(np.zeros([2, 2, 2]))


# --------------------------------------------------------------------------- on the ball

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("fraction", [0.001, 0.05, 0.3, 0.9])
def test_lands_on_ball_matches_reference_and_is_idempotent(method, dtype, fraction):
  project, norm, ref, _ = METHODS[method]
  w = random_matrix(int(fraction * 1000), dtype=dtype)
  r = fraction * norm(w)
  x = project(w, r)
  assert x.dtype == w.dtype and x.shape == w.shape
  x = x.numpy()
  assert np.all(np.isfinite(x))
  # On the ball: <= radius, and = radius because the input was outside.
  assert norm(x) <= r * (1 + rtol(dtype))
  assert norm(x) == pytest.approx(r, rel=rtol(dtype))
  # Exact: against the slow independent reference, computed in float64.
  expected = ref(w.astype(np.float64), r)
  np.testing.assert_allclose(x, expected, rtol=0, atol=1e-5 * np.abs(w).max())
  # Idempotent (the projection is inside, so it comes back unchanged).
  np.testing.assert_allclose(project(x, r).numpy(), x, rtol=0, atol=1e-6 * np.abs(x).max())
  # A projection never increases magnitudes and never flips signs.
  assert np.all(np.abs(x) <= np.abs(w))
  assert np.all(x * w >= 0)


@pytest.mark.parametrize("method", ["l1", "l1inf"])
def test_euclidean_optimality(method):
  """P(w) is the nearest point: ⟨w − x, y − x⟩ <= 0 and ‖w − x‖ <= ‖w − y‖ for feasible y."""
  project, norm, _, _ = METHODS[method]
  rng = np.random.default_rng(7)
  for seed in range(5):
    w = random_matrix(seed, n=6, m=5)
    r = 0.4 * norm(w)
    x = project(w, r).numpy()
    candidates = []
    for _ in range(300):
      z = rng.normal(size=w.shape) * (rng.uniform(size=w.shape) < rng.uniform(0.2, 1.))
      if norm(z) > 0:
        candidates.append(z * r * rng.uniform(0.5, 1.) / norm(z))
    # Points near x on the ball (the variational inequality is tight there).
    for _ in range(100):
      z = x + 0.05 * rng.normal(size=w.shape)
      candidates.append(project(z, r).numpy())
    scale = np.abs(w).max() ** 2
    for y in candidates:
      assert norm(y) <= r * (1 + 1e-9)
      assert np.sum((w - x) * (y - x)) <= 1e-9 * scale
      assert np.sum((w - x) ** 2) <= np.sum((w - y) ** 2) + 1e-9 * scale


def test_l1inf_matches_generic_convex_solver():
  """min ½‖x − w‖² s.t. −t_i <= x_ij <= t_i, Σ t_i <= C, solved by scipy's SLSQP."""
  rng = np.random.default_rng(3)
  for _ in range(4):
    n, m = 3, 4
    w = rng.normal(size=(n, m))
    c = 0.35 * np_l1inf(w)
    rows = np.repeat(np.arange(n), m)

    def objective(z):
      return 0.5 * np.sum((z[:n * m] - w.ravel()) ** 2)

    def gradient(z):
      return np.concatenate([z[:n * m] - w.ravel(), np.zeros(n)])

    constraints = [
        {"type": "ineq", "fun": lambda z: z[n * m:][rows] - z[:n * m]},
        {"type": "ineq", "fun": lambda z: z[n * m:][rows] + z[:n * m]},
        {"type": "ineq", "fun": lambda z: c - z[n * m:].sum()},
    ]
    z0 = np.concatenate([np.zeros(n * m), np.full(n, c / n)])
    result = scipy.optimize.minimize(objective, z0, jac=gradient, method="SLSQP",
                                     constraints=constraints,
                                     options={"ftol": 1e-14, "maxiter": 1000})
    assert result.success
    x = P.project_l1inf(w, c).numpy()
    np.testing.assert_allclose(x.ravel(), result.x[:n * m], atol=1e-5)
    assert objective(np.concatenate([x.ravel(), np.zeros(n)])) <= result.fun + 1e-9


def test_l1inf_optimality_conditions():
  """Quattoni et al. (2009): equal removed mass θ on surviving rows, dead rows have ‖·‖₁ <= θ."""
  w = random_matrix(11, n=40, m=9)
  r = 0.2 * np_l1inf(w)
  x = P.project_l1inf(w, r).numpy()
  mu = np.abs(x).max(1)
  removed = np.abs(w).sum(1) - np.abs(x).sum(1)
  alive = mu > 0
  assert 0 < alive.sum() < len(w)
  theta = removed[alive].mean()
  np.testing.assert_allclose(removed[alive], theta, rtol=1e-9)
  assert np.all(np.abs(w[~alive]).sum(1) <= theta * (1 + 1e-9))
  assert mu.sum() == pytest.approx(r, rel=1e-12)


# --------------------------------------------------------------------------- edge cases

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", list(METHODS))
def test_inside_ball_is_returned_bit_identical(method, dtype):
  project, norm, _, _ = METHODS[method]
  w = random_matrix(1, dtype=dtype)
  for r in [norm(w), 1.5 * norm(w), 1e30]:
    x = project(w, r).numpy()
    assert x.dtype == w.dtype
    assert x.tobytes() == w.tobytes()
  x = project(tf.constant(w), tf.constant(2 * norm(w), tf.float32)).numpy()
  assert x.tobytes() == w.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", list(METHODS))
def test_degenerate_inputs(method, dtype):
  project, norm, ref, _ = METHODS[method]
  w = random_matrix(2, dtype=dtype)
  # Radius 0 -> exact zeros, as a Python float and as a tensor.
  assert not np.any(project(w, 0.).numpy())
  assert not np.any(project(w, tf.constant(0., tf.float64)).numpy())
  # Zero matrix -> zeros, whatever the radius.
  for r in [0., 1.]:
    z = project(np.zeros([4, 3], dtype), r).numpy()
    assert z.shape == (4, 3) and not np.any(z) and np.all(np.isfinite(z))
  # Ties everywhere, negative entries, single rows/columns, 1x1, tiny and huge scales.
  cases = [np.full([5, 4], -2.), np.ones([1, 6]), np.ones([6, 1]), np.array([[3.]]),
           np.array([[1., -1.], [-1., 1.], [1., 1.]]), np.array([[0., 5., -5., 0.]]),
           1e-30 * random_matrix(3, 4, 3), 1e15 * random_matrix(4, 4, 3)]
  for case in cases:
    case = case.astype(dtype)
    for fraction in [1e-6, 0.5, 0.999]:
      r = fraction * norm(case)
      x = project(case, r).numpy()
      assert np.all(np.isfinite(x))
      assert norm(x) <= r * (1 + rtol(dtype))
      np.testing.assert_allclose(x, ref(case.astype(np.float64), r), rtol=0,
                                 atol=1e-5 * np.abs(case).max())
  # Empty tensors come back as they are.
  for shape in [(0, 3), (3, 0), (0, 0)]:
    e = np.zeros(shape, dtype)
    for r in [0., 1.]:
      assert project(e, r).numpy().shape == shape


@pytest.mark.parametrize("method", list(METHODS))
def test_negative_radius_raises(method):
  project = METHODS[method][0]
  w = random_matrix(0)
  with pytest.raises(ValueError):
    project(w, -1.)
  with pytest.raises(ValueError):
    project(w, float("nan"))
  with pytest.raises(tf.errors.InvalidArgumentError):
    project(w, tf.constant(-1.))
  with pytest.raises(TypeError):
    project(np.ones([2, 2], np.int32), 1.)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("method", list(METHODS))
def test_inside_tf_function_with_unknown_shapes(method, dtype):
  project, norm, _, _ = METHODS[method]
  shape = None if method == "l1" else [None, None]  # ℓ1 takes any rank
  fn = tf.function(project, input_signature=[tf.TensorSpec(shape, dtype),
                                             tf.TensorSpec([], tf.float32)])
  for n, m in [(17, 11), (3, 1), (1, 5), (0, 4)]:
    w = random_matrix(n * m, n, m, dtype.as_numpy_dtype)
    for fraction in [0., 0.3, 2.]:
      r = np.float32(fraction * norm(w))
      np.testing.assert_array_equal(fn(w, r).numpy(), project(w, float(r)).numpy())
  with pytest.raises(tf.errors.InvalidArgumentError):
    fn(random_matrix(0, dtype=dtype.as_numpy_dtype), -1.)


def test_l1_keeps_the_shape_of_any_rank():
  w = random_matrix(5, 6, 10).reshape(3, 2, 5, 2)
  x = P.project_l1(w, 0.1 * np_l1(w)).numpy()
  assert x.shape == w.shape
  np.testing.assert_allclose(x, ref_l1(w, 0.1 * np_l1(w)), atol=1e-9)


# --------------------------------------------------------------------------- structure

def test_mixed_norms_zero_whole_rows_l1_need_not():
  # Two strong rows and a weak one. The ℓ1 ball and the ℓ1,1 ball are the same set, but
  # the Euclidean ℓ1 projection (global threshold 5/9) keeps part of the weak row, while
  # the bilevel ℓ1,1 projection thresholds the row norms (16, 16, 1) at 2 and drops it.
  w = np.array([[4., 4., 4., 4.], [4., -4., 4., 4.], [1., 0., 0., 0.]])
  x_l1 = P.project_l1(w, 28.).numpy()
  assert np.all(np.any(x_l1, axis=1))
  np.testing.assert_allclose(x_l1[2], [4. / 9., 0., 0., 0.])
  x = P.project_l11(w, 28.).numpy()
  np.testing.assert_array_equal(np.any(x, axis=1), [True, True, False])
  np.testing.assert_allclose(np.abs(x).sum(1), [14., 14., 0.])
  # ℓ1,∞ at half its norm (4.5): exact θ = 7 >= ‖w_3‖₁, bilevel threshold 1.75 >= max|w_3|.
  for project in (P.project_l1inf, P.project_l1inf_bilevel):
    x = project(w, 4.5).numpy()
    np.testing.assert_array_equal(np.any(x, axis=1), [True, True, False])
    np.testing.assert_allclose(np.abs(x).max(1), [2.25, 2.25, 0.])

  # And on random data at a small radius many rows die.
  w = random_matrix(9, n=64, m=25)
  for method in MATRIX_METHODS:
    project, norm, _, _ = METHODS[method]
    x = project(w, 0.05 * norm(w)).numpy()
    assert (~np.any(x, axis=1)).sum() >= 16, method


def test_l11_surviving_rows_get_their_first_level_radius():
  w = random_matrix(21, n=30, m=8)
  r = 0.25 * np_l1(w)
  x = P.project_l11(w, r).numpy()
  t = ref_l1(np.abs(w).sum(1), r)
  np.testing.assert_allclose(np.abs(x).sum(1), t, atol=1e-9)


# --------------------------------------------------------------------------- properties

matrices = hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=7),
                      elements=st.floats(-100, 100, allow_subnormal=False, width=32))


@settings(max_examples=50, deadline=None)
@given(w=matrices, fraction=st.floats(0., 1.5), method=st.sampled_from(list(METHODS)))
def test_property_feasible_exact_idempotent(w, fraction, method):
  project, norm, ref, _ = METHODS[method]
  r = fraction * norm(w)
  x = project(w, r).numpy()
  assert np.all(np.isfinite(x))
  slack = 1e-14 * norm(w)  # float64 cancellation in |w| − τ when r << ‖w‖
  assert norm(x) <= r * (1 + 1e-9) + slack
  if norm(w) <= r:
    assert x.tobytes() == w.tobytes()
  else:
    assert norm(x) == pytest.approx(r, rel=1e-9, abs=slack)
  atol = 1e-7 * max(np.abs(w).max(initial=0.), 1e-30)
  np.testing.assert_allclose(x, ref(w, r), rtol=0, atol=atol)
  np.testing.assert_allclose(project(x, r).numpy(), x, rtol=0, atol=atol)


@settings(max_examples=30, deadline=None)
@given(w=matrices, fraction=st.floats(0., 1.), method=st.sampled_from(list(METHODS)))
def test_property_float32_close_to_float64(w, fraction, method):
  project, norm, _, _ = METHODS[method]
  w32 = w.astype(np.float32)
  r = fraction * norm(w32)
  x32 = project(w32, r).numpy()
  x64 = project(w32.astype(np.float64), r).numpy()
  # Thresholds are computed in float64, so besides the final float32 rounding (relative
  # to the radius) there is float64 cancellation in |w| − τ, of order 1e-16·‖w‖.
  assert norm(x32) <= r * (1 + 1e-5) + 1e-14 * norm(w32)
  np.testing.assert_allclose(x32, x64, rtol=0, atol=1e-6 * max(np.abs(w).max(initial=0.), 1e-30))


@pytest.mark.parametrize("method", list(METHODS))
def test_a_radius_far_below_float_rounding_still_lands_on_the_ball(method):
  """Found by hypothesis: with radius 1.7e-277 the ℓ1,∞ sweep's F at its last breakpoint was
  ~1e-16 instead of 0, no breakpoint had F <= C and the projection returned W itself."""
  project, norm, _, _ = METHODS[method]
  w = np.ones([5, 6], np.float32)
  w[[0, 2], 0] = 0.
  for radius in (1.685628601336491e-277, 1e-30, 5e-324):
    x = project(w, radius).numpy()
    assert np.all(np.isfinite(x)) and norm(x) <= radius * (1 + 1e-5) + 1e-14 * norm(w)
