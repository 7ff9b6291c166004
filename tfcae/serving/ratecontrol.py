"""Rate control for a variable-rate model: the quality that meets a size or quality target.

A variable-rate model (tfcae.models.vbr) codes at any quality q ∈ [1, K]; its file size
and PSNR grow with q. Image encoders meet a size target by bisection over their quality
(cjpeg-style tools, libwebp's `-size`); so does this module:

  max_bytes=N      the highest quality whose file has at most N bytes
  target_bpp=B     the same with N = ⌊B · H · W / 8⌋: every image at (just under) one rate
  target_psnr=P    the lowest quality whose decoded image reaches P dB: the smallest file

For a size the bisection runs on the entropy model's estimate (the model's
`estimate_bits`, no range coding), corrected once by the real file's overhead (header,
range-coder termination); a short bisection on real files around that quality decides,
so the result never exceeds the budget. A PSNR needs the decoded image, so
that bisection codes and decodes real files. A target no quality meets is a one-line
TfcaeError (nothing is written by the tools).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import numpy as np

from tfcae import TfcaeError
from tfcae.io import bitstream
from tfcae.objectives import metrics

__all__ = ["QUALITY_STEPS", "RateControlResult", "highest_quality", "lowest_quality",
           "check_targets", "compress_to_target"]

# Bisection steps of the estimate over [1, K]: (K − 1) / 2^8 ≈ 0.03 in quality for K = 8,
# within the real-file bracket (BRACKET) that decides.
QUALITY_STEPS = 8
# The real-file bisection of a size target: ±BRACKET around the estimate's quality, in
# REAL_STEPS steps (0.25 / 2^5 ≈ 0.008 in quality, ≈ 0.5 % in rate); a bracket widened
# because the estimate missed takes the steps that keep that resolution.
BRACKET = 0.125
REAL_STEPS = 5
REAL_RESOLUTION = 2. * BRACKET / 2 ** REAL_STEPS
# Steps of a PSNR bisection, each a real coding and decoding: (K − 1) / 2^10 ≈ 0.007.
PSNR_STEPS = 10


@dataclasses.dataclass
class RateControlResult:
  """What rate control chose: the file, its quality, and how many codings it took."""
  data: bytes
  quality: float
  estimates: int = 0     # entropy-model estimates
  codings: int = 0       # real files coded (and, for a PSNR target, decoded)
  psnr: Optional[float] = None  # of the decoded image, for a PSNR target


def highest_quality(fits: Callable[[float], bool], low: float, high: float,
                    steps: int = QUALITY_STEPS) -> Optional[float]:
  """The highest q in [low, high] with fits(q), for `fits` true below some q and false
  above (within 2^−steps of the bracket); None when not even `low` fits.

  Args:
    fits: the predicate, monotone (true, then false, as q grows).
    low, high: the bracket.
    steps: bisection steps.

  Returns:
    q, or None.
  """
  if fits(high):
    return high
  if not fits(low):
    return None
  for _ in range(steps):
    mid = (low + high) / 2.
    if fits(mid):
      low = mid
    else:
      high = mid
  return low


def lowest_quality(reaches: Callable[[float], bool], low: float, high: float,
                   steps: int = QUALITY_STEPS) -> Optional[float]:
  """The lowest q in [low, high] with reaches(q), for `reaches` false below some q and
  true above; None when not even `high` reaches."""
  if reaches(low):
    return low
  if not reaches(high):
    return None
  for _ in range(steps):
    mid = (low + high) / 2.
    if reaches(mid):
      high = mid
    else:
      low = mid
  return high


def check_targets(rate_points: Optional[int], quality: Optional[float] = None,
                  max_bytes: Optional[int] = None, target_bpp: Optional[float] = None,
                  target_psnr: Optional[float] = None) -> Optional[str]:
  """Checks a coding request: at most one of quality / max_bytes / target_bpp /
  target_psnr, each in its range, and only for a variable-rate model (rate_points K).

  Returns:
    The name of the target given (None: none).

  Raises:
    TfcaeError: a one-line reason.
  """
  given = {name: value for name, value in (("quality", quality), ("max_bytes", max_bytes),
                                           ("target_bpp", target_bpp),
                                           ("target_psnr", target_psnr)) if value is not None}
  if len(given) > 1:
    raise TfcaeError(f"give one of --quality, --max_bytes, --target_bpp, --target_psnr, not "
                     f"{' and '.join('--' + n for n in given)}")
  if not given:
    if rate_points:
      raise TfcaeError(f"a variable-rate model needs --quality (in [1, {rate_points}]), "
                       "--max_bytes, --target_bpp or --target_psnr")
    return None
  (name, value), = given.items()
  if not rate_points:
    raise TfcaeError(f"--{name} needs a variable-rate model (e.g. one trained with "
                     "configs/zoo_meanscale_vbr.cfg); this one codes at one rate")
  if not math.isfinite(value):
    raise TfcaeError(f"--{name}={value} is not a number")
  if name == "quality" and not 1 <= value <= rate_points:
    raise TfcaeError(f"--quality={value:g} is outside the model's range [1, {rate_points}]")
  if name in ("max_bytes", "target_bpp", "target_psnr") and value <= 0:
    raise TfcaeError(f"--{name} must be positive, got {value:g}")
  return name


def compress_to_target(codec, image: np.ndarray, max_bytes: Optional[int] = None,
                       target_bpp: Optional[float] = None,
                       target_psnr: Optional[float] = None) -> RateControlResult:
  """Codes `image` at the quality that meets one target (see the module docstring).

  Args:
    codec: a variable-rate Codec (its `rate_points`, `compress(image, quality)`,
      `estimate_bits(image, quality)`, `decompress(data)`).
    image: uint8 [H, W, 3].
    max_bytes, target_bpp, target_psnr: exactly one.

  Returns:
    The RateControlResult.

  Raises:
    TfcaeError: no target, several, or one that no quality in [1, K] meets.
  """
  name = check_targets(codec.rate_points, None, max_bytes, target_bpp, target_psnr)
  if name is None:
    raise TfcaeError("give max_bytes, target_bpp or target_psnr")
  height, width = image.shape[:2]
  top = float(codec.rate_points)
  if name == "target_psnr":
    return _to_psnr(codec, image, float(target_psnr), top)
  budget = int(max_bytes) if name == "max_bytes" else math.floor(
      float(target_bpp) * height * width / 8.)
  what = (f"{budget} bytes" if name == "max_bytes" else
          f"{target_bpp:g} bpp ({budget} bytes for {width}x{height})")
  return _to_size(codec, image, budget, what, top)


def _to_size(codec, image, budget, what, top):
  estimates, files = {}, {}
  header = bitstream.header_size(codec.num_strings, 3)

  def estimate(q):  # bytes: the payload's estimate and the header
    if q not in estimates:
      estimates[q] = codec.estimate_bits(image, q) / 8. + header
    return estimates[q]

  def real(q):
    if q not in files:
      files[q] = codec.compress(image, q)
    return len(files[q])

  guess = highest_quality(lambda q: estimate(q) <= budget, 1., top)
  # The real file's overhead over the estimate (range-coder termination, the estimate's
  # error), measured once, corrects the estimate.
  probe = 1. if guess is None else guess
  overhead = real(probe) - estimate(probe)
  guess = highest_quality(lambda q: estimate(q) + overhead <= budget, 1., top) or 1.
  # Real files decide, in a bracket around the guess (widened if it misses).
  fits = lambda q: real(q) <= budget  # noqa: E731
  low, high = max(1., guess - BRACKET), min(top, guess + BRACKET)
  if not fits(low):
    low, high = 1., low
  elif fits(high):
    low, high = high, top
  steps = max(REAL_STEPS, math.ceil(math.log2(max(high - low, REAL_RESOLUTION) /
                                              REAL_RESOLUTION)))
  quality = highest_quality(fits, low, high, steps)
  if quality is None:
    raise TfcaeError(f"cannot fit the image in {what}: the smallest file this model "
                     f"writes for it (quality 1) has {real(1.)} bytes")
  real(quality)
  return RateControlResult(files[quality], bitstream.quantize_quality(quality),
                           len(estimates), len(files))


def _to_psnr(codec, image, target, top):
  psnrs, files = {}, {}

  def psnr(q):
    if q not in psnrs:
      files[q] = codec.compress(image, q)
      psnrs[q] = metrics.psnr(image, codec.decompress(files[q]))
    return psnrs[q]

  quality = lowest_quality(lambda q: psnr(q) >= target, 1., top, PSNR_STEPS)
  if quality is None:
    raise TfcaeError(f"cannot reach {target:g} dB: the highest quality ({top:g}) gives "
                     f"{psnr(top):.2f} dB for this image")
  return RateControlResult(files[quality], bitstream.quantize_quality(quality), 0,
                           len(files), psnrs[quality])
