"""File helpers: atomic writes and image loading with clear, one-line errors.

Kept free of TensorFlow so that lightweight tools (classical-codec benchmarks,
plotting) import quickly.
"""
import json
import os
import tempfile

import numpy as np
from PIL import Image

from tfcae import TfcaeError

__all__ = ["IMAGE_EXTENSIONS", "atomic_write_bytes", "atomic_write_json",
           "DEFAULT_MAX_PIXELS", "STREAM_PIXELS", "load_rgb_image", "save_png",
           "expand_images"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".webp", ".tif", ".tiff")


def atomic_write_bytes(path, data):
  """Writes `data` (bytes, or a function that writes to an open binary file) to `path` so
  that readers never see a partial file.

  The bytes go to a temporary file in the same directory, which is fsync'ed and
  renamed over `path` (atomic on POSIX). On any error nothing is left behind, an
  existing `path` is untouched, and a failing disk or file system (permissions, read-only,
  full) is a one-line TfcaeError naming the path.
  """
  path = os.fspath(path)
  try:
    _atomic_write(path, data)
  except OSError as e:
    raise TfcaeError(f"{path}: cannot write it ({e.strerror or e})") from None


def _atomic_write(path, data):
  """`data`: bytes, or a function that writes to the open file."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
  try:
    with os.fdopen(fd, "wb") as f:
      if callable(data):
        data(f)
      else:
        f.write(data)
      f.flush()
      os.fsync(f.fileno())
    # mkstemp creates 0600 files; give the result the permissions open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def atomic_write_json(path, obj):
  atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))


# Pillow's decompression-bomb threshold (the default of PIL.Image.MAX_IMAGE_PIXELS), which
# tfcae.io.bitstream.DEFAULT_MAX_PIXELS equals (kept here too: this module has no TensorFlow
# and imports nothing of tfcae but the error).
DEFAULT_MAX_PIXELS = 89_478_485
# PNGs of more pixels than this are read and written in stripes of rows (pypng), so that
# their pixels are held once, as the array, not also as a Pillow image (4 bytes a pixel)
# and an encoded buffer; smaller ones go through Pillow, whose adaptive row filters make
# smaller files.
STREAM_PIXELS = 16_000_000


def load_rgb_image(path, allow_gray=True, allow_alpha="opaque", max_pixels=DEFAULT_MAX_PIXELS):
  """Loads an 8-bit RGB image as a uint8 array of shape [H, W, 3].

  Grayscale is converted to RGB (when `allow_gray`). RGBA/LA is accepted only when
  the alpha channel is fully opaque (`allow_alpha="opaque"`); otherwise it is
  refused, because dropping transparency silently would change the picture.
  16-bit images are refused: the codecs here are defined on 8-bit RGB.
  An image of more than `max_pixels` pixels (0: no limit) is refused from its header,
  before it is decoded (a decompression bomb). A PNG over STREAM_PIXELS is read row by
  row into the array.
  Raises TfcaeError with a one-line message for anything else.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise TfcaeError(f"{path}: no such file")
  pillow_limit = Image.MAX_IMAGE_PIXELS
  # Pillow's own check (an exception at twice its limit, a warning at it) gives way to
  # ours, which says the limit and the flag.
  Image.MAX_IMAGE_PIXELS = None
  try:
    with Image.open(path) as im:
      width, height = im.size
      if max_pixels and width * height > max_pixels:
        raise TfcaeError(f"{path}: {width}x{height} image ({width * height} pixels) is over "
                         f"the limit of {max_pixels} pixels (a decompression bomb?); pass "
                         f"--max_pixels={width * height} (or 0, no limit) to read it")
      if im.format == "PNG" and width * height > STREAM_PIXELS:
        array = _read_png_rows(path, allow_gray, allow_alpha)
      else:
        array = _pillow_rgb(im, path, allow_gray, allow_alpha)
  except TfcaeError:
    raise
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    # PIL's UnidentifiedImageError is an OSError; pypng's errors are ValueErrors
    raise TfcaeError(f"{path}: cannot read image ({e.__class__.__name__}: {e})") from None
  finally:
    Image.MAX_IMAGE_PIXELS = pillow_limit
  if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] < 1 or array.shape[1] < 1:
    raise TfcaeError(f"{path}: unexpected image shape {array.shape}")
  return array


def _transparent(path, mode):
  return TfcaeError(f"{path}: image has transparency (mode {mode}); flatten it onto a "
                    "background first")


def _pillow_rgb(im, path, allow_gray, allow_alpha):
  im.load()
  mode = im.mode
  if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
    raise TfcaeError(f"{path}: {mode} images (more than 8 bits per sample) are not supported; "
                     "convert to 8-bit RGB first")
  if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
    rgba = im.convert("RGBA")
    alpha = np.asarray(rgba)[..., 3]
    if allow_alpha != "opaque" or alpha.min() < 255:
      raise _transparent(path, mode)
    im = rgba.convert("RGB")
  elif mode in ("L", "1"):
    if not allow_gray:
      raise TfcaeError(f"{path}: grayscale images are not supported here")
    im = im.convert("RGB")
  elif mode != "RGB":
    im = im.convert("RGB")
  return np.asarray(im, dtype=np.uint8)


def _read_png_rows(path, allow_gray, allow_alpha):
  """A PNG decoded one row at a time into the uint8 [H, W, 3] array (pypng): the same
  rules as load_rgb_image."""
  import png
  import zlib
  try:
    return _png_rows(png.Reader(filename=path), path, allow_gray, allow_alpha)
  except (png.Error, zlib.error, EOFError) as e:
    reason = str(e) if str(e).startswith(type(e).__name__) else f"{type(e).__name__}: {e}"
    raise TfcaeError(f"{path}: cannot read image ({reason})") from None


def _png_rows(reader, path, allow_gray, allow_alpha):
  reader.preamble()
  if reader.bitdepth > 8:
    raise TfcaeError(f"{path}: {reader.bitdepth}-bit images (more than 8 bits per sample) "
                     "are not supported; convert to 8-bit RGB first")
  if reader.greyscale and not allow_gray:
    raise TfcaeError(f"{path}: grayscale images are not supported here")
  alpha = reader.alpha or reader.trns is not None
  width, height, rows, _ = reader.asRGBA8() if alpha else reader.asRGB8()
  planes = 4 if alpha else 3
  array = np.empty((height, width, 3), np.uint8)
  for i, row in enumerate(rows):
    row = np.frombuffer(row, np.uint8).reshape(width, planes)
    if alpha and (allow_alpha != "opaque" or row[:, 3].min() < 255):
      raise _transparent(path, "RGBA" if not reader.greyscale else "LA")
    array[i] = row[:, :3]
  return array


def save_png(path, array):
  """Writes a uint8 [H, W, 3] array as PNG, atomically (over STREAM_PIXELS, row by row:
  no second copy of the pixels)."""
  array = np.asarray(array, dtype=np.uint8)
  height, width = array.shape[:2]
  if height * width > STREAM_PIXELS:
    import png
    writer = png.Writer(width, height, greyscale=False, bitdepth=8)
    rows = (array[i].reshape(-1) for i in range(height))
    atomic_write_bytes(path, lambda f: writer.write(f, rows))
    return
  import io
  buf = io.BytesIO()
  Image.fromarray(array, "RGB").save(buf, format="PNG")
  atomic_write_bytes(path, buf.getvalue())


def expand_images(spec):
  """Expands a comma-separated list of globs, folders or files into sorted image paths."""
  import glob
  paths = []
  for part in str(spec).split(","):
    part = part.strip()
    if not part:
      continue
    if os.path.isdir(part):
      candidates = [os.path.join(part, f) for f in os.listdir(part)]
    else:
      candidates = glob.glob(part)
    paths.extend(p for p in candidates
                 if os.path.isfile(p) and p.lower().endswith(IMAGE_EXTENSIONS))
  return sorted(set(paths))
