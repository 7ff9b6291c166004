"""tfcae.objectives.metrics against TensorFlow's own PSNR / MS-SSIM and a float64 reference."""
import io
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import correlate1d

from tfcae.io.fileio import load_rgb_image
from tfcae.objectives import metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = [os.path.join(REPO, "data", "sample", "eval", f)
           for f in ("kodim04.png", "kodim15.png", "kodim23.png")]

tf = pytest.importorskip("tensorflow")


def _jpeg(x, quality):
  buf = io.BytesIO()
  Image.fromarray(x).save(buf, format="JPEG", quality=quality)
  return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _noisy(x, rng, amplitude):
  return np.clip(x.astype(int) + rng.integers(-amplitude, amplitude + 1, x.shape), 0,
                 255).astype(np.uint8)


def _ms_ssim_float64(x, y, max_val=255.):
  """Plain float64 transcription of TF's algorithm (dense, no tricks)."""
  x = x.astype(np.float64)
  y = y.astype(np.float64)
  g = np.exp(-0.5 * (np.arange(11) - 5.0) ** 2 / 1.5 ** 2)
  g /= g.sum()

  def filt(a):
    return correlate1d(correlate1d(a, g, axis=0)[5:-5], g, axis=1)[:, 5:-5]

  def down(a):
    h, w = a.shape[:2]
    a = np.pad(a, ((0, h % 2), (0, w % 2), (0, 0)), mode="symmetric")
    h, w = a.shape[:2]
    return a.reshape(h // 2, 2, w // 2, 2, -1).mean(axis=(1, 3))

  c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
  mcs = []
  for scale in range(5):
    if scale:
      x, y = down(x), down(y)
    mx, my, exy, exx, eyy = (filt(v) for v in (x, y, x * y, x * x, y * y))
    lum = (2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1)
    cs = (2 * (exy - mx * my) + c2) / (exx - mx ** 2 + eyy - my ** 2 + c2)
    ssim = (lum * cs).mean(axis=(0, 1))
    mcs.append(np.maximum(cs.mean(axis=(0, 1)), 0))
  mcs.pop()
  f = np.stack(mcs + [np.maximum(ssim, 0)], axis=-1)
  return float(np.mean(np.prod(f ** np.array(metrics.POWER_FACTORS), axis=-1)))


def _image_pairs():
  """(name, x, y) pairs: random images of awkward sizes and real distorted images."""
  rng = np.random.default_rng(1234)
  pairs = []
  for h, w in ((161, 161), (203, 177), (256, 384)):
    x = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    pairs.append((f"random{h}x{w}", x, _noisy(x, rng, 40)))
    pairs.append((f"uncorrelated{h}x{w}", x, rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
  for path in SAMPLES:
    x = load_rgb_image(path)
    name = os.path.basename(path)
    pairs.append((name + "-jpeg20", x, _jpeg(x, 20)))
    pairs.append((name + "-noise", x, _noisy(x, rng, 15)))
  return pairs


PAIRS = _image_pairs()


def test_bpp():
  assert metrics.bpp(1000, 100, 80) == 1.0
  assert metrics.bpp(49152, 512, 768) == 1.0
  assert metrics.bpp(0, 5, 5) == 0.0
  assert metrics.bpp(3, 2, 3) == pytest.approx(4.0)
  with pytest.raises(ValueError):
    metrics.bpp(10, 0, 5)
  with pytest.raises(ValueError):
    metrics.bpp(-1, 5, 5)


@pytest.mark.parametrize("name,x,y", PAIRS, ids=[p[0] for p in PAIRS])
def test_psnr_matches_tf(name, x, y):
  expected = float(tf.image.psnr(x, y, 255))
  assert metrics.psnr(x, y) == pytest.approx(expected, abs=1e-5)
  # Float inputs on a [0, 1] scale give the same number.
  assert metrics.psnr(x / 255., y / 255., max_val=1.) == pytest.approx(expected, abs=1e-5)


def test_psnr_identical_and_known_value():
  x = np.full((4, 4, 3), 100, np.uint8)
  assert metrics.psnr(x, x) == math.inf
  y = x + 1  # MSE 1 -> 20 log10(255)
  assert metrics.psnr(x, y) == pytest.approx(48.1308036, abs=1e-6)


def test_mse_is_over_all_pixels_and_channels_without_uint8_wraparound():
  x = np.zeros((2, 2, 3), np.uint8)
  y = np.zeros((2, 2, 3), np.uint8)
  y[0, 0, 0] = 255  # 255² over 12 entries; uint8 arithmetic would wrap
  assert metrics.mse(x, y) == pytest.approx(255. ** 2 / 12)
  assert metrics.mse(y, x) == metrics.mse(x, y) and metrics.mse(x, x) == 0.
  with pytest.raises(ValueError, match="different shapes"):
    metrics.mse(x, y[:1])


@pytest.mark.parametrize("name,x,y", PAIRS, ids=[p[0] for p in PAIRS])
def test_ms_ssim_matches_tf(name, x, y):
  ours = metrics.ms_ssim(x, y)
  # TF computes in float32; on these images its rounding error is below 1e-5.
  # (On some Kodak images with large flat areas TF itself is off by up to
  # ~1e-4 from an exact evaluation; see docs/results.md.)
  assert ours == pytest.approx(float(tf.image.ssim_multiscale(x, y, 255)), abs=1e-5)
  # Against an exact float64 evaluation, the tolerance is much tighter.
  assert ours == pytest.approx(_ms_ssim_float64(x, y), abs=1e-6)


def test_ms_ssim_value_range_and_float_input():
  name, x, y = PAIRS[-2]  # a real image with JPEG q=20
  value = metrics.ms_ssim(x, y)
  assert 0.8 < value < 0.999
  assert metrics.ms_ssim(x, x) == pytest.approx(1.0, abs=1e-6)
  assert metrics.ms_ssim(x / 255., y / 255., max_val=1.) == pytest.approx(value, abs=1e-6)


def test_ms_ssim_minimum_size():
  assert metrics.min_ms_ssim_side() == 161
  rng = np.random.default_rng(0)
  ok = rng.integers(0, 256, (161, 300, 3), dtype=np.uint8)
  metrics.ms_ssim(ok, ok)
  for shape in ((160, 300, 3), (300, 160, 3), (32, 32, 3)):
    small = rng.integers(0, 256, shape, dtype=np.uint8)
    with pytest.raises(ValueError, match="too small for MS-SSIM.*at least 161"):
      metrics.ms_ssim(small, small)


def test_shape_errors():
  a = np.zeros((200, 200, 3), np.uint8)
  with pytest.raises(ValueError, match="different shapes"):
    metrics.ms_ssim(a, a[:199])
  with pytest.raises(ValueError, match="different shapes"):
    metrics.psnr(a, a[:, :199])
  with pytest.raises(ValueError, match="height, width, channels"):
    metrics.psnr(a[..., 0], a[..., 0])


def test_ms_ssim_db():
  assert metrics.ms_ssim_db(0.9) == pytest.approx(10.0)
  assert metrics.ms_ssim_db(0.99) == pytest.approx(20.0)
  assert metrics.ms_ssim_db(1.0) == math.inf


def test_import_does_not_load_tensorflow():
  code = "import sys, tfcae.objectives.metrics; assert 'tensorflow' not in sys.modules, 'TF imported'"
  subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
