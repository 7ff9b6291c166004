"""Classical image codecs through Pillow, and rate-distortion sweeps over image sets.

Codecs and the settings used (chosen to give each codec its usual, fair setup):

  jpeg      libjpeg(-turbo) via Pillow; quality 1..95; 4:2:0 chroma subsampling
            (`subsampling=2`), optimised Huffman tables (`optimize=True`, lossless,
            only saves bytes).
  webp      libwebp lossy; quality 0..100; method 6 (slowest, best RD).
  jpeg2000  OpenJPEG; irreversible 9/7 wavelet, multi-component colour transform
            ON (`mct=1`; Pillow's default is off, which codes R, G, B separately
            and wastes rate). The "quality" is the compression ratio of the single
            quality layer (`quality_mode="rates"`, `quality_layers=[ratio]`):
            OpenJPEG's ratio is relative to 24 bits per pixel, so ratio r gives
            about 24 / r bpp. HIGHER ratio = FEWER bits, the reverse of the others.
  avif      AV1 in AVIF via Pillow's built-in plugin (libavif); quality 0..100;
            4:2:0; speed 6 (libavif's default); one thread, so times compare.
  heic      HEVC in HEIF via pillow-heif (libheif + x265); quality 0..100;
            4:2:0 (pillow-heif's default chroma).

`sweep` encodes every image at every quality and reports, per image and as
means, bpp from the encoded size, PSNR and MS-SSIM on RGB (tfcae.metrics), and
encode/decode wall times in seconds, in the CompressAI JSON layout of
tfcae.results.
"""
import io
import time

import numpy as np
from PIL import Image

from tfcae import TfcaeError
from tfcae import metrics
from tfcae.fileio import load_rgb_image
from tfcae.results import make_results

CODECS = ("jpeg", "webp", "jpeg2000", "avif", "heic")

# Default sweeps: ~10 points spanning about 0.1 to 2 bpp on Kodak (calibrated on
# the 24 images; see docs/results.md for the bpp actually reached).
DEFAULT_QUALITIES = {
    "jpeg": (5, 10, 20, 30, 40, 50, 60, 70, 80, 90),
    "webp": (0, 5, 15, 30, 45, 60, 72, 80, 87, 93),
    "jpeg2000": (12, 16, 20, 28, 40, 56, 80, 112, 160, 240),  # compression ratios
    "avif": (8, 18, 28, 38, 48, 58, 66, 74, 82, 88),
    "heic": (8, 15, 22, 28, 34, 40, 46, 52, 57, 62),
}

# Valid quality ranges, inclusive.
QUALITY_RANGES = {
    "jpeg": (1, 95),
    "webp": (0, 100),
    "jpeg2000": (1, 1000),
    "avif": (0, 100),
    "heic": (0, 100),
}

# True where a larger "quality" means more bits (all but jpeg2000's ratio).
QUALITY_INCREASES_RATE = {c: c != "jpeg2000" for c in CODECS}

_heif_registered = False


def _check_codec(codec):
  if codec not in CODECS:
    raise TfcaeError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")


def check_quality(codec, quality):
  """Returns `quality` as an int, or raises TfcaeError if it is out of range."""
  _check_codec(codec)
  lo, hi = QUALITY_RANGES[codec]
  try:
    q = int(quality)
    valid = q == quality or (isinstance(quality, str) and str(q) == quality.strip())
  except (TypeError, ValueError):
    valid = False
  if not valid or not lo <= q <= hi:
    what = "compression ratio" if codec == "jpeg2000" else "quality"
    raise TfcaeError(f"{codec}: {what} must be an integer in [{lo}, {hi}], got {quality!r}")
  return q


def _heif():
  """Imports pillow-heif and registers its Pillow opener once."""
  global _heif_registered
  try:
    import pillow_heif
  except ImportError:
    raise TfcaeError("codec heic needs pillow-heif (pip install pillow-heif)") from None
  if not _heif_registered:
    pillow_heif.register_heif_opener()
    _heif_registered = True
  return pillow_heif


def _jpeg2000_resolutions(height, width):
  # OpenJPEG needs every side >= 2^(resolutions-1); 6 levels (the default) for
  # big images, fewer for small crops instead of failing.
  levels = 6
  while levels > 1 and min(height, width) < 2 ** (levels - 1):
    levels -= 1
  return levels


def encode(image, codec, quality):
  """Encodes a uint8 [H, W, 3] array; returns the bitstream bytes."""
  q = check_quality(codec, quality)
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise TfcaeError(f"expected a uint8 [height, width, 3] image, got {image.dtype} {image.shape}")
  pil = Image.fromarray(image, "RGB")
  buf = io.BytesIO()
  if codec == "jpeg":
    pil.save(buf, format="JPEG", quality=q, subsampling=2, optimize=True)
  elif codec == "webp":
    pil.save(buf, format="WEBP", quality=q, method=6)
  elif codec == "jpeg2000":
    pil.save(buf, format="JPEG2000", irreversible=True, mct=1, quality_mode="rates",
             quality_layers=[q], num_resolutions=_jpeg2000_resolutions(*image.shape[:2]))
  elif codec == "avif":
    pil.save(buf, format="AVIF", quality=q, subsampling="4:2:0", speed=6, max_threads=1)
  elif codec == "heic":
    pillow_heif = _heif()
    pillow_heif.from_pillow(pil).save(buf, quality=q, chroma=420)
  return buf.getvalue()


def decode(data, codec):
  """Decodes a bitstream made by `encode`; returns a uint8 [H, W, 3] array."""
  _check_codec(codec)
  if codec == "heic":
    _heif()
  try:
    with Image.open(io.BytesIO(data)) as im:
      im.load()
      array = np.asarray(im.convert("RGB"), dtype=np.uint8)
  except (OSError, ValueError, SyntaxError) as e:
    raise TfcaeError(f"{codec}: cannot decode bitstream ({e.__class__.__name__}: {e})") from None
  return array


def parse_qualities(codec, spec):
  """'5,10,20' -> (5, 10, 20) checked for `codec`; None or '' -> the default sweep."""
  _check_codec(codec)
  if spec is None or (isinstance(spec, str) and not spec.strip()):
    return DEFAULT_QUALITIES[codec]
  parts = spec.split(",") if isinstance(spec, str) else list(spec)
  qualities = tuple(check_quality(codec, p.strip() if isinstance(p, str) else p)
                    for p in parts if not (isinstance(p, str) and not p.strip()))
  if len(set(qualities)) != len(qualities):
    raise TfcaeError(f"{codec}: duplicate qualities in {spec!r}")
  return qualities


def _settings(codec):
  import PIL
  versions = f"Pillow {PIL.__version__}"
  if codec == "heic":
    versions += f", pillow-heif {_heif().__version__}"
  settings = {
      "jpeg": "4:2:0, optimize=True",
      "webp": "method=6",
      "jpeg2000": "irreversible 9/7, mct=1, quality_mode=rates (quality = compression ratio)",
      "avif": "4:2:0, speed=6, max_threads=1",
      "heic": "4:2:0 (x265)",
  }[codec]
  return f"{codec} via {versions}; {settings}"


def evaluate_image(image, codec, quality, name="image"):
  """Encodes and decodes one image; returns its per-image record."""
  start = time.perf_counter()
  data = encode(image, codec, quality)
  encoding_time = time.perf_counter() - start
  start = time.perf_counter()
  decoded = decode(data, codec)
  decoding_time = time.perf_counter() - start
  if decoded.shape != image.shape:
    raise TfcaeError(f"{codec}: decoded shape {decoded.shape} differs from {image.shape}")
  height, width = image.shape[:2]
  return {
      "image": name,
      "bpp": metrics.bpp(len(data), height, width),
      "psnr-rgb": metrics.psnr(image, decoded),
      "ms-ssim-rgb": metrics.ms_ssim(image, decoded),
      "encoding_time": encoding_time,
      "decoding_time": decoding_time,
  }


def sweep(codec, image_paths, qualities=None, progress=True):
  """Rate-distortion sweep of one codec: every image at every quality.

  Args:
    codec: one of CODECS.
    image_paths: list of image files (8-bit RGB; each side >= 161 pixels for MS-SSIM).
    qualities: iterable of qualities, a comma string, or None for the default sweep.
    progress: show a tqdm progress bar on stderr.

  Returns:
    A results dict (tfcae.results.make_results), one operating point per quality.
  """
  import os
  qualities = parse_qualities(codec, qualities)
  image_paths = list(image_paths)
  if not image_paths:
    raise TfcaeError("no images to evaluate")
  images = []
  for path in image_paths:
    image = load_rgb_image(path)
    if min(image.shape[:2]) < metrics.min_ms_ssim_side():
      raise TfcaeError(f"{path}: image of {image.shape[0]}x{image.shape[1]} is too small for "
                       f"MS-SSIM (each side must be >= {metrics.min_ms_ssim_side()})")
    images.append((os.path.basename(path), image))
  bar = None
  if progress:
    from tqdm import tqdm
    bar = tqdm(total=len(qualities) * len(images), desc=codec, unit="img", leave=False)
  points = []
  try:
    for q in qualities:
      records = []
      for name, image in images:
        records.append(evaluate_image(image, codec, q, name))
        if bar is not None:
          bar.update(1)
      points.append((f"q={q}", records))
  finally:
    if bar is not None:
      bar.close()
  results = make_results(codec, _settings(codec), points)
  results["results"]["quality"] = [float(q) for q in qualities]
  return results


def at_size(image, codec, max_bytes):
  """The highest-quality encoding of `image` with `codec` that fits in `max_bytes`
  (bisection over the quality; file sizes grow with it). Returns (quality, bytes) or
  (None, None) when even the lowest quality is larger."""
  _check_codec(codec)
  if not QUALITY_INCREASES_RATE[codec]:
    raise TfcaeError(f"{codec}: its quality is not a rate knob that grows with size")
  lo, hi = QUALITY_RANGES[codec]
  best = (None, None)
  while lo <= hi:
    q = (lo + hi) // 2
    data = encode(image, codec, q)
    if len(data) <= max_bytes:
      best, lo = (q, data), q + 1
    else:
      hi = q - 1
  return best
