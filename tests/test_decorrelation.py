"""Bottleneck decorrelation: the penalty, its loss term, the MNIST reader and model."""
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO, run_tool, tiny_config
from tfcae import TfcaeError
from tfcae.data import images as data
from tfcae.evaluation import plotting
from tfcae.methods.decorrelation import Decorrelation, decorrelation_penalty
from tfcae.models import build_model
from tfcae.models.mnist import MnistAutoencoder
from tfcae.objectives.terms import BinaryCrossEntropy, Objective, StepContext
from tfcae.training import mnist
from tfcae.training import loop as training


def reference_penalty(features, form="squared"):
  """NumPy reference: channels are features, every other axis indexes samples."""
  g = np.asarray(features, np.float64).reshape(-1, features.shape[-1])
  c = np.cov(g, rowvar=False, bias=True)  # centred, divided by the number of samples
  off = c[~np.eye(len(c), dtype=bool)]
  return np.sum(off ** 2) if form == "squared" else np.sum(np.abs(off))


def correlated(rng, shape):
  """Random features with strong cross-channel correlations and non-zero means."""
  k = shape[-1]
  z = rng.normal(size=shape) @ rng.normal(size=(k, k))
  return (z + rng.normal(size=k) * 3).astype(np.float32)


@pytest.mark.parametrize("shape", [(64, 8), (4, 5, 6, 7)])
@pytest.mark.parametrize("form", ["squared", "abs"])
def test_penalty_matches_numpy_reference(rng, shape, form):
  for _ in range(3):
    g = correlated(rng, shape)
    got = float(decorrelation_penalty(g, form))
    assert got > 0
    np.testing.assert_allclose(got, reference_penalty(g, form), rtol=2e-4)


@pytest.mark.parametrize("form", ["squared", "abs"])
def test_penalty_is_nonnegative(rng, form):
  for shape in [(2, 3), (16, 2), (3, 2, 2, 5), (1, 4)]:
    g = rng.normal(size=shape).astype(np.float32) * rng.uniform(0.01, 100)
    assert float(decorrelation_penalty(g, form)) >= 0.
  # A single sample has no covariance at all.
  assert float(decorrelation_penalty(np.ones((1, 4), np.float32))) == 0.


@pytest.mark.parametrize("form", ["squared", "abs"])
def test_penalty_is_zero_for_decorrelated_features(rng, form):
  # Orthogonal columns of a centred matrix have zero sample covariance, whatever their
  # scales and offsets (the penalty must centre with the batch mean).
  a = rng.normal(size=(96, 6))
  q, _ = np.linalg.qr(a - a.mean(axis=0))
  q *= np.sqrt(len(q))  # unit variances
  g = q * np.array([1., 5., 0.1, 2., 30., 0.5]) + rng.normal(size=6) * 10
  tolerance = 1e-6 if form == "squared" else 1e-4  # float32 round-off, summed unsquared
  assert float(decorrelation_penalty(g.astype(np.float32), form)) < tolerance
  # Convolutional: the same 96 samples as 2 images × 6 × 8 positions, 6 channels.
  conv = g.reshape(2, 6, 8, 6).astype(np.float32)
  assert float(decorrelation_penalty(conv, form)) < tolerance
  # Correlating two of those channels makes it strictly positive.
  g[:, 1] = g[:, 0] + 0.1 * g[:, 1]
  assert float(decorrelation_penalty(g.astype(np.float32), form)) > 1.


@pytest.mark.parametrize("shape", [(50, 7), (3, 4, 4, 7)])
def test_penalty_is_invariant_to_permuting_features(rng, shape):
  g = correlated(rng, shape)
  base = float(decorrelation_penalty(g))
  for _ in range(3):
    perm = rng.permutation(shape[-1])
    np.testing.assert_allclose(float(decorrelation_penalty(g[..., perm])), base, rtol=1e-5)
  # ... and to permuting samples (images) of the batch.
  np.testing.assert_allclose(float(decorrelation_penalty(g[rng.permutation(shape[0])])),
                             base, rtol=1e-5)


def test_penalty_scales_with_the_fourth_power(rng):
  # Not scale invariant: a codec can lower it by shrinking y (see docs/results.md).
  g = correlated(rng, (40, 5))
  np.testing.assert_allclose(float(decorrelation_penalty(3 * g)),
                             81 * float(decorrelation_penalty(g)), rtol=1e-4)
  np.testing.assert_allclose(float(decorrelation_penalty(3 * g, "abs")),
                             9 * float(decorrelation_penalty(g, "abs")), rtol=1e-4)


def test_penalty_rejects_bad_arguments():
  with pytest.raises(ValueError, match="form"):
    decorrelation_penalty(np.zeros((4, 3), np.float32), "signed")
  with pytest.raises(ValueError, match="batch"):
    decorrelation_penalty(np.zeros((4, 3, 2), np.float32))
  with pytest.raises(ValueError, match="≥ 0"):
    Decorrelation(-1.)
  with pytest.raises(ValueError, match="form"):
    Decorrelation(0.1, form="signed")


def _grads(model, objective, x):
  with tf.GradientTape() as tape:
    ctx = StepContext(model, x, model.forward(x, training=True), training=True)
    loss, logs = objective(ctx)
  # Keyed by id: the hyperprior's hyper-analysis reuses layer names (conv_0, ...).
  return loss, logs, dict(zip([id(v) for v in model.trainable_variables],
                              tape.gradient(loss, model.trainable_variables)))


@pytest.mark.parametrize("architecture", ["factorized", "hyperprior"])
def test_gradient_reaches_only_the_encoder_of_a_cae(architecture):
  tf.keras.utils.set_random_seed(3)
  model = build_model({"architecture": architecture, "num_filters": 4})
  x = tf.random.uniform([2, 64, 64, 3], 0, 255, seed=1)
  loss, logs, grads = _grads(model, Objective([Decorrelation(2.)]), x)
  encoder = {id(v) for v in model.analysis_transform.trainable_variables}
  assert encoder and float(loss) == pytest.approx(2. * float(logs["decorrelation"]))
  assert len(grads) > len(encoder)
  for key, g in grads.items():
    if key in encoder:
      assert g is not None and float(tf.reduce_max(tf.abs(g))) > 0
    else:  # synthesis, priors, hyper-transforms: untouched
      assert g is None


def test_gradient_reaches_only_the_mnist_encoder():
  tf.keras.utils.set_random_seed(3)
  model = MnistAutoencoder(4)
  x = tf.random.uniform([32, 784], seed=2)
  _, _, grads = _grads(model, Objective([Decorrelation(1.)]), x)
  encoder = {id(v) for v in model.encoder.trainable_variables}
  assert len(encoder) == 6 and len(grads) == 12
  for key, g in grads.items():
    assert (g is not None) == (key in encoder)
  # BCE reaches both halves.
  _, _, grads = _grads(model, Objective([BinaryCrossEntropy()]), x)
  assert all(g is not None for g in grads.values())


def test_build_objective_adds_the_term_from_the_config(tmp_path):
  names = lambda c: [t.name for t in training.build_objective(c).terms]
  assert "decorrelation" not in names(tiny_config(tmp_path))
  config = tiny_config(tmp_path, decorrelation_weight=0.5, decorrelation_form="abs")
  term = training.build_objective(config).terms[-1]
  assert term.get_config() == {"class": "Decorrelation", "name": "decorrelation",
                               "weight": 0.5, "form": "abs", "key": "y"}
  with pytest.raises(ValueError, match="≥ 0"):
    training.build_objective(tiny_config(tmp_path, decorrelation_weight=-1.))


@pytest.mark.slow
def test_cae_trains_with_the_penalty_from_the_config(tmp_path):
  config = tiny_config(tmp_path, num_filters=4, decorrelation_weight=1e-3)
  tf.keras.utils.set_random_seed(0)
  model = build_model(config.architecture_config(), objective=training.build_objective(config))
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
  x = tf.random.uniform([2, 64, 64, 3], 0, 255, seed=4)
  logs = model.fit(tf.data.Dataset.from_tensors(x).repeat(3), epochs=1, verbose=0).history
  assert logs["decorrelation"][-1] > 0
  # The logged loss is R + λ·D + α·Σ_{i≠j} C_ij² (all running means over the same steps).
  assert logs["loss"][-1] == pytest.approx(logs["bpp"][-1] + 0.01 * logs["mse"][-1] +
                                           1e-3 * logs["decorrelation"][-1], rel=1e-5)


# --- MNIST IDX files ---------------------------------------------------------------------
def idx_bytes(array):
  array = np.asarray(array, np.uint8)
  header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
  return header + array.tobytes()


def digit_like(rng, count):
  """Synthetic 28×28 'digits': one bright bar or blob per class, with noise; labels."""
  labels = rng.integers(0, 10, count).astype(np.uint8)
  images = np.zeros((count, 28, 28), np.float32)
  for i, label in enumerate(labels):
    r, c = 4 + 2 * label, 4 + int(rng.integers(0, 12))
    images[i, r:r + 4, c:c + 10] = 1.
    images[i, 4:24, 4 + 2 * label:6 + 2 * label] = 0.7
  images += rng.uniform(0, 0.15, images.shape)
  return (np.clip(images, 0, 1) * 255).astype(np.uint8), labels


def write_mnist(folder, rng, num_train=260, num_test=60, gz=True):
  os.makedirs(folder, exist_ok=True)
  arrays = {}
  for split, count in (("train", num_train), ("test", num_test)):
    images, labels = digit_like(rng, count)
    arrays[split] = (images, labels)
    for name, array in zip(data.MNIST_FILES[split], (images, labels)):
      if gz:
        with gzip.open(os.path.join(folder, name + ".gz"), "wb") as f:
          f.write(idx_bytes(array))
      else:
        with open(os.path.join(folder, name), "wb") as f:
          f.write(idx_bytes(array))
  return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reader_round_trip(tmp_path, rng, gz):
  written = write_mnist(str(tmp_path), rng, 30, 10, gz=gz)
  loaded = data.load_mnist_idx(str(tmp_path))
  for split in ("train", "test"):
    for a, b in zip(written[split], loaded[split]):
      np.testing.assert_array_equal(a, b)
  splits = data.mnist_splits(loaded, num_validation=5)
  assert splits["train"][0].shape == (25, 784) and splits["validation"][0].shape == (5, 784)
  # The validation set is the LAST training images.
  np.testing.assert_allclose(splits["validation"][0],
                             written["train"][0][25:].reshape(5, -1) / 255.)
  assert splits["test"][0].dtype == np.float32 and splits["test"][0].max() <= 1.


def test_idx_reader_errors(tmp_path, rng):
  folder = str(tmp_path)
  write_mnist(folder, rng, 20, 10)
  path = os.path.join(folder, "train-images-idx3-ubyte.gz")
  good = open(path, "rb").read()

  def expect(content, match):
    with open(path, "wb") as f:
      f.write(content)
    with pytest.raises(TfcaeError, match=match):
      data.load_mnist_idx(folder)

  expect(good[:len(good) // 2], "corrupt")                        # truncated gzip stream
  expect(b"not gzip at all", "corrupt")                            # not gzip
  raw = gzip.decompress(good)
  expect(gzip.compress(b"\x00\x00\x0d\x03" + raw[4:]), "IDX")      # float type, not ubyte
  expect(gzip.compress(raw[:-7]), "data bytes")                    # short payload
  expect(gzip.compress(raw[:10]), "truncated header")
  expect(gzip.compress(idx_bytes(np.zeros((19, 28, 28)))), "disagree")  # 19 images, 20 labels
  os.remove(path)
  with pytest.raises(TfcaeError, match="missing"):
    data.load_mnist_idx(folder)
  with pytest.raises(TfcaeError, match="hold out"):
    data.mnist_splits({"train": (np.zeros((5, 28, 28)), np.zeros(5)), "test": None}, 5)


def test_tfds_mnist_not_prepared_is_a_clear_error(tmp_path):
  with pytest.raises(TfcaeError, match="not prepared"):
    data.load_mnist_tfds(str(tmp_path))


# --- The MNIST autoencoder -----------------------------------------------------------------
def test_mnist_autoencoder_trains_and_reloads(tmp_path, rng):
  folder = str(tmp_path / "mnist")
  write_mnist(folder, rng)
  config = mnist.MnistConfig(model_dir=str(tmp_path / "run"), mnist_dir=folder,
                             num_validation=60, bottleneck=2, decorrelation_weight=0.01,
                             epochs=15, batch_size=20, learning_rate=1e-2, validation_freq=5,
                             steps_per_execution=5)
  splits = mnist.load_splits(config)
  model, summary = mnist.train_mnist(config, splits)
  history = json.load(open(os.path.join(config.model_dir, "summary.json")))
  assert history["test_rmse"] == pytest.approx(summary["test_rmse"])
  assert summary["objective"]["terms"][1]["class"] == "Decorrelation"
  # It learned something: better than predicting the mean training image.
  test_x = splits["test"][0]
  baseline = np.sqrt(np.mean((test_x - splits["train"][0].mean(axis=0)) ** 2))
  assert summary["test_rmse"] < 0.95 * baseline
  assert summary["train"]["loss"] == pytest.approx(summary["train"]["bce"] + 0.01 *
                                                   summary["train"]["decorrelation"], rel=1e-4)
  reloaded = mnist.load_trained(config.model_dir)
  np.testing.assert_allclose(reloaded(test_x[:5]).numpy(), model(test_x[:5]).numpy(), atol=1e-6)
  codes = mnist.bottleneck(reloaded, test_x)
  assert codes.shape == (60, 2)
  png = str(tmp_path / "embedding.png")
  plotting.plot_embeddings([("a", codes), ("b", codes)], splits["test"][1], png)
  assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_train_mnist_cli(tmp_path, rng):
  folder = str(tmp_path / "mnist")
  write_mnist(folder, rng, 120, 20)
  r = run_tool("train_mnist", f"--model_dir={tmp_path / 'run'}", f"--mnist_dir={folder}",
               "--num_validation=20", "--bottleneck=3", "--epochs=1", "--batch_size=25",
               "--decorrelation_weight=0.005", "--threads=1")
  assert r.returncode == 0, r.stderr[-2000:]
  assert "test RMSE" in r.stdout
  assert os.path.isfile(tmp_path / "run" / "summary.json")
  r = run_tool("train_mnist", f"--model_dir={tmp_path / 'x'}",
               f"--mnist_dir={tmp_path / 'nowhere'}")
  assert r.returncode == 1 and r.stderr.startswith("error:") and "MNIST" in r.stderr
  assert "Traceback" not in r.stderr


MIRRORED = r"""
import json, sys
import numpy as np
from tfcae.training import loop as training
training.configure_devices(2)
import tensorflow as tf
from tfcae.methods.decorrelation import Decorrelation, decorrelation_penalty
from tfcae.models.mnist import MnistAutoencoder
from tfcae.objectives.terms import BinaryCrossEntropy, Objective
from tfcae.training.config import TrainConfig
strategy = training.make_strategy(TrainConfig(strategy="mirrored"))
assert strategy.num_replicas_in_sync == 2
x = np.random.default_rng(0).uniform(size=(16, 784)).astype(np.float32)
with strategy.scope():
  tf.keras.utils.set_random_seed(0)
  model = MnistAutoencoder(4, objective=Objective([BinaryCrossEntropy(), Decorrelation(1.)]))
  model.compile(optimizer=tf.keras.optimizers.Adam(0.))
logged = model.fit(tf.data.Dataset.from_tensors(x), epochs=1, verbose=0).history
codes = model.encode(x).numpy()
print(json.dumps({"logged": logged["decorrelation"][-1],
                  "halves": [float(decorrelation_penalty(codes[:8])),
                             float(decorrelation_penalty(codes[8:]))],
                  "global": float(decorrelation_penalty(codes))}))
"""


@pytest.mark.slow
def test_penalty_under_mirrored_strategy_is_per_replica():
  """Two replicas: the logged term is the mean of the per-replica batches' penalties."""
  r = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True,
                     timeout=300, cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert r.returncode == 0, r.stderr[-3000:]
  result = json.loads(r.stdout.strip().splitlines()[-1])
  assert result["logged"] == pytest.approx(np.mean(result["halves"]), rel=1e-4)
  assert result["logged"] != pytest.approx(result["global"], rel=1e-2)
