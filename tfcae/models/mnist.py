"""The fully connected MNIST autoencoder of Laakom et al., "On reducing the correlation of
bottleneck representations in autoencoders" (their Table 1 model).

Encoder 784-128-64-n, decoder n-64-128-784, LeakyReLU between hidden layers, a linear
bottleneck, sigmoid output and binary cross-entropy. It is not an image codec (no entropy
model, no bitstream), so it is deliberately not in `tfcae.models.MODELS`; but it derives from
the same `ObjectiveModel` step and objective seam (tfcae.objectives.terms) as every codec: the loss is
`Objective([BinaryCrossEntropy(), Decorrelation(α)])` (tfcae.training.mnist) over a `StepContext` whose `y` is the
bottleneck, so the decorrelation term is literally the one the CAEs use.
"""
import tensorflow as tf

from tfcae.models.base import ObjectiveModel

__all__ = ["MnistAutoencoder"]


class MnistAutoencoder(ObjectiveModel):
  """784-128-64-n-64-128-784 autoencoder; inputs are flattened images in [0, 1].

  LeakyReLU uses Keras's default negative slope (0.3), as a Keras model written from the
  paper's description would.
  """

  def __init__(self, bottleneck=8, hidden=(128, 64), num_inputs=784, objective=None,
               **kwargs):
    super().__init__(objective, **kwargs)
    self.bottleneck = int(bottleneck)
    self.hidden = tuple(int(h) for h in hidden)
    self.num_inputs = int(num_inputs)
    layers = tf.keras.layers
    encoder = []
    for i, units in enumerate(self.hidden):
      encoder += [layers.Dense(units, name=f"enc_dense_{i}"),
                  layers.LeakyReLU(name=f"enc_act_{i}")]
    encoder.append(layers.Dense(self.bottleneck, name="bottleneck"))
    decoder = []
    for i, units in enumerate(reversed(self.hidden)):
      decoder += [layers.Dense(units, name=f"dec_dense_{i}"),
                  layers.LeakyReLU(name=f"dec_act_{i}")]
    decoder.append(layers.Dense(self.num_inputs, name="logits"))
    self.encoder = tf.keras.Sequential(encoder, name="encoder")
    self.decoder = tf.keras.Sequential(decoder, name="decoder")
    self.build((None, self.num_inputs))

  def get_config(self):
    return {"bottleneck": self.bottleneck, "hidden": list(self.hidden),
            "num_inputs": self.num_inputs}

  def forward(self, x, training=False):
    """x [B, 784] in [0, 1] -> dict(y: bottleneck [B, n], logits, x_hat = sigmoid(logits))."""
    y = self.encoder(x, training=training)
    logits = self.decoder(y, training=training)
    return {"y": y, "logits": logits, "x_hat": tf.sigmoid(logits)}

  def encode(self, x):
    return self.encoder(x, training=False)
