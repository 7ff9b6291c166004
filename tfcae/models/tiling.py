"""Tiled analysis and synthesis: the latents and pixels of the whole image, in bounded memory.

A transform's activations grow with the image (the factorized model's analysis holds
≈ 170 bytes per pixel at its first layer), but its outputs depend only on the inputs in
their receptive field. So the image is cut into core tiles of `tile` pixels (a multiple of
the latent stride s), each computed inside a window that adds a halo of at least the
transform's receptive field on every side that is not the image's edge, and cropped back
to its core:

    core   [c0, c1)                        c0 = k · tile, c1 = min(c0 + tile, n)
    window [w0, w0 + tile + 2·halo) ∩ [0, n)   w0 = clip(c0 − halo, 0, n − tile − 2·halo)

Windows start on multiples of s, so every strided convolution's 'same' padding falls as
it does over the whole image, and a window is shifted inwards at the image's bottom and
right edges rather than cut short: all windows of a large image have one shape (what a
device runtime with a static input shape needs, tfcae.deploy.hostcoding), and a core
either has its full halo on a side or lies on the image's edge there, where the window's
padding is the whole image's. So the latents are those of whole-image coding, bar the
rare rounding tie that a convolution summed in another order flips, and the synthesis
is the same up to float rounding (pixels within ±1). Range coding stays over the whole
latent tensor (the file format is unchanged; tiling is how the coder runs): memory is
the tile's activations plus the latents, about (latent channels × 4) / s² bytes per pixel.

The halos are measured, not declared, so a new architecture tiles without saying how:
`receptive_field` takes the support of the gradient of one output position with
respect to the input (exact for convolutions, GDN and the activations the registry's
transforms use; a zero weight is a true non-dependency).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import tensorflow as tf

__all__ = ["AUTO", "DEFAULT_TILE", "AUTO_ABOVE_PIXELS", "resolve_tile", "core_pixels",
           "edge_pad", "receptive_field", "analysis_halo", "synthesis_halo",
           "window", "tiled_analysis", "tiled_synthesis"]

# The coders' default (tile = AUTO): core tiles of DEFAULT_TILE pixels, whose windows
# (640 x 640 with the zoo models' 64-pixel halos) hold ≈ 300 MB of activations for a
# hyperprior, ≈ 100 MB for a factorized model; an image of no more pixels than such a
# window (AUTO_ABOVE_PIXELS: a Kodak image, 768 x 512) is one window, coded exactly as
# before tiling existed.
AUTO = -1
DEFAULT_TILE = 512
AUTO_ABOVE_PIXELS = 640 * 640


def resolve_tile(tile, height, width) -> tf.Tensor:
  """The core tile the coder uses: `tile` (0: whole image), or for AUTO (any negative)
  DEFAULT_TILE above AUTO_ABOVE_PIXELS and the whole image below."""
  tile = tf.convert_to_tensor(tile, tf.int32)
  pixels = tf.cast(height, tf.int64) * tf.cast(width, tf.int64)
  auto = tf.where(pixels > AUTO_ABOVE_PIXELS, DEFAULT_TILE, 0)
  return tf.where(tile < 0, auto, tile)


def core_pixels(tile: int, stride: int) -> int:
  """A requested tile rounded up to a multiple of the latent stride: the core a window
  computes (a window is that plus twice the analysis halo)."""
  return -(-int(tile) // stride) * stride


def edge_pad(image, height, width):
  """Pads [B, h, w, C] at the bottom/right to [B, height, width, C] by repeating edges.

  Unlike reflection this works for any image size (even 1×1), and unlike zeros it adds
  no artificial edge for the transforms to spend bits on.
  """
  pad_h = height - tf.shape(image)[1]
  pad_w = width - tf.shape(image)[2]
  image = tf.concat([image, tf.repeat(image[:, -1:], pad_h, axis=1)], axis=1)
  return tf.concat([image, tf.repeat(image[:, :, -1:], pad_w, axis=2)], axis=2)


def receptive_field(transform: Callable[[tf.Tensor], tf.Tensor], channels: int,
                    step: int, upsampling: bool) -> int:
  """The receptive field of a strided (or up-sampling) transform, measured.

  One input position is perturbed at each of the s phases of the stride (a batch of s
  inputs), and the outputs that change are the ones that depend on it: a dependency
  found, not declared (exact for the registry's convolutions, GDN and activations; a
  zero weight is a true non-dependency). Forward passes only, so it also runs where
  gradients are not recorded (tf.init_scope while a tf.function traces).

  Args:
    transform: float32 [B, n, n, channels] -> its output (Keras layers, inference mode).
    channels: its input channels.
    step: its total stride s (down-sampling: s input pixels per output; up-sampling:
      s output pixels per input).
    upsampling: False for an analysis (pixels -> latents), True for a synthesis.

  Returns:
    Analysis: the extent in pixels of the inputs one latent depends on. Synthesis: the
    extent in latents of the inputs one output pixel depends on. The larger of the two
    axes; the input grows until the changed outputs lie strictly inside it.
  """
  rng = np.random.default_rng(0)
  size = 8 if upsampling else 8 * step  # in input positions
  while size <= 4096:
    phases = 1 if upsampling else step  # the s phases of a pixel under a strided layer
    original = rng.uniform(0., 4. if upsampling else 255., (1, size, size, channels))
    x = np.repeat(original, phases, axis=0)
    centre = size // 2 - (size // 2) % step if not upsampling else size // 2
    for phase in range(phases):
      x[phase, centre + phase, centre + phase] += 3. if upsampling else 100.
    run = lambda v: tf.cast(transform(tf.constant(v, tf.float32)), tf.float32).numpy()  # noqa: E731
    changed = run(x) != run(original)
    offsets = []
    for phase in range(phases):
      where = np.nonzero(changed[phase].any(axis=-1))
      for axis in (0, 1):
        out = where[axis]
        if not out.size:
          continue
        if out.min() == 0 or out.max() == changed.shape[1 + axis] - 1:
          offsets = None
          break
        source = centre + phase
        # Analysis: pixel offsets from each changed latent's anchor; synthesis: latent
        # offsets of each changed pixel's latent.
        offsets.append(source - out * step if not upsampling else source - out // step)
      if offsets is None:
        break
    if offsets:
      offsets = np.concatenate(offsets)
      return int(offsets.max() - offsets.min() + 1)
    size *= 2
  raise ValueError("the transform's receptive field is unbounded or wider than 4096")


def analysis_halo(transform, stride: int) -> int:
  """The analysis windows' halo in pixels: its receptive field, up to a multiple of s."""
  field = receptive_field(transform, 3, stride, upsampling=False)
  return int(math.ceil(field / stride) * stride)


def synthesis_halo(transform, channels: int, stride: int) -> int:
  """The synthesis windows' halo in latents: its receptive field over the latents."""
  return receptive_field(transform, channels, stride, upsampling=True)


def window(index, size, core, halo):
  """The core and window of tile `index` along an axis of `size` (tf scalars or ints).

  Returns:
    (c0, c1, w0, w1): the core [c0, c1) and the window [w0, w1) computed for it.
  """
  c0 = index * core
  c1 = tf.minimum(c0 + core, size)
  w0 = tf.clip_by_value(c0 - halo, 0, tf.maximum(size - core - 2 * halo, 0))
  return c0, c1, w0, tf.minimum(w0 + core + 2 * halo, size)


def _core(tile, extent, step):
  """The core tile in units of `step` (tile ≤ 0: the whole image, one window)."""
  tile = tf.cast(tile, tf.int32)
  return tf.where(tile > 0, (tile + step - 1) // step, tf.maximum(extent, 1))


def _grid(rows, cols, tile_fn, channels_last_dtype):
  """Runs tile_fn(r, c) -> [th, tw, C] over the tile grid, one tile at a time (a tile's
  activations are freed before the next starts), and joins the tiles: [Σth, Σtw, C]."""
  channels = []  # C, as tracing the loop's body finds it (layers that follow need it)

  def traced(r, c):
    tile = tile_fn(r, c)
    channels.append(tile.shape[-1])
    return tile

  def empty():
    return tf.TensorArray(channels_last_dtype, size=0, dynamic_size=True, infer_shape=False)

  def row(r, done):
    def column(c, tiles):
      # Columns stacked along the first axis: TensorArray.concat joins on it.
      return c + 1, tiles.write(c, tf.transpose(traced(r, c), [1, 0, 2]))

    _, tiles = tf.while_loop(lambda c, _: c < cols, column, (tf.constant(0), empty()),
                             parallel_iterations=1)
    return r + 1, done.write(r, tf.transpose(tiles.concat(), [1, 0, 2]))

  _, rows_done = tf.while_loop(lambda r, _: r < rows, row, (tf.constant(0), empty()),
                               parallel_iterations=1)
  joined = rows_done.concat()
  joined.set_shape([None, None, channels[0] if channels else None])
  return joined


def tiled_analysis(encode: Callable[[tf.Tensor], tf.Tensor], image: tf.Tensor, tile,
                   stride: int, halo: int, padded_shape) -> tf.Tensor:
  """y = encode(x) of the edge-padded image (edge_pad), computed window by window; each
  window is cut from the image and padded on its own, so no padded copy of the image
  exists.

  Args:
    encode: float32 pixels [1, h, w, 3] -> float32 latents [1, h/s, w/s, C].
    image: uint8 [1, H, W, 3], cast to float32 one window at a time.
    tile: the core tile in pixels (rounded up to a multiple of s); ≤ 0: the whole image.
    stride: s, the latents' down-sampling.
    halo: the window's halo in pixels (a multiple of s, analysis_halo).
    padded_shape: (Hp, Wp), multiples of s: the size the image is edge-padded to.

  Returns:
    float32 [1, Hp/s, Wp/s, C].
  """
  height, width = padded_shape
  core = _core(tile, tf.maximum(height, width) // stride, stride) * stride

  def tile_fn(r, c):
    r0, r1, v0, v1 = window(r, height, core, halo)
    c0, c1, u0, u1 = window(c, width, core, halo)
    # Slices stop at the image's edge; the padded rest of a window repeats it.
    x = edge_pad(image[:, v0:v1, u0:u1], v1 - v0, u1 - u0)
    y = encode(tf.cast(x, tf.float32))
    return y[0, (r0 - v0) // stride:(r1 - v0) // stride, (c0 - u0) // stride:(c1 - u0) // stride]

  rows, cols = -(-height // core), -(-width // core)
  return _grid(rows, cols, tile_fn, tf.float32)[None]


def tiled_synthesis(decode: Callable[[tf.Tensor], tf.Tensor], y_hat: tf.Tensor, tile,
                    stride: int, halo: int, height, width) -> tf.Tensor:
  """The uint8 image of ŷ, x̂ = decode(ŷ) computed window by window, rounded, and cut to
  the image's size tile by tile.

  Args:
    decode: float32 [1, h, w, C] -> pixels [1, h·s, w·s, 3] (any float type).
    y_hat: float32 [1, h, w, C].
    tile: the core tile in pixels (rounded up to a multiple of s); ≤ 0: the whole image.
    stride: s.
    halo: the window's halo in latents (synthesis_halo).
    height, width: the image's size (at most h·s, w·s).

  Returns:
    uint8 [height, width, 3]: round(x̂), saturated.
  """
  rows_l, cols_l = tf.shape(y_hat)[1], tf.shape(y_hat)[2]
  core = _core(tile, tf.maximum(rows_l, cols_l), stride)

  def tile_fn(r, c):
    r0, r1, v0, v1 = window(r, rows_l, core, halo)
    c0, c1, u0, u1 = window(c, cols_l, core, halo)
    x_hat = decode(y_hat[:, v0:v1, u0:u1])
    x_hat = x_hat[0, (r0 - v0) * stride:tf.minimum(r1 * stride, height) - v0 * stride,
                  (c0 - u0) * stride:tf.minimum(c1 * stride, width) - u0 * stride]
    return tf.saturate_cast(tf.round(x_hat), tf.uint8)

  rows, cols = -(-rows_l // core), -(-cols_l // core)
  return _grid(rows, cols, tile_fn, tf.uint8)
