"""tfcae.deploy.reduction: the reduced encoder keeps the latents and the bitstream."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import sample_image
from tfcae.deploy import reduction
from tfcae.models import build_model


def _set_gdn(layer, beta, gamma):
  """Sets a TFC GDN's β and γ values through their square-root re-parameterisation."""
  for parameter, value in ((layer.beta_parameter, beta), (layer.gamma_parameter, gamma)):
    parameter.variable.assign(np.sqrt(np.asarray(value, np.float32) + parameter.offset ** 2))


def _zero_filter(conv, o, bias=None):
  kernel = conv.kernel.numpy()
  kernel[..., o] = 0.
  conv.kernel.assign(kernel)
  if bias is not None:
    b = conv.bias.numpy()
    b[o] = bias
    conv.bias.assign(b)


def _zero_input(conv, i):
  kernel = conv.kernel.numpy()
  kernel[:, :, i, :] = 0.
  conv.kernel.assign(kernel)


def sparse_factorized_model(seed=0):
  """A factorized model (N=8, M=6) with hand-made structured zeros, one case each:

  conv_0: filter 1 dead with bias 0 (zero channel: removed everywhere); filter 3 dead
    with bias ≠ 0 and read by conv_1 (constant through GDN: kept, "dead not removable");
    filter 6 dead with bias ≠ 0, conv_1's input 6 dead (folded into gdn_0's β, removed);
    input channel 2 (blue) dead (selected away).
  conv_1: input channel 4 dead while gdn_0 must still compute channel 4 for the other
    denominators (ChannelSelect); filter 0 dead with bias 0.
  conv_2: latent channels 2 (bias ≠ 0) and 4 (bias 0) dead (re-inserted constants).
  GDN γ are dense (random) except γ[2, 5] = 0, so channels really are coupled.
  """
  tf.keras.utils.set_random_seed(seed)
  model = build_model({"architecture": "factorized", "num_filters": 8, "latent_channels": 6})
  rng = np.random.default_rng(seed)
  _, conv0, gdn0, conv1, gdn1, conv2 = model.analysis_transform.layers
  for gdn in (gdn0, gdn1):
    gamma = rng.uniform(0.01, .2, (8, 8))
    gamma[2, 5] = 0.
    _set_gdn(gdn, rng.uniform(.5, 1.5, 8), gamma)
  for conv in (conv0, conv1, conv2):
    conv.bias.assign(rng.normal(0., .5, conv.bias.shape).astype(np.float32))
    # Weights large enough that the latents span many quantization bins.
    conv.kernel.assign(conv.kernel * 4.)
  _zero_filter(conv0, 1, bias=0.)
  _zero_filter(conv0, 3, bias=.7)
  _zero_filter(conv0, 6, bias=-.9)
  _zero_input(conv1, 6)
  _zero_input(conv1, 4)
  _zero_input(conv0, 2)
  _zero_filter(conv1, 0, bias=0.)
  _zero_filter(conv2, 2, bias=-1.3)
  _zero_filter(conv2, 4, bias=0.)
  return model


def test_plan_removes_what_can_be_removed():
  model = sparse_factorized_model()
  plans = {p.name: p for p in reduction.plan_reduction(model)}
  assert plans["conv_0"].keep_in == [0, 1] and plans["conv_0"].select_before
  assert plans["conv_0"].keep_out == [0, 2, 3, 4, 5, 7]
  assert plans["conv_0"].dead_filters == [1, 3, 6] and plans["conv_0"].dead_kept == [3]
  assert plans["gdn_0"].folded == [6] and plans["gdn_0"].keep_out == [0, 2, 3, 4, 5, 7]
  # Channel 4 is computed (it feeds the other denominators) but conv_1 does not read it.
  assert plans["conv_1"].keep_in == [0, 2, 3, 5, 7] and plans["conv_1"].select_before
  assert plans["conv_1"].keep_out == [1, 2, 3, 4, 5, 6, 7]
  assert plans["gdn_1"].zero_outputs == [0] and plans["gdn_1"].keep_out == [1, 2, 3, 4, 5, 6, 7]
  assert plans["conv_2"].keep_in == [1, 2, 3, 4, 5, 6, 7] and not plans["conv_2"].select_before
  assert plans["conv_2"].keep_out == [0, 1, 3, 5]
  assert plans["conv_2"].constant_outputs == pytest.approx({2: -1.3, 4: 0.})
  # The folded constant: β_i += γ_6i·|b_6| for every kept channel i.
  gdn0 = model.analysis_transform.get_layer("gdn_0")
  keep = plans["gdn_0"].keep_out
  np.testing.assert_allclose(plans["gdn_0"].beta_fold, gdn0.gamma.numpy()[6, keep] * .9,
                             rtol=1e-6)


def test_reduced_encoder_keeps_latents_and_shrinks():
  model = sparse_factorized_model()
  reduced, _ = reduction.reduce_encoder(model)
  shapes = {l.name: l.kernel.shape for l in reduced.layers if hasattr(l, "kernel")}
  assert shapes == {"conv_0": (9, 9, 2, 6), "conv_1": (5, 5, 5, 7), "conv_2": (5, 5, 7, 4)}
  x = tf.random.stateless_uniform((2, 80, 112, 3), (1, 2), 0., 255.)
  y, y_reduced = model.analysis_transform(x), reduced(x)
  assert y_reduced.shape == y.shape
  assert float(tf.reduce_max(abs(y - y_reduced))) <= 1e-4
  # The removed latent channels are exactly the constants.
  assert np.all(y_reduced.numpy()[..., 2] == np.float32(-1.3))
  assert np.all(y_reduced.numpy()[..., 4] == 0.)
  # Without the dead channels' kernels the latents would differ: the zeros really mattered
  # (guards against a test model whose removed channels were irrelevant anyway).
  assert float(tf.reduce_max(abs(y))) > 1.


@pytest.mark.slow
def test_reduced_compressor_writes_the_same_bitstream():
  model = sparse_factorized_model()
  model.prepare_for_compression()
  compressor = reduction.ReducedCompressor(model)
  for image in (sample_image()[:100, :130], sample_image("kodim23.png")[200:264, 300:333]):
    expected = model.compress(tf.constant(image)).numpy()
    assert compressor.compress(tf.constant(image)).numpy() == expected
    assert model.decompress(tf.constant(expected)).shape == image.shape


def test_dense_model_is_unchanged():
  tf.keras.utils.set_random_seed(3)
  model = build_model({"architecture": "factorized", "num_filters": 8})
  reduced, plans = reduction.reduce_encoder(model)
  assert all(p.keep_in == list(range(p.in_channels)) for p in plans if p.kind != "other")
  assert [l.name for l in reduced.layers] == [l.name for l in model.analysis_transform.layers]
  x = tf.random.stateless_uniform((1, 32, 48, 3), (4, 5), 0., 255.)
  assert float(tf.reduce_max(abs(model.analysis_transform(x) - reduced(x)))) <= 1e-5


@pytest.mark.slow
def test_hyperprior_analysis_reduced_same_bitstream():
  tf.keras.utils.set_random_seed(1)
  model = build_model({"architecture": "hyperprior", "num_filters": 8, "latent_channels": 6,
                       "hyper_filters": 4})
  layers = model.analysis_transform.layers
  _zero_filter(layers[1], 5, bias=0.)   # conv_0: zero channel
  # conv_1 does not read gdn_0's channel 2; untrained γ is diagonal, so channel 2 feeds
  # no other denominator and goes too.
  _zero_input(layers[3], 2)
  _zero_filter(layers[7], 1, bias=.4)   # conv_3: constant latent channel
  layers[7].kernel.assign(layers[7].kernel * 8.)
  reduced, plans = reduction.reduce_encoder(model)
  assert plans[1].keep_out == [0, 1, 3, 4, 6, 7] and plans[7].keep_out == [0, 2, 3, 4, 5]
  x = tf.random.stateless_uniform((1, 128, 128, 3), (6, 7), 0., 255.)
  assert float(tf.reduce_max(abs(model.analysis_transform(x) - reduced(x)))) <= 1e-4
  model.prepare_for_compression()
  image = sample_image()[:128, :192]
  assert (reduction.ReducedCompressor(model, reduced).compress(tf.constant(image)).numpy()
          == model.compress(tf.constant(image)).numpy())


def test_channel_insert_and_select_layers():
  x = tf.reshape(tf.range(2 * 3 * 2, dtype=tf.float32), (2, 3, 1, 2))
  insert = reduction.ChannelInsert(4, kept=[3, 1], constants={0: 5., 2: -1.})
  y = insert(x).numpy()
  np.testing.assert_array_equal(y[..., 3], x.numpy()[..., 0])
  np.testing.assert_array_equal(y[..., 1], x.numpy()[..., 1])
  assert np.all(y[..., 0] == 5.) and np.all(y[..., 2] == -1.)
  np.testing.assert_array_equal(reduction.ChannelSelect([1])(x).numpy(), x.numpy()[..., 1:])
  with pytest.raises(ValueError, match="partition"):
    reduction.ChannelInsert(4, kept=[0, 1], constants={1: 0.})


def test_unsupported_chain_is_refused():
  chain = [tf.keras.layers.Conv2D(4, 3), tf.keras.layers.Dense(3)]
  for layer in chain:
    layer.build((None, None, None, 3) if layer is chain[0] else (None, 4))
  with pytest.raises(ValueError):
    reduction.plan_reduction(chain)


@pytest.mark.slow
def test_reduced_encoder_converts_to_tflite():
  model = sparse_factorized_model(seed=2)
  reduced, _ = reduction.reduce_encoder(model)
  x = tf.random.stateless_uniform((1, 64, 96, 3), (8, 9), 0., 255.)
  y = model.analysis_transform(x).numpy()
  # Convert a fresh copy: the converter leaves the converted layers unusable in graphs.
  function = tf.function(lambda t: reduced(t), input_signature=[tf.TensorSpec(x.shape)])
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [function.get_concrete_function()], reduced)
  interpreter = tf.lite.Interpreter(model_content=converter.convert(), num_threads=1)
  interpreter.allocate_tensors()
  interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x.numpy())
  interpreter.invoke()
  y_lite = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
  assert np.abs(y_lite - y).max() <= 1e-4
