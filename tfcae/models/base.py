"""CompressionModel: the generic Keras model every tfcae architecture derives from.

A sub-class provides the transforms and the entropy model (in the spirit of TFC's
models/bls2017.py), as CompressAI's models are split:

  analysis_transform, synthesis_transform   Keras layers: encode(x) -> y, decode(ŷ) -> x̂
  _make_entropy_models(compression)         -> its TFC entropy model(s)
  latent_codec()                            -> the tfcae.models.latent_codecs view over them:
                                               ŷ and bits in training, strings in coding

and the class attribute `stride` (total down-sampling, the padding multiple); the number
of strings a file holds is its codec's. Everything else lives here once: the generic train/test step driven by the
objective seam (tfcae.objectives.terms), padding, the bitstream, and the `compress` /
`decompress` / `estimate_bits` tf.functions with fixed input signatures that become the
SavedModel's serving signatures.
"""
import hashlib
import json

import numpy as np
import tensorflow as tf

from tfcae import TfcaeError
from tfcae.io import bitstream, safedecode
from tfcae.models import tiling
from tfcae.models.tiling import edge_pad

__all__ = ["to_float32", "edge_pad", "ObjectiveModel", "CompressionModel"]



def to_float32(tensor):
  """The tensor in float32 (itself if it is already): transforms under a mixed-precision
  policy (--precision) compute in float16/bfloat16, while TFC's entropy models and every
  loss term work in float32."""
  return tf.cast(tensor, tf.float32)


class ObjectiveModel(tf.keras.Model):
  """The generic Keras step, driven by the objective seam (tfcae.objectives.terms): the loss
  terms decide what is minimised and the hooks act on gradients and weights. Every
  trainable model (the codecs, the MNIST autoencoder of the decorrelation study) derives
  from it; a sub-class provides `forward(x, training) -> dict(x_hat, ...)`."""

  def __init__(self, objective=None, **kwargs):
    super().__init__(**kwargs)
    self.objective = objective
    self._trackers = {}

  def forward(self, x, training):
    raise NotImplementedError

  def call(self, x, training=False):
    return self.forward(x, training=training)["x_hat"]

  def compile(self, **kwargs):
    if self.objective is None:
      raise TfcaeError(f"{type(self).__name__}: compile() needs an objective to train, e.g. "
                       "objective=tfcae.objectives.terms.rate_distortion(0.01)")
    super().compile(loss=None, metrics=None, loss_weights=None, weighted_metrics=None, **kwargs)
    self._trackers = {n: tf.keras.metrics.Mean(name=n) for n in self.objective.log_names()}
    for hook in self.objective.hooks:
      hook.build(self)

  @property
  def metrics(self):
    return list(self._trackers.values())

  def _record(self, logs):
    """Updates the trackers of what this step logged and returns those only: hooks log in
    train_step, so validation reports no hook values (rather than their idle zeros)."""
    logged = [name for name in self._trackers if name in logs]
    for name in logged:
      self._trackers[name].update_state(logs[name])
    return {name: self._trackers[name].result() for name in logged}

  def train_step(self, x):
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    with tf.GradientTape() as tape:
      ctx = self.objective.context(self, x, self.forward(x, training=True), training=True)
      loss, logs = self.objective(ctx)
      # Optimizers sum gradients over replicas; scale so the step is that of the global mean.
      scaled_loss = loss / replicas
      # float16 transforms (--precision=mixed_float16): Keras wraps the optimizer in a
      # LossScaleOptimizer, whose loss scaling keeps small gradients from underflowing.
      loss_scale = isinstance(self.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
      if loss_scale:
        scaled_loss = self.optimizer.get_scaled_loss(scaled_loss)
    variables = self.trainable_variables
    gradients = tape.gradient(scaled_loss, variables)
    if loss_scale:
      gradients = self.optimizer.get_unscaled_gradients(gradients)
    for hook in self.objective.hooks:
      gradients = hook.transform_gradients(self, gradients, variables)
    self.optimizer.apply_gradients(zip(gradients, variables))
    for hook in self.objective.hooks:
      logs.update(hook.after_apply(self, ctx))
    return self._record(logs)

  def test_step(self, x):
    ctx = self.objective.context(self, x, self.forward(x, training=False), training=False)
    _, logs = self.objective(ctx)
    return self._record(logs)

  def predict_step(self, x):
    return self.forward(x, training=False)["x_hat"]


class CompressionModel(ObjectiveModel):
  """Base class; see the module docstring."""

  stride = 1
  architecture = None  # registry name, set by sub-classes
  # The down-sampling of the latents y (None: `stride`; a hyperprior's stride is its side
  # information's) and the class of the latent codec (its `layout` is what a file decoder
  # checks in Python, recorded in tfcae_export.json).
  latent_stride = None
  latent_codec_class = None
  # The serving signatures, declared once: method name -> the name of its output. The
  # export (tfcae.serving) saves each method under its name, and the inputs are the
  # method's input_signature; a model that takes another input (a quality, a gain)
  # overrides the method with a longer signature, or adds one here.
  SIGNATURES = {"compress": "bitstream", "compress_tiled": "bitstream",
                "decompress": "image", "decompress_limited": "image",
                "decompress_tiled": "image", "estimate_bits": "bits",
                "compress_symbols": "bitstream"}
  # What the synthesis sees in training ("noise" or "mixed"); a training setting that
  # tfcae.training.loop sets, not part of the architecture (the weights do not depend on it).
  decoder_quantization = "noise"

  def __init__(self, objective=None, **kwargs):
    super().__init__(objective, **kwargs)
    self.fingerprint = tf.Variable(b"\0" * bitstream.FINGERPRINT_BYTES, trainable=False,
                                   dtype=tf.string, name="fingerprint")
    self._compression_ready = False
    self._halos = None

  # --- to implement (and forward) ---------------------------------------------------
  def _make_entropy_models(self, compression):
    """Returns a tuple of TFC entropy models (built with or without coding tables)."""
    raise NotImplementedError

  def entropy_models(self):
    """The table-backed coders after prepare_for_compression(); training ones before.

    Before, they are rebuilt on each call (cheap, no tables), as in TFC's bls2017.
    """
    if self._compression_ready:
      return tuple(self._coders)
    return self._make_entropy_models(compression=False)

  def encode(self, x, training=False):
    """x [B, H, W, 3] in [0, 255] -> latents y (float32 whatever the Keras policy)."""
    return to_float32(self.analysis_transform(x, training=training))

  def decode(self, y_hat, training=False):
    """Quantised latents ŷ -> x̂ [B, H, W, 3]."""
    return self.synthesis_transform(y_hat, training=training)

  def forward(self, x, training):
    y = self.encode(x, training)
    mixed = training and self.decoder_quantization == "mixed"
    outputs = self.latent_codec().forward(y, training, mixed)
    return dict(outputs, y=y, x_hat=self.decode(outputs["y_hat"], training))

  @property
  def num_strings(self):
    """How many range-coded strings a file of this model holds: its codec's."""
    return self.latent_codec().num_strings

  def latent_codec(self):
    """The model's latent codec (tfcae.models.latent_codecs): ŷ and bits in training, the
    strings in coding; a view over the model's entropy models and modules."""
    raise NotImplementedError

  def encoder_layers(self):
    """The layers that run on the sender (for projections, accounting, TFLite)."""
    raise NotImplementedError

  def hyper_transforms(self):
    """(hyper-analysis, hyper-synthesis) Keras layers of a model with side information
    (both run on the sender), else None."""
    return None

  @classmethod
  def string_layout(cls) -> list:
    """Per string of a file, its table kind, latent stride and coding (LatentCodec.layout)."""
    return cls.latent_codec_class.layout(cls.latent_stride or cls.stride)

  def serving_functions(self) -> dict:
    """{signature name: (tf.function, output name)} of the SavedModel (SIGNATURES)."""
    return {name: (getattr(self, name), output) for name, output in self.SIGNATURES.items()}

  def get_config(self):
    """The architecture (what the fingerprint and a rebuild need)."""
    raise NotImplementedError

  def calibrate(self, x):
    """Data-dependent initialisation on a first training batch x, before the first step
    of a fresh run (not on resume): e.g. the activation steps of an integer
    hyper-synthesis. Most models have none."""

  def _with_gdn(self, config):
    # The GDN form is listed only when it is not the default, so the configs (and the
    # fingerprints) of models trained before it was a setting are unchanged.
    if getattr(self, "gdn", "simplified") != "simplified":
      config["gdn"] = self.gdn
    return config

  # --- compression ------------------------------------------------------------------
  def prepare_for_compression(self):
    """Builds the range-coding tables from the trained prior (TFC `compression=True`)."""
    self._coders = list(self._make_entropy_models(compression=True))
    self._compression_ready = True
    self.fingerprint.assign(self.compute_fingerprint())

  def state_variables(self):
    """The model's state: every variable but the Keras metric trackers' running totals."""
    metric_ids = {id(v) for m in self.metrics for v in m.variables}
    return [v for v in self.variables if id(v) not in metric_ids]

  def weight_variables(self):
    """The transforms' and priors' variables: what a warm start or a SavedModel restore
    copies (not the fingerprint, nor the objective's state such as masks or multipliers)."""
    objective_ids = {id(v) for v in getattr(self.objective, "variables", [])}
    return [v for v in self.state_variables()
            if v is not self.fingerprint and v.dtype != tf.string and
            id(v) not in objective_ids]

  def compute_fingerprint(self):
    """First 8 bytes of SHA-256 over the architecture config and every weight."""
    h = hashlib.sha256(json.dumps(self.get_config(), sort_keys=True).encode())
    for v in sorted(self.state_variables(), key=lambda v: v.name):
      if v is self.fingerprint or v.dtype == tf.string:
        continue
      h.update(v.name.encode())
      h.update(np.ascontiguousarray(v.numpy()).tobytes())
    return h.digest()[:bitstream.FINGERPRINT_BYTES]

  @property
  def compression_ready(self):
    """Whether prepare_for_compression() has run (coding tables built, fingerprint set)."""
    return self._compression_ready

  def padded_shape(self, height, width):
    """The size a [height, width] image is edge-padded to before coding (`edge_pad`)."""
    s = self.stride
    return (height + s - 1) // s * s, (width + s - 1) // s * s

  # --- tiling (tfcae.models.tiling) ---------------------------------------------------
  @property
  def coding_stride(self) -> int:
    """The latents' down-sampling s: what windows and tiles are multiples of."""
    return int(self.latent_stride or self.stride)

  def tiling_halos(self) -> dict:
    """{"analysis_halo": pixels, "synthesis_halo": latents, "latent_stride": s}: the
    windows' halos, measured once (tiling.receptive_field) on the trained transforms."""
    if self._halos is None:
      with tf.init_scope():  # measured eagerly, also while a tf.function traces
        step = self.coding_stride
        self._halos = {
            "analysis_halo": tiling.analysis_halo(lambda x: self.encode(x), step),
            "synthesis_halo": tiling.synthesis_halo(lambda y: self.decode(y),
                                                    self.latent_codec().channels, step),
            "latent_stride": step}
    return dict(self._halos)

  def check_tile(self, tile, height, width) -> tf.Tensor:
    """The tile of a height x width image (int32; 0: the whole image; tiling.AUTO: the
    default, tiling.resolve_tile), refused in-graph when it is smaller than the analysis
    transform's receptive field."""
    tile = tiling.resolve_tile(tile, height, width)
    halo = self.tiling_halos()["analysis_halo"]
    check = tf.debugging.Assert(tf.logical_or(tile <= 0, tile >= halo), [
        f"a tile must be 0 (the whole image) or at least the receptive field, {halo} "
        "pixels; got", tile])
    with tf.control_dependencies([check]):
      return tf.identity(tile)

  def encode_image(self, image, tile) -> tf.Tensor:
    """uint8 [H, W, 3] -> the latents y of the edge-padded image, window by window."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    return tiling.tiled_analysis(self.encode, image[None], self.check_tile(tile, height, width),
                                 self.coding_stride, self.tiling_halos()["analysis_halo"],
                                 self.padded_shape(height, width))

  def decode_image(self, y_hat, height, width, tile) -> tf.Tensor:
    """ŷ -> the uint8 [height, width, 3] image, window by window."""
    return tiling.tiled_synthesis(self.decode, y_hat, self.check_tile(tile, height, width),
                                  self.coding_stride, self.tiling_halos()["synthesis_halo"],
                                  height, width)

  # --- coding: the serving signatures ------------------------------------------------
  @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image")])
  def compress(self, image):
    """uint8 [H, W, 3] image -> scalar string: the complete tfcae file (the transforms run
    in tiles above 640 x 640 pixels: tiling.resolve_tile)."""
    return self.compress_tiled(image, tf.constant(tiling.AUTO))

  @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image"),
                                tf.TensorSpec([], tf.int32, name="tile")])
  def compress_tiled(self, image, tile):
    """`compress` with the analysis run in core tiles of `tile` pixels (0: the whole
    image at once; tiling.AUTO: `compress`'s choice); the same file bar rare rounding
    ties (tfcae.models.tiling)."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    strings, index_check = self.latent_codec().compress(self.encode_image(image, tile))
    return bitstream.pack_tf(self.fingerprint, height, width, strings, index_check)

  @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="bitstream")])
  def decompress(self, data):
    """Scalar string (a tfcae file) -> uint8 [H, W, 3]; InvalidArgumentError if bad.
    Images over bitstream.DEFAULT_MAX_PIXELS are refused (see decompress_limited)."""
    # One copy of the decoder's graph in a SavedModel (≈ 0.5 MB): decompress_tiled's.
    return self.decompress_limited(data, tf.constant(bitstream.DEFAULT_MAX_PIXELS, tf.int64))

  @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="bitstream"),
                                tf.TensorSpec([], tf.int64, name="max_pixels")])
  def decompress_limited(self, data, max_pixels):
    """`decompress` with the largest image size it accepts, in pixels (0: no limit)."""
    return self.decompress_tiled(data, max_pixels, tf.constant(tiling.AUTO))

  @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="bitstream"),
                                tf.TensorSpec([], tf.int64, name="max_pixels"),
                                tf.TensorSpec([], tf.int32, name="tile")])
  def decompress_tiled(self, data, max_pixels, tile):
    """`decompress_limited` with the synthesis run in core tiles of `tile` pixels (0:
    the whole image at once; tiling.AUTO: `decompress`'s choice)."""
    return self._decompress(data, max_pixels, tile)

  def _decompress(self, data, max_pixels, tile):
    height, width, strings, index_check = bitstream.parse_tf(data, self.fingerprint,
                                                             self.num_strings, max_pixels)
    return self._decode_strings(self.latent_codec(), height, width, strings, index_check,
                                tile)

  def _decode_strings(self, codec, height, width, strings, index_check, tile):
    """The image of a parsed file's strings, decoded by `codec`."""
    padded_shape = self.padded_shape(height, width)
    # Before any latent tensor exists: a payload shorter than the tables allow for this
    # many symbols cannot be the image the header claims (tfcae.io.safedecode).
    minimum = codec.min_payload_bytes(padded_shape)
    checks = bitstream.require_in_order([
        (tf.cast(tf.strings.length(string), tf.int64) >= least, safedecode.TOO_SHORT)
        for string, least in zip(strings, minimum)])
    with tf.control_dependencies(checks):
      y_hat = codec.decompress([tf.identity(s) for s in strings], padded_shape, index_check)
      return self.decode_image(y_hat, height, width, tile)

  @tf.function(input_signature=[tf.TensorSpec([1, None, None, None], tf.int32, name="symbols"),
                                tf.TensorSpec([], tf.int32, name="height"),
                                tf.TensorSpec([], tf.int32, name="width")])
  def compress_symbols(self, symbols, height, width):
    """Host-side coding: the quantised latents of a [height, width] image (as a TFLite
    encoder outputs them, tfcae.deploy.tflite) -> scalar string, the complete tfcae file."""
    strings, index_check = self.latent_codec().compress_symbols(symbols)
    return bitstream.pack_tf(self.fingerprint, height, width, strings, index_check)

  @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image")])
  def estimate_bits(self, image):
    """The entropy model's estimate of the payload size in bits (rounded latents)."""
    y = self.encode_image(image, tf.constant(tiling.AUTO))
    return tf.reduce_sum(self.latent_codec().forward(y, training=False)["bits"])
