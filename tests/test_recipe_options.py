"""Training-recipe settings: the learning-rate schedule over progress, the
wall-clock budget, GDN forms, mixed quantisation, the mean-scale hyperprior, cached data."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfcae.models import build_model
from tfcae.training import loop as training
from tfcae.training.config import TrainConfig

from conftest import SAMPLE_TRAIN, sample_image, tiny_config


def _lr(schedule, p):
  return float(schedule(int(round(p * schedule.total_steps))).numpy())


def test_progress_schedule_shapes():
  cos = training.ProgressSchedule("cosine", 1e-3, 1000, warmup=0.1)
  assert _lr(cos, 0.) == 0.
  assert _lr(cos, 0.05) == pytest.approx(5e-4, rel=1e-5)  # half-way up the warm-up
  assert _lr(cos, 0.1) == pytest.approx(1e-3, rel=1e-5)  # the peak
  assert _lr(cos, 0.55) == pytest.approx(5e-4, rel=1e-4)  # half-way down the cosine
  assert _lr(cos, 1.) == pytest.approx(0., abs=1e-9)
  assert _lr(cos, 2.) == pytest.approx(0., abs=1e-9)  # past the end: clipped, never < 0
  step = training.ProgressSchedule("step", 1e-3, 100, decay_at=0.8, factor=0.1)
  assert _lr(step, 0.79) == pytest.approx(1e-3) and _lr(step, 0.8) == pytest.approx(1e-4)
  const = training.ProgressSchedule("constant", 2e-4, 100, warmup=0.5)
  assert _lr(const, 0.25) == pytest.approx(1e-4) and _lr(const, 0.9) == pytest.approx(2e-4)


def test_elapsed_time_drives_the_schedule():
  elapsed = tf.Variable(0., dtype=tf.float64)
  s = training.ProgressSchedule("cosine", 1e-3, 10, elapsed=elapsed, budget_seconds=60.)
  assert float(s(0)) == pytest.approx(1e-3)
  elapsed.assign(30.)
  assert float(s(0)) == pytest.approx(5e-4, rel=1e-5)
  elapsed.assign(90.)  # past the budget: clipped
  assert float(s(0)) == pytest.approx(0., abs=1e-9)  # the step count is ignored
  assert np.isfinite(float(training.ProgressSchedule("cosine", 1e-3, 0)(5)))


@pytest.mark.parametrize("overrides, message", [
    (dict(lr_warmup=1.), "lr_warmup"),
    (dict(time_budget_minutes=-1.), "time_budget"),
    (dict(architecture="caep", gdn="original"), "--gdn applies to .*, not caep"),
])
def test_recipe_settings_validation(tmp_path, overrides, message):
  with pytest.raises(ValueError, match=message):
    tiny_config(tmp_path, **overrides).validate()


@pytest.mark.slow
def test_time_budget_stops_training_and_resumes_to_nothing(tmp_path):
  config = tiny_config(tmp_path, epochs=1000, steps_per_epoch=20, time_budget_minutes=0.15,
                       lr_schedule="cosine", lr_warmup=0.1)
  summary = training.train(config)
  assert 9. <= summary["train_seconds"] < 60.
  assert 0 < summary["steps"] < 1000 * 20
  # The budget is spent: the same command resumes, trains nothing and re-exports.
  again = training.train(config)
  assert again["steps"] == summary["steps"]
  assert again["fingerprint"] == summary["fingerprint"]


def test_gdn_forms_and_configs():
  simplified = build_model({"architecture": "factorized", "num_filters": 8,
                            "latent_channels": 8})
  assert "gdn" not in simplified.get_config()  # older configs and fingerprints unchanged
  original = build_model({"architecture": "factorized", "num_filters": 8,
                          "latent_channels": 8, "gdn": "original"})
  assert original.get_config()["gdn"] == "original"
  gdn = original.analysis_transform.get_layer("gdn_0")
  assert float(gdn.alpha) == 2. and float(gdn.epsilon) == .5
  assert float(simplified.analysis_transform.get_layer("gdn_0").alpha) == 1.
  x = tf.random.uniform([1, 32, 32, 3], 0., 255.)
  assert np.all(np.isfinite(original(x).numpy()))
  with pytest.raises(ValueError, match="unknown GDN form"):
    build_model({"architecture": "factorized", "num_filters": 8, "gdn": "nope"})


@pytest.mark.parametrize("architecture", ["factorized", "hyperprior", "meanscale"])
def test_mixed_quantization_feeds_rounded_latents_to_the_decoder(architecture):
  config = {"architecture": architecture, "num_filters": 8, "latent_channels": 8}
  model = build_model(config)
  x = tf.random.uniform([2, 64, 64, 3], 0., 255., seed=1)
  noisy = model.forward(x, training=True)["y_hat"]
  model.decoder_quantization = "mixed"
  with tf.GradientTape() as tape:
    out = model.forward(x, training=True)
    loss = tf.reduce_mean(tf.square(out["x_hat"] - x))
  y_hat = out["y_hat"].numpy()
  if architecture == "factorized":
    offset = model.latent_codec().offset().numpy()
    np.testing.assert_allclose(y_hat - offset, np.round(y_hat - offset), atol=1e-4)
  elif architecture == "hyperprior":
    np.testing.assert_array_equal(y_hat, np.round(y_hat))
  assert not np.allclose(noisy.numpy(), y_hat)
  # Straight-through: the analysis transform still gets gradients through the decoder.
  grads = tape.gradient(loss, model.analysis_transform.trainable_variables)
  assert all(g is not None and np.any(g.numpy() != 0) for g in grads)


@pytest.mark.slow
def test_meanscale_codes_around_the_predicted_mean():
  model = build_model({"architecture": "meanscale", "num_filters": 8, "latent_channels": 8,
                       "hyper_filters": 8})
  assert model.hyper_synthesis_transform.layers[-1].filters == 16  # mean and scale
  model.prepare_for_compression()
  image = sample_image()[:96, :130]
  data = model.compress(tf.constant(image))
  decoded = model.decompress(data).numpy()
  assert decoded.shape == image.shape
  np.testing.assert_array_equal(model.decompress(data).numpy(), decoded)
  x = tf.cast(image, tf.float32)[None]
  from tfcae.models import edge_pad
  x = edge_pad(x, 128, 192)
  expected = tf.saturate_cast(tf.round(model.forward(x, training=False)["x_hat"]),
                              tf.uint8)[0, :96, :130].numpy()
  assert np.mean(np.abs(expected.astype(int) - decoded)) < 0.01  # decoder = forward pass
  # a device sends round(y); the host codec re-centres it on the predicted mean
  np.testing.assert_array_equal(model.latent_codec().offset().numpy(), np.zeros(8))


def test_cached_training_data_matches_the_files():
  from tfcae.data import images as data
  files = data.image_files(SAMPLE_TRAIN)[:3]
  cached = data.train_dataset(files, 64, 2, seed=0, cache=True)
  for batch in cached.take(3):
    assert batch.shape == (2, 64, 64, 3) and batch.dtype == tf.float32
    assert 0. <= float(tf.reduce_min(batch)) and float(tf.reduce_max(batch)) <= 255.


def test_train_config_round_trips_the_new_fields(tmp_path):
  config = tiny_config(tmp_path, gdn="original", decoder_quantization="mixed",
                       time_budget_minutes=1.5, lr_warmup=0.05, jit_compile=True)
  path = tmp_path / "c.json"
  path.write_text(config.to_json())
  assert TrainConfig.load(str(path)) == config
  assert config.architecture_config()["gdn"] == "original"
