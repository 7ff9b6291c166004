"""CAE-P (tfcae/models/caep.py): the stochastic-rounding quantizer, the architecture, the
CAE-ADMM distortions, and bit-exact files through bin/compress and bin/decompress."""
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import SAMPLE_EVAL, run_tool, tiny_config
from tfcae.models import MODELS, build_model, edge_pad
from tfcae.nn.quantizers import stochastic_round
from tfcae.objectives.terms import Distortion, StepContext
from tfcae.training.config import TrainConfig

TINY = {"architecture": "caep", "num_filters": 8, "latent_channels": 4, "caep_blocks": 1}


def test_stochastic_round_gradient_is_identity():
  t = tf.Variable(tf.random.normal([64, 5], stddev=3., seed=2))
  w = tf.random.normal([64, 5], seed=3)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(w * stochastic_round(t, training=True))
  np.testing.assert_array_equal(tape.gradient(loss, t).numpy(), w.numpy())
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(w * stochastic_round(t, training=False))
  np.testing.assert_array_equal(tape.gradient(loss, t).numpy(), w.numpy())


def test_stochastic_round_mean_is_t_and_values_are_neighbours():
  t = tf.constant([-2.7, -0.5, 0., 0.1, 0.5, 1.25, 3.9])
  samples = stochastic_round(tf.tile(t[None], [40000, 1]), training=True, seed=7).numpy()
  floor = np.floor(t.numpy())
  assert np.all((samples == floor) | (samples == floor + 1))
  # Standard error ≤ 0.5 / sqrt(40000) = 0.0025: a 0.01 tolerance is 4σ.
  np.testing.assert_allclose(samples.mean(axis=0), t.numpy(), atol=0.01)
  np.testing.assert_array_equal(samples[:, 2], 0.)  # integers stay put
  # Inference: deterministic rounding, half to even like TFC's range coder.
  np.testing.assert_array_equal(stochastic_round(t, training=False).numpy(),
                                [-3., -0., 0., 0., 0., 1., 4.])
  both = stochastic_round(t, training=tf.constant(False))
  np.testing.assert_array_equal(both.numpy(), np.round(t.numpy()))


def test_caep_architecture_and_forward():
  model = build_model(TINY)
  assert MODELS["caep"] is type(model) and model.stride == 8
  assert build_model(model.get_config()).get_config() == model.get_config()
  x = tf.random.uniform([2, 32, 48, 3], 0, 255, seed=1)
  out = model.forward(x, training=True)
  assert out["y"].shape == (2, 4, 6, 4) and out["x_hat"].shape == x.shape
  assert out["bits"].shape == (2,)
  np.testing.assert_array_equal(out["y_hat"].numpy(), np.round(out["y_hat"].numpy()))
  assert np.all(np.abs(out["y_hat"].numpy() - out["y"].numpy()) < 1.)
  x_hat = model.forward(x, training=False)["x_hat"].numpy()
  assert x_hat.min() >= 0. and x_hat.max() <= 255.
  names = [layer.name for layer in model.encoder_layers()]
  assert [n for n in names if n.startswith("conv_")] == [f"conv_{i}" for i in range(6)]
  assert "res_0" in names
  # The Rate term reaches only the prior (stop_gradient into the entropy model).
  with tf.GradientTape() as tape:
    bits = tf.reduce_sum(model.forward(x, training=True)["bits"])
  grads = tape.gradient(bits, model.analysis_transform.trainable_variables +
                        list(model.prior.trainable_variables))
  n_enc = len(model.analysis_transform.trainable_variables)
  assert all(g is None for g in grads[:n_enc])
  assert any(g is not None for g in grads[n_enc:])


@pytest.mark.slow
def test_caep_compress_decompress_matches_forward(rng):
  model = build_model(TINY)
  model.prepare_for_compression()
  for h, w in ((5, 7), (24, 40)):  # 5×7 pads to the 16×16 minimum
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    data = model.compress(tf.constant(image))
    decoded = model.decompress(data).numpy()
    assert decoded.shape == (h, w, 3)
    ph, pw = (int(v) for v in model.padded_shape(h, w))
    x = edge_pad(tf.cast(image, tf.float32)[None], ph, pw)
    x_hat = model.forward(x, training=False)["x_hat"][0, :h, :w]
    expected = tf.saturate_cast(tf.round(x_hat), tf.uint8).numpy()
    # Same latents (round(E(x)) = what the file holds); the decoder runs in another graph,
    # so allow a one-level difference from float summation order, and no more.
    assert np.abs(decoded.astype(int) - expected.astype(int)).max() <= 1
    assert np.mean(decoded == expected) > 0.99


def test_caep_distortions_and_config(rng):
  x = tf.constant(rng.uniform(0, 255, size=(2, 192, 192, 3)), tf.float32)
  x_hat = tf.clip_by_value(x + tf.random.normal(x.shape, stddev=10., seed=1), 0., 255.)
  ctx = StepContext(None, x, {"x_hat": x_hat}, training=False)
  mse = float(ctx.distortion("mse"))
  ssim = float(ctx.distortion("ssim"))
  ms_ssim = float(ctx.distortion("ms-ssim"))
  assert 0. < ssim < 1. and 0. < ms_ssim < 1.
  psnr = 10 * np.log10(255. ** 2 / mse)
  expected = ms_ssim + ssim + 10 * mse / 255. ** 2 + (45 - psnr) / 1000
  assert float(ctx.distortion("caep-mix")) == pytest.approx(expected, rel=1e-5)
  assert Distortion(1., "caep-mix").name == "caep_mix"
  perfect = StepContext(None, x, {"x_hat": x}, training=False)
  assert float(perfect.distortion("ssim")) == pytest.approx(0., abs=1e-5)
  config = TrainConfig(model_dir="m", train_images="t", architecture="caep", distortion="caep-mix",
                       patch_size=128)
  with pytest.raises(ValueError, match="caep-mix needs --patch_size >= 176"):
    config.validate()
  config = TrainConfig(model_dir="m", train_images="t", architecture="caep", patch_size=132)
  with pytest.raises(ValueError, match="stride"):
    config.validate()
  assert TrainConfig(architecture="caep", caep_blocks=3).architecture_config()["caep_blocks"] == 3


@pytest.fixture(scope="module")
def caep_dir(tmp_path_factory):
  from tfcae.training import loop as training
  model_dir = tmp_path_factory.mktemp("tiny_caep")
  training.train(tiny_config(model_dir, architecture="caep", caep_blocks=1, latent_channels=8,
                             steps_per_epoch=20, learning_rate=2e-3))
  return str(model_dir)


@pytest.mark.slow
def test_caep_files_are_bit_exact_through_the_cli(caep_dir, tmp_path):
  from tfcae.serving.codec import Codec
  image = os.path.join(SAMPLE_EVAL, "kodim23.png")
  for name in ("a.tfcae", "b.tfcae"):
    r = run_tool("compress", f"--model_dir={caep_dir}", f"--input={image}",
                 f"--output={tmp_path / name}")
    assert r.returncode == 0, r.stderr
  data = (tmp_path / "a.tfcae").read_bytes()
  assert data == (tmp_path / "b.tfcae").read_bytes()
  r = run_tool("decompress", f"--model_dir={caep_dir}", f"--input={tmp_path / 'a.tfcae'}",
               f"--output={tmp_path / 'a.png'}")
  assert r.returncode == 0, r.stderr
  decoded = np.asarray(Image.open(tmp_path / "a.png"))
  original = np.asarray(Image.open(image).convert("RGB"))
  assert decoded.shape == original.shape
  codec = Codec(caep_dir)
  np.testing.assert_array_equal(decoded, codec.decompress(data))
  # In-process compression gives the very same bytes.
  assert codec.compress(original) == data
  # The file decodes to what the trained Keras model (restored from its checkpoint)
  # reconstructs from round(E(x)), up to one level of float summation order.
  import json
  from tfcae.training.loop import CONFIG_FILE, build_objective
  with open(os.path.join(caep_dir, CONFIG_FILE), encoding="utf-8") as f:
    config = TrainConfig(**json.load(f))
  model = build_model(config.architecture_config(), objective=build_objective(config))
  tf.train.Checkpoint(model=model).restore(
      tf.train.latest_checkpoint(os.path.join(caep_dir, "checkpoints"))).expect_partial()
  h, w = original.shape[:2]
  x = edge_pad(tf.cast(original, tf.float32)[None], *model.padded_shape(h, w))
  expected = tf.saturate_cast(tf.round(model.forward(x, False)["x_hat"][0, :h, :w]),
                              tf.uint8).numpy()
  assert np.abs(decoded.astype(int) - expected.astype(int)).max() <= 1
  assert np.mean(decoded == expected) > 0.99
