"""The training distortions (tfcae.objectives.terms): MS-SSIM equals TensorFlow's where TF's is
well defined and keeps a finite gradient where TF's is NaN (a fresh decoder's output)."""
import numpy as np
import tensorflow as tf

from tfcae.models import build_model
from tfcae.objectives import terms as objectives

from conftest import sample_image


def _crops(size=176, count=2):
  image = sample_image().astype(np.float32)
  return tf.constant(np.stack([image[i * 40:i * 40 + size, :size] for i in range(count)]))


def test_ms_ssim_equals_tensorflow_on_distorted_images():
  rng = np.random.default_rng(0)
  x = _crops()
  for shape in ((176, 176), (177, 181)):  # odd sides: TF's symmetric padding
    a = x[:, :shape[0], :shape[1]] if shape[0] <= 176 else tf.pad(
        x, [[0, 0], [0, 1], [0, 5], [0, 0]], mode="SYMMETRIC")
    b = tf.clip_by_value(a + rng.normal(0, 12, a.shape).astype(np.float32), 0, 255)
    ours = objectives.ms_ssim(a, b).numpy()
    theirs = tf.image.ssim_multiscale(a, b, 255.).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert 0.5 < ours.min() < 1


def test_ms_ssim_gradient_is_finite_for_a_fresh_decoder():
  """TF's Π relu(cs)^p has a NaN gradient where a scale's cs ≤ 0; a randomly initialised
  model's output hits that on real crops (the divergence on the first training step)."""
  tf.keras.utils.set_random_seed(1)
  model = build_model({"architecture": "factorized", "num_filters": 16,
                       "latent_channels": 16})
  x = _crops()
  with tf.GradientTape(persistent=True) as tape:
    x_hat = model.forward(x, training=True)["x_hat"]
    ours = tf.reduce_mean(objectives.ms_ssim(x, x_hat))
    theirs = tf.reduce_mean(tf.image.ssim_multiscale(x, x_hat, 255.))
  assert not np.all(np.isfinite(tape.gradient(theirs, x_hat).numpy()))  # the defect
  for g in [tape.gradient(ours, x_hat)] + tape.gradient(ours, model.trainable_variables):
    assert g is None or np.all(np.isfinite(g.numpy()))
  assert np.isfinite(ours.numpy()) and 0 <= ours.numpy() < 1
