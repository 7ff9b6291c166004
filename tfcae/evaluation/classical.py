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

Each codec is a `ClassicalCodec` sub-class registered by name in `CODEC_REGISTRY` (a new
codec is one class with its decorator); the functions below take the name.

`sweep` encodes every image at every quality and reports, per image and as
means, bpp from the encoded size, PSNR and MS-SSIM on RGB (tfcae.objectives.metrics), and
encode/decode wall times in seconds, in the CompressAI JSON layout of
tfcae.evaluation.results.
"""
from __future__ import annotations

import io
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image

from tfcae import TfcaeError
from tfcae.deploy.timing import timed
from tfcae.evaluation.results import make_results
from tfcae.io.fileio import load_rgb_image
from tfcae.objectives import metrics
from tfcae.registry import Registry

__all__ = ["CODECS", "CODEC_REGISTRY", "ClassicalCodec", "DEFAULT_QUALITIES",
           "QUALITY_INCREASES_RATE", "QUALITY_RANGES", "at_size", "check_quality", "decode",
           "encode", "evaluate_image", "get", "parse_qualities", "sweep"]

_heif_registered = False


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


# One class per codec, registered under its name (the --codec of bin/bench and bin/compare).
CODEC_REGISTRY = Registry("codec", attribute="name", error=TfcaeError)


class ClassicalCodec:
  """A classical codec through Pillow: its name, its quality knob and its settings.

  A sub-class sets the class attributes and `_save`, and registers itself with
  `@CODEC_REGISTRY.register`; `encode`, `decode`, the sweeps and the comparison at equal
  size then know it by name, with no other edit.
  """

  name = None
  # The default sweep: ~10 points spanning about 0.1 to 2 bpp on Kodak (calibrated on the
  # 24 images; see docs/results.md for the bpp actually reached).
  default_qualities = ()
  quality_range = (0, 100)  # valid qualities, inclusive
  quality_increases_rate = True  # a larger quality means more bits
  quality_name = "quality"  # what the quality is, for error messages
  settings = ""  # how it is configured, recorded in the results' description

  def check_quality(self, quality: int | str) -> int:
    """Checks a quality setting of this codec.

    Args:
      quality: an integer, or a string holding one.

    Returns:
      `quality` as an int.

    Raises:
      TfcaeError: it is not an integer in `quality_range`.
    """
    lo, hi = self.quality_range
    try:
      q = int(quality)
      valid = q == quality or (isinstance(quality, str) and str(q) == quality.strip())
    except (TypeError, ValueError):
      valid = False
    if not valid or not lo <= q <= hi:
      raise TfcaeError(f"{self.name}: {self.quality_name} must be an integer in [{lo}, {hi}], "
                       f"got {quality!r}")
    return q

  def encode(self, image: np.ndarray, quality: int | str) -> bytes:
    """Encodes an RGB image.

    Args:
      image: a uint8 [height, width, 3] array.
      quality: the codec's quality setting (checked by check_quality).

    Returns:
      The bitstream bytes.

    Raises:
      TfcaeError: the quality is out of range or the image is not uint8 RGB.
    """
    q = self.check_quality(quality)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
      raise TfcaeError(f"expected a uint8 [height, width, 3] image, got {image.dtype} "
                       f"{image.shape}")
    buf = io.BytesIO()
    self._save(Image.fromarray(image, "RGB"), buf, q)
    return buf.getvalue()

  def _save(self, pil, buf, quality):
    raise NotImplementedError

  def decode(self, data: bytes) -> np.ndarray:
    """Decodes a bitstream made by `encode` (Pillow reads every format it writes).

    Args:
      data: the bitstream bytes.

    Returns:
      The uint8 [height, width, 3] image.

    Raises:
      TfcaeError: Pillow cannot decode the bytes.
    """
    try:
      with Image.open(io.BytesIO(data)) as im:
        im.load()
        array = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as e:
      raise TfcaeError(f"{self.name}: cannot decode bitstream ({e.__class__.__name__}: "
                       f"{e})") from None
    return array

  def versions(self) -> str:
    """The libraries that code it, with their versions (for the results' description)."""
    import PIL
    return f"Pillow {PIL.__version__}"

  def description(self) -> str:
    """'<name> via <libraries>; <settings>': the results' description of a sweep."""
    return f"{self.name} via {self.versions()}; {self.settings}"


@CODEC_REGISTRY.register
class Jpeg(ClassicalCodec):
  """libjpeg(-turbo); 4:2:0 chroma; optimised Huffman tables (lossless, only saves bytes)."""

  name = "jpeg"
  default_qualities = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90)
  quality_range = (1, 95)
  settings = "4:2:0, optimize=True"

  def _save(self, pil, buf, quality):
    pil.save(buf, format="JPEG", quality=quality, subsampling=2, optimize=True)


@CODEC_REGISTRY.register
class Webp(ClassicalCodec):
  """libwebp lossy; method 6 (slowest, best rate-distortion)."""

  name = "webp"
  default_qualities = (0, 5, 15, 30, 45, 60, 72, 80, 87, 93)
  settings = "method=6"

  def _save(self, pil, buf, quality):
    pil.save(buf, format="WEBP", quality=quality, method=6)


@CODEC_REGISTRY.register
class Jpeg2000(ClassicalCodec):
  """OpenJPEG; irreversible 9/7 wavelet with the multi-component colour transform; the
  quality is the compression ratio of a single layer (about 24 / ratio bpp)."""

  name = "jpeg2000"
  default_qualities = (12, 16, 20, 28, 40, 56, 80, 112, 160, 240)  # compression ratios
  quality_range = (1, 1000)
  quality_increases_rate = False  # a higher ratio is fewer bits
  quality_name = "compression ratio"
  settings = "irreversible 9/7, mct=1, quality_mode=rates (quality = compression ratio)"

  def _save(self, pil, buf, quality):
    pil.save(buf, format="JPEG2000", irreversible=True, mct=1, quality_mode="rates",
             quality_layers=[quality], num_resolutions=_jpeg2000_resolutions(pil.height,
                                                                             pil.width))


@CODEC_REGISTRY.register
class Avif(ClassicalCodec):
  """AV1 in AVIF (Pillow's libavif plugin); 4:2:0; speed 6; one thread, so times compare."""

  name = "avif"
  default_qualities = (8, 18, 28, 38, 48, 58, 66, 74, 82, 88)
  settings = "4:2:0, speed=6, max_threads=1"

  def _save(self, pil, buf, quality):
    pil.save(buf, format="AVIF", quality=quality, subsampling="4:2:0", speed=6,
             max_threads=1)


@CODEC_REGISTRY.register
class Heic(ClassicalCodec):
  """HEVC in HEIF through pillow-heif (libheif + x265); 4:2:0."""

  name = "heic"
  default_qualities = (8, 15, 22, 28, 34, 40, 46, 52, 57, 62)
  settings = "4:2:0 (x265)"

  def _save(self, pil, buf, quality):
    _heif().from_pillow(pil).save(buf, quality=quality, chroma=420)

  def decode(self, data):
    _heif()  # registers the HEIF opener with Pillow
    return super().decode(data)

  def versions(self):
    return f"{super().versions()}, pillow-heif {_heif().__version__}"


def get(codec: str) -> ClassicalCodec:
  """A codec by name.

  Args:
    codec: one of CODECS.

  Returns:
    A new instance of the class registered as `codec`.

  Raises:
    TfcaeError: an unknown name (the message lists the registered ones).
  """
  return CODEC_REGISTRY.get(codec)()


# The codecs' class attributes as plain tables by name, read from the registry.
CODECS = CODEC_REGISTRY.names()
DEFAULT_QUALITIES = {name: cls.default_qualities for name, cls in CODEC_REGISTRY.items()}
QUALITY_RANGES = {name: cls.quality_range for name, cls in CODEC_REGISTRY.items()}
QUALITY_INCREASES_RATE = {name: cls.quality_increases_rate
                          for name, cls in CODEC_REGISTRY.items()}


def check_quality(codec: str, quality: int | str) -> int:
  """Checks a quality setting of the codec named `codec`.

  Args:
    codec: one of CODECS.
    quality: an integer, or a string holding one.

  Returns:
    `quality` as an int.

  Raises:
    TfcaeError: an unknown codec, or a quality that is not an integer in its range.
  """
  return get(codec).check_quality(quality)


def encode(image: np.ndarray, codec: str, quality: int | str) -> bytes:
  """Encodes an RGB image with a codec named by string.

  Args:
    image: a uint8 [height, width, 3] array.
    codec: one of CODECS.
    quality: the codec's quality setting.

  Returns:
    The bitstream bytes.

  Raises:
    TfcaeError: an unknown codec, a quality out of range, or an image that is not uint8
      RGB.
  """
  return get(codec).encode(image, quality)


def decode(data: bytes, codec: str) -> np.ndarray:
  """Decodes a bitstream made by `encode`.

  Args:
    data: the bitstream bytes.
    codec: the codec that made them (one of CODECS).

  Returns:
    The uint8 [height, width, 3] image.

  Raises:
    TfcaeError: an unknown codec, or bytes Pillow cannot decode.
  """
  return get(codec).decode(data)


def parse_qualities(codec: str, spec: str | Iterable[int | str] | None) -> tuple[int, ...]:
  """The qualities of a sweep, checked for `codec`.

  Args:
    codec: one of CODECS.
    spec: a comma-separated string ('5,10,20'), an iterable of qualities, or None / ''
      for the codec's default sweep. Empty items of a string are skipped.

  Returns:
    The qualities as ints, in the given order.

  Raises:
    TfcaeError: an unknown codec, a quality out of range, or a duplicate quality.
  """
  default = get(codec).default_qualities
  if spec is None or (isinstance(spec, str) and not spec.strip()):
    return default
  parts = spec.split(",") if isinstance(spec, str) else list(spec)
  qualities = tuple(check_quality(codec, p.strip() if isinstance(p, str) else p)
                    for p in parts if not (isinstance(p, str) and not p.strip()))
  if len(set(qualities)) != len(qualities):
    raise TfcaeError(f"{codec}: duplicate qualities in {spec!r}")
  return qualities


def evaluate_image(image: np.ndarray, codec: str, quality: int | str,
                   name: str = "image") -> dict[str, Any]:
  """Encodes and decodes one image, timing both, and measures the result.

  Args:
    image: a uint8 [height, width, 3] array (each side >= 161 pixels for MS-SSIM).
    codec: one of CODECS.
    quality: the codec's quality setting.
    name: the record's "image" entry.

  Returns:
    {"image", "bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"}.

  Raises:
    TfcaeError: as encode and decode, or a decoded image of another shape.
  """
  codec_object = get(codec)
  data, encoding_time = timed(codec_object.encode, image, quality)
  decoded, decoding_time = timed(codec_object.decode, data)
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


def sweep(codec: str, image_paths: Iterable[str],
          qualities: str | Iterable[int | str] | None = None,
          progress: bool = True) -> dict[str, Any]:
  """Rate-distortion sweep of one codec: every image at every quality.

  Args:
    codec: one of CODECS.
    image_paths: list of image files (8-bit RGB; each side >= 161 pixels for MS-SSIM).
    qualities: iterable of qualities, a comma string, or None for the default sweep.
    progress: show a tqdm progress bar on stderr.

  Returns:
    A results dict (tfcae.evaluation.results.make_results), one operating point per
    quality, labelled "q=<quality>", with the qualities also in `results["quality"]`.

  Raises:
    TfcaeError: no images, an image too small for MS-SSIM, or as parse_qualities and
      evaluate_image.
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
  results = make_results(codec, get(codec).description(), points)
  results["results"]["quality"] = [float(q) for q in qualities]
  return results


def at_size(image: np.ndarray, codec: str,
            max_bytes: int) -> tuple[int, bytes] | tuple[None, None]:
  """The highest-quality encoding of `image` with `codec` that fits in `max_bytes`.

  The quality is bisected over the codec's whole range, assuming that file sizes grow
  with it.

  Args:
    image: a uint8 [height, width, 3] array.
    codec: one of CODECS whose quality increases the rate (not jpeg2000).
    max_bytes: the largest acceptable bitstream size.

  Returns:
    (quality, bitstream bytes), or (None, None) when even the lowest quality is larger.

  Raises:
    TfcaeError: an unknown codec, or one whose quality does not grow with size.
  """
  codec_object = get(codec)
  if not codec_object.quality_increases_rate:
    raise TfcaeError(f"{codec}: its quality is not a rate knob that grows with size")
  lo, hi = codec_object.quality_range
  best = (None, None)
  while lo <= hi:
    q = (lo + hi) // 2
    data = codec_object.encode(image, q)
    if len(data) <= max_bytes:
      best, lo = (q, data), q + 1
    else:
      hi = q - 1
  return best
