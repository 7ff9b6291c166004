"""The tfcae file format, versions 1, 2 and 3 (see docs/format.md).

All integers are big-endian::

  offset    size  field
  0         4     magic b"TCAE"
  4         1     format version (1; 2 when the file carries an index check; 3 when it
                  also carries the quality of a variable-rate model)
  5         1     S, the number of range-coded strings (1 factorized, 2 hyperprior)
  6         8     model fingerprint (first 8 bytes of a SHA-256 over config and weights)
  14        4     image height (uint32)
  18        4     image width (uint32)
  22        4*S   byte length of each string (uint32)
  (version 2 only)
  22+4S     4     index check: CRC-32 of the coding-table index of every latent element,
                  one byte each, as the encoder chose them (hyperpriors)
  (version 3 only)
  26+4S     4     quality q of a variable-rate model, unsigned fixed point: q · 2^16
  H-4       4     CRC-32 (IEEE 802.3, as zlib.crc32) of every other byte of the file:
                  the header before this field followed by the payload (H = header size)
  H         ...   payload: the S strings, concatenated

The CRC covers the header too, so a flipped bit in the shape or lengths is caught
instead of decoding a garbage image of the wrong size. The index check catches the other
failure: a hyperprior's decoder recomputes the scale indices in floating point, and one
index decided differently from the encoder's (another CPU's kernels; Ballé et al., 2019,
"Integer networks for data compression with latent-variable models") desynchronises the
range decoder for the rest of the image. The decoder compares its indices with the
check before range decoding and refuses the file instead of writing garbage.

The format exists twice, on purpose, and tests keep the two byte-identical:
  * `pack` / `parse`: pure Python, used by the command-line tools to reject bad
    files with a one-line message before any TensorFlow op runs;
  * `pack_tf` / `parse_tf`: TensorFlow ops, used inside the exported model's
    `compress`/`decompress` signatures, so a serving process that imports only
    tensorflow and tensorflow_compression reads and writes exactly these files.
"""
import dataclasses
import struct
import zlib

import numpy as np

from tfcae import TfcaeError

__all__ = ["MAGIC", "VERSIONS", "FIXED_RATE_VERSIONS", "QUALITY_FRACTION_BITS",
           "quantize_quality", "FINGERPRINT_BYTES", "MAX_STRINGS", "NO_INDEX_CHECK",
           "DEFAULT_MAX_PIXELS", "MAX_SIDE", "PLATFORM_MISMATCH", "header_size",
           "Bitstream", "pack", "check_image_size", "check_fingerprint", "parse", "crc32_tf", "crc32_bytes_tf",
           "pack_tf", "require", "require_in_order", "parse_tf", "parse_variable_rate_tf"]

MAGIC = b"TCAE"
VERSIONS = (1, 2, 3)  # what this tfcae reads; it writes 2 when there is an index check, 3
#                      when there is also a quality (a variable-rate model)
FIXED_RATE_VERSIONS = (1, 2)  # what a model of one rate writes and reads
# The quality of a variable-rate model travels in fixed point, q · 2^16 (uint32): the
# encoder codes at exactly the quality the decoder reads (quantize_quality).
QUALITY_FRACTION_BITS = 16
FINGERPRINT_BYTES = 8
MAX_STRINGS = 255
NO_INDEX_CHECK = -1  # parse_tf's index check of a version-1 file
# The largest image a decoder accepts by default, in pixels: Pillow's decompression-bomb
# threshold (PIL.Image.MAX_IMAGE_PIXELS, 89,478,485 = 0.25 GiB of RGBA), so that the tools
# refuse on both sides what Pillow would warn about. `max_pixels` (bin/compress,
# bin/decompress --max_pixels, the `decompress_limited` signature) moves it; 0 lifts it.
DEFAULT_MAX_PIXELS = 89_478_485
MAX_SIDE = 2**31 - 1  # image sides are int32 in the graph, whatever the limit
PLATFORM_MISMATCH = (
    "this file was written on a platform whose arithmetic differs from this one's: the "
    "hyperprior's scale indices recomputed here differ from the encoder's, so range "
    "decoding would produce garbage")
_FIXED = struct.Struct(">4sBB8sII")  # magic, version, S, fingerprint, height, width


def header_size(num_strings, version=1):
  return _FIXED.size + 4 * num_strings + (4 if version >= 2 else 0) + (
      4 if version >= 3 else 0) + 4


def quantize_quality(quality: float) -> float:
  """The quality a file records for `quality` (its nearest multiple of 2^−16): what a
  variable-rate model codes with, so that the decoder's gains are the encoder's exactly.
  Raises ValueError outside (0, 65536)."""
  code = round(float(quality) * 2 ** QUALITY_FRACTION_BITS)
  if not 0 < code < 2 ** 32:
    raise ValueError(f"quality {quality} cannot be recorded (0 < quality < 65536)")
  return code / 2 ** QUALITY_FRACTION_BITS


@dataclasses.dataclass(frozen=True)
class Bitstream:
  fingerprint: bytes
  height: int
  width: int
  strings: tuple
  index_check: int = None  # versions 2 and 3
  version: int = 1
  quality: float = None  # version 3 only


def pack(fingerprint, height, width, strings, index_check=None, quality=None):
  """Serialises a Bitstream (pure Python): version 1; 2 with an index check (uint32); 3
  with an index check and a quality (recorded as quantize_quality gives it). Returns bytes."""
  fingerprint = bytes(fingerprint)
  if len(fingerprint) != FINGERPRINT_BYTES:
    raise ValueError(f"fingerprint must be {FINGERPRINT_BYTES} bytes")
  if not 1 <= len(strings) <= MAX_STRINGS:
    raise ValueError("between 1 and 255 strings")
  if not (0 < height < 2**32 and 0 < width < 2**32):
    raise ValueError("image dimensions out of range")
  if index_check is not None and not 0 <= index_check < 2**32:
    raise ValueError("index check out of range")
  if quality is not None and index_check is None:
    raise ValueError("a version-3 file (with a quality) needs an index check")
  strings = [bytes(s) for s in strings]
  version = 1 if index_check is None else 2 if quality is None else 3
  head = _FIXED.pack(MAGIC, version, len(strings), fingerprint, height, width)
  head += b"".join(struct.pack(">I", len(s)) for s in strings)
  if index_check is not None:
    head += struct.pack(">I", index_check)
  if quality is not None:
    head += struct.pack(">I", round(quantize_quality(quality) * 2 ** QUALITY_FRACTION_BITS))
  payload = b"".join(strings)
  crc = zlib.crc32(payload, zlib.crc32(head))
  return head + struct.pack(">I", crc) + payload


def check_image_size(height, width, max_pixels=DEFAULT_MAX_PIXELS, what="image"):
  """Raises TfcaeError if a height x width image is over `max_pixels` (0: no limit) or
  has a side of 2^31 or more."""
  if height > MAX_SIDE or width > MAX_SIDE:
    raise TfcaeError(f"{what} size {width}x{height} is too large (sides must be below 2^31)")
  if max_pixels and height * width > max_pixels:
    raise TfcaeError(f"{what} size {width}x{height} ({height * width} pixels) is over the limit "
                     f"of {max_pixels} pixels; pass --max_pixels={height * width} (or 0, no "
                     "limit) if it is meant to be this large")


def check_fingerprint(fingerprint, expected):
  """A file's fingerprint is the model's; raises TfcaeError naming both otherwise."""
  if bytes(fingerprint) != bytes(expected):
    raise TfcaeError(f"bitstream was written by another model (fingerprint "
                     f"{bytes(fingerprint).hex()}, this model is {bytes(expected).hex()})")


def parse(data, expected_fingerprint=None, max_pixels=DEFAULT_MAX_PIXELS):
  """Parses and validates a file's bytes; raises TfcaeError with a one-line reason.
  `max_pixels` bounds the image size in the header (0: no limit)."""
  data = bytes(data)
  if not data:
    raise TfcaeError("empty file: not a tfcae bitstream")
  if len(data) < 4 or data[:4] != MAGIC:
    raise TfcaeError("not a tfcae bitstream (bad magic number)")
  if len(data) < _FIXED.size:
    raise TfcaeError("truncated tfcae bitstream (incomplete header)")
  magic, version, num_strings, fingerprint, height, width = _FIXED.unpack_from(data)
  if version not in VERSIONS:
    raise TfcaeError(f"unsupported tfcae format version {version} (this tfcae reads "
                     f"{', '.join(map(str, VERSIONS))})")
  if num_strings < 1:
    raise TfcaeError("corrupted tfcae bitstream (no strings)")
  hsize = header_size(num_strings, version)
  if len(data) < hsize:
    raise TfcaeError("truncated tfcae bitstream (incomplete header)")
  lengths = struct.unpack_from(f">{num_strings}I", data, _FIXED.size)
  (crc,) = struct.unpack_from(">I", data, hsize - 4)
  payload = data[hsize:]
  if len(payload) != sum(lengths):
    kind = "truncated" if len(payload) < sum(lengths) else "corrupted"
    raise TfcaeError(f"{kind} tfcae bitstream (payload has {len(payload)} bytes, header says "
                     f"{sum(lengths)})")
  if zlib.crc32(payload, zlib.crc32(data[:hsize - 4])) != crc:
    raise TfcaeError("corrupted tfcae bitstream (CRC-32 mismatch)")
  if height == 0 or width == 0:
    raise TfcaeError("corrupted tfcae bitstream (zero image size)")
  check_image_size(height, width, max_pixels, "the header's image")
  if expected_fingerprint is not None:
    check_fingerprint(fingerprint, expected_fingerprint)
  index_check = quality = None
  if version >= 2:
    (index_check,) = struct.unpack_from(">I", data, _FIXED.size + 4 * num_strings)
  if version >= 3:
    (code,) = struct.unpack_from(">I", data, _FIXED.size + 4 * num_strings + 4)
    if code == 0:
      raise TfcaeError("corrupted tfcae bitstream (quality field is zero)")
    quality = code / 2 ** QUALITY_FRACTION_BITS
  strings, offset = [], 0
  for n in lengths:
    strings.append(payload[offset:offset + n])
    offset += n
  return Bitstream(fingerprint, height, width, tuple(strings), index_check, version, quality)


# ---------------------------------------------------------------------------------------
# In-graph implementation.
#
# CRC-32 in TensorFlow: there is no op for it, and a byte-serial tf.while_loop would cost
# ~1 s per image. CRC is linear over GF(2), so we compute it in parallel:
#   * the register update r' = T[(r ^ b) & 0xff] ^ (r >> 8) is linear in (r, b); with a zero
#     initial register, a chunk of C bytes contributes  sum_i Z^(C-1-i) B bits(b_i)  where
#     Z (32x32) feeds one zero byte and B (32x8) injects a byte: one einsum per chunk;
#   * chunks are combined pairwise, r(L || R) = Z^len(R) r(L) ^ r(R), in log2(#chunks) steps;
#   * leading zero bytes leave a zero register at zero, so the message is left-padded to a
#     power-of-two number of chunks;
#   * zlib's initial register 0xFFFFFFFF equals a zero register after a fixed 4-byte prefix P
#     (solved below), and the final xor is 0xFFFFFFFF.
# ---------------------------------------------------------------------------------------
_CRC_CHUNK = 256
_CRC_LEVELS = 32  # supports messages up to 256 * 2**32 bytes
_CRC_BLOCK_LEVELS = 12  # blocks of 1 MiB: ≈ 70 MB of temporaries, whatever the message


def _crc_table():
  table = np.zeros(256, np.uint64)
  for i in range(256):
    c = i
    for _ in range(8):
      c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
    table[i] = c
  return table


def _gf2_matrices():
  table = _crc_table()

  def step(r, b):
    return int(table[(r ^ b) & 0xFF]) ^ (r >> 8)

  def to_bits(v, n):
    return np.array([(v >> k) & 1 for k in range(n)], np.int64)

  z = np.stack([to_bits(step(1 << j, 0), 32) for j in range(32)], axis=1)   # [32, 32]
  b = np.stack([to_bits(step(0, 1 << k), 32) for k in range(8)], axis=1)    # [32, 8]
  # A[i] = Z^(C-1-i) B: contribution of the byte at position i of a chunk.
  chunk = np.zeros((_CRC_CHUNK, 32, 8), np.int64)
  acc = b.copy()
  for i in reversed(range(_CRC_CHUNK)):
    chunk[i] = acc
    acc = (z @ acc) % 2
  # Z^(C * 2^l): shift of a left half over a right half of 2^l chunks.
  combine = np.zeros((_CRC_LEVELS, 32, 32), np.int64)
  zc = np.eye(32, dtype=np.int64)
  for _ in range(_CRC_CHUNK):
    zc = (z @ zc) % 2
  for level in range(_CRC_LEVELS):
    combine[level] = zc
    zc = (zc @ zc) % 2
  # Prefix P with raw(P) = 0xFFFFFFFF: raw(P) = M p, M = [Z^3 B, Z^2 B, Z B, B] (32x32).
  m = np.concatenate([np.linalg.matrix_power(z, 3 - i) % 2 @ b % 2 for i in range(4)], axis=1)
  p = _gf2_solve(m, np.ones(32, np.int64))
  prefix = bytes(int(sum(int(p[8 * i + k]) << k for k in range(8))) for i in range(4))
  # Stored bit-packed (8 entries per byte): every coding function of a SavedModel holds
  # its own copy of these constants, 12 kB packed instead of 393 kB as float32.
  return (np.packbits(chunk.astype(np.uint8), axis=-1, bitorder="little"),
          np.packbits(combine.astype(np.uint8), axis=-1, bitorder="little"), prefix)


def _unpacked(packed):
  """The float32 0/1 matrix of a little-endian bit-packed uint8 constant."""
  import tensorflow as tf
  bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(
      tf.cast(tf.constant(packed), tf.int32)[..., None], tf.range(8)), 1)
  return tf.cast(tf.reshape(bits, packed.shape[:-1] + (8 * packed.shape[-1],)), tf.float32)


def _gf2_solve(a, y):
  """Solves a x = y over GF(2) for square, invertible a (Gauss-Jordan)."""
  n = a.shape[0]
  aug = np.concatenate([a % 2, y[:, None] % 2], axis=1)
  for col in range(n):
    pivot = col + int(np.argmax(aug[col:, col]))
    if aug[pivot, col] == 0:
      raise ValueError("singular GF(2) system")
    aug[[col, pivot]] = aug[[pivot, col]]
    for row in range(n):
      if row != col and aug[row, col]:
        aug[row] ^= aug[col]
  return aug[:, n]


_CRC_CONSTANTS = None


def _crc_constants():
  global _CRC_CONSTANTS
  if _CRC_CONSTANTS is None:
    _CRC_CONSTANTS = _gf2_matrices()
  return _CRC_CONSTANTS


def crc32_tf(message):
  """CRC-32 (zlib.crc32) of a scalar tf.string, as an int64 scalar tensor."""
  import tensorflow as tf
  return crc32_bytes_tf(tf.io.decode_raw(message, tf.uint8))


def crc32_bytes_tf(values):
  """CRC-32 (zlib.crc32) of a 1-D tensor of byte values (0..255), as an int64 scalar.

  The message is reduced a block of at most 2^_CRC_BLOCK_LEVELS chunks at a time (the
  register so far shifted over each block, Z^(C·2^l), plus the block's own), so the
  unpacked bits of a long message (a large image's table indices) never exist all at
  once: memory is bounded by the block.
  """
  import tensorflow as tf
  chunk_mats, combine_mats, prefix = _crc_constants()
  data = tf.concat([tf.constant(list(prefix), tf.int32), tf.cast(values, tf.int32)], 0)
  n = tf.size(data)
  num_chunks = (n + _CRC_CHUNK - 1) // _CRC_CHUNK
  levels = tf.minimum(tf.cast(tf.math.ceil(tf.math.log(tf.cast(num_chunks, tf.float64)) /
                                           tf.math.log(tf.constant(2., tf.float64))),
                              tf.int32), _CRC_BLOCK_LEVELS)
  block = tf.bitwise.left_shift(1, levels) * _CRC_CHUNK  # bytes
  blocks = (n + block - 1) // block
  data = tf.reshape(tf.pad(data, [[blocks * block - n, 0]]), [blocks, -1])  # zeros: no effect
  chunks, combine = _unpacked(chunk_mats), _unpacked(combine_mats)

  def block_register(part):
    bits = tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(tf.reshape(part, [-1, _CRC_CHUNK, 1]), tf.range(8)), 1)
    # Sums are at most 256 * 8, exact in float32.
    regs = tf.math.floormod(tf.einsum("kci,cji->kj", tf.cast(bits, tf.float32), chunks), 2.)

    def body(level, regs):
      pairs = tf.reshape(regs, [-1, 2, 32])
      left = tf.linalg.matvec(combine[level], pairs[:, 0])
      return level + 1, tf.math.floormod(left + pairs[:, 1], 2.)

    _, regs = tf.while_loop(lambda level, regs: level < levels, body, [0, regs],
                            shape_invariants=[tf.TensorShape([]), tf.TensorShape([None, 32])])
    return regs[0]

  def next_block(i, register):
    shifted = tf.linalg.matvec(combine[levels], register)
    return i + 1, tf.math.floormod(shifted + block_register(data[i]), 2.)

  _, register = tf.while_loop(lambda i, _: i < blocks, next_block,
                              [0, tf.zeros([32], tf.float32)], parallel_iterations=1)
  value = tf.reduce_sum(tf.cast(register, tf.int64) * tf.bitwise.left_shift(
      tf.constant(1, tf.int64), tf.range(32, dtype=tf.int64)))
  return tf.bitwise.bitwise_xor(value, tf.constant(0xFFFFFFFF, tf.int64))


def _u32_be(value):
  """uint32 (any int tensor, scalar) -> 4-byte big-endian tf.string."""
  import tensorflow as tf
  value = tf.cast(value, tf.int64)
  shifts = tf.constant([24, 16, 8, 0], tf.int64)
  return _bytes_to_string(tf.bitwise.bitwise_and(tf.bitwise.right_shift(value, shifts), 0xFF))


def _bytes_to_string(values):
  import tensorflow as tf
  table = tf.constant([bytes([i]) for i in range(256)])
  return tf.strings.reduce_join(tf.gather(table, tf.cast(values, tf.int32)))


def _be_u32(string, offset):
  """Reads a big-endian uint32 at `offset` of a scalar string, as int64."""
  import tensorflow as tf
  offset = tf.cast(offset, tf.int64)
  raw = tf.cast(tf.io.decode_raw(tf.strings.substr(string, offset, tf.constant(4, tf.int64)),
                                 tf.uint8), tf.int64)
  raw = tf.reshape(raw, [4])
  return (raw[0] * 2**24) + (raw[1] * 2**16) + (raw[2] * 2**8) + raw[3]


def quality_code_tf(quality):
  """round(q · 2^16) of a float32 quality tensor, as int64: the recorded field."""
  import tensorflow as tf
  return tf.cast(tf.round(tf.cast(quality, tf.float64) * 2. ** QUALITY_FRACTION_BITS), tf.int64)


def pack_tf(fingerprint, height, width, strings, index_check=None, quality=None):
  """In-graph `pack`: fingerprint is a scalar string tensor, strings a list of scalars,
  index_check None (version 1) or a scalar integer tensor (version 2), quality None or a
  scalar float tensor, already quantised (version 3, with an index check)."""
  import tensorflow as tf
  if quality is not None and index_check is None:
    raise ValueError("a version-3 file (with a quality) needs an index check")
  version = 1 if index_check is None else 2 if quality is None else 3
  head = tf.strings.join(
      [MAGIC, _bytes_to_string(tf.constant([version, len(strings)])), fingerprint,
       _u32_be(height), _u32_be(width)] + [_u32_be(tf.strings.length(s)) for s in strings] +
      ([] if index_check is None else [_u32_be(index_check)]) +
      ([] if quality is None else [_u32_be(quality_code_tf(quality))]))
  payload = tf.strings.join(list(strings))
  crc = crc32_tf(tf.strings.join([head, payload]))
  return tf.strings.join([head, _u32_be(crc), payload])


def require(condition, message):
  """tf.debugging.Assert with a fixed message (assert_equal cannot format string tensors)."""
  import tensorflow as tf
  return tf.debugging.Assert(tf.reduce_all(condition), [message])


def require_in_order(conditions):
  """Asserts (condition, message) pairs one after the other, so that a file with several
  faults always reports the first one. Returns the last assert (a list, for
  tf.control_dependencies)."""
  import tensorflow as tf
  last = []
  for condition, message in conditions:
    with tf.control_dependencies(last):
      last = [require(condition, message)]
  return last


def parse_tf(data, fingerprint, num_strings, max_pixels=DEFAULT_MAX_PIXELS):
  """In-graph `parse` of a fixed-rate model's file (versions 1 and 2) with validation;
  raises InvalidArgumentError on a bad file, with one of this module's messages (never another op's: every field is read from the file
  padded with zeros, so no read runs past its end, and nothing is used before the checks
  it depends on have passed).

  max_pixels: int scalar (tensor or Python), 0 for no limit.
  Returns (height, width, strings, index_check): int32 height/width, a list of scalar
  strings and the int64 index check (NO_INDEX_CHECK for a version-1 file).
  """
  return _parse_tf(data, fingerprint, num_strings, max_pixels, FIXED_RATE_VERSIONS)[:4]


def parse_variable_rate_tf(data, fingerprint, num_strings, rate_points,
                           max_pixels=DEFAULT_MAX_PIXELS):
  """`parse_tf` for a variable-rate model's files (version 3 only), whose recorded
  quality must lie in [1, rate_points]. Returns (height, width, strings, index_check,
  quality), quality a float32 scalar."""
  import tensorflow as tf
  height, width, strings, index_check, code = _parse_tf(data, fingerprint, num_strings,
                                                        max_pixels, (3,))
  in_range = (code >= 2 ** QUALITY_FRACTION_BITS) & (
      code <= rate_points * 2 ** QUALITY_FRACTION_BITS)
  with tf.control_dependencies([require(in_range, "corrupted tfcae bitstream (quality "
                                        "outside the model's range)")]):
    quality = tf.cast(tf.cast(code, tf.float64) / 2. ** QUALITY_FRACTION_BITS, tf.float32)
  return height, width, strings, index_check, quality


def _parse_tf(data, fingerprint, num_strings, max_pixels, versions):
  import tensorflow as tf
  n = tf.cast(tf.strings.length(data), tf.int64)
  padded = tf.strings.join([data, b"\0" * header_size(MAX_STRINGS, max(VERSIONS))])
  fixed = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, 4, 2), tf.uint8), tf.int64)
  version = fixed[0]
  checked = version >= 2
  hsize = (header_size(num_strings) + tf.where(checked, tf.constant(4, tf.int64), 0) +
           tf.where(version >= 3, tf.constant(4, tf.int64), 0))
  lengths = [_be_u32(padded, _FIXED.size + 4 * i) for i in range(num_strings)]
  checks = require_in_order([
      (n >= 1, "empty file: not a tfcae bitstream"),
      ((n >= 4) & tf.equal(tf.strings.substr(padded, 0, 4), MAGIC),
       "not a tfcae bitstream (bad magic number)"),
      (n >= _FIXED.size, "truncated tfcae bitstream (incomplete header)"),
      (tf.reduce_any(tf.equal(version, versions)) & tf.equal(fixed[1], num_strings),
       "unsupported tfcae version or string count"),
      (n >= hsize, "truncated tfcae bitstream (incomplete header)"),
      (tf.equal(n - hsize, tf.add_n(lengths)),
       "truncated or corrupted tfcae bitstream (length)"),
  ])
  with tf.control_dependencies(checks):
    head = tf.strings.substr(data, tf.constant(0, tf.int64), hsize - 4)
    payload = tf.strings.substr(data, hsize, n - hsize)
    crc = crc32_tf(tf.strings.join([head, payload]))
  height, width = _be_u32(padded, 14), _be_u32(padded, 18)
  max_pixels = tf.cast(max_pixels, tf.int64)
  # In the order of `parse`; a fingerprint is compared last, once the file is known
  # to be intact, so a damaged file is not reported as another model's.
  with tf.control_dependencies(checks):
    checks = require_in_order([
        (tf.equal(crc, _be_u32(padded, hsize - 4)),
         "corrupted tfcae bitstream (CRC-32 mismatch)"),
        ((height > 0) & (width > 0), "corrupted tfcae bitstream (zero image size)"),
        ((height <= MAX_SIDE) & (width <= MAX_SIDE),
         "image size in the header is too large (sides must be below 2^31)"),
        ((max_pixels <= 0) | (height * width <= max_pixels),
         "image size in the header is over the decoder's limit (max_pixels)"),
        (tf.equal(tf.strings.substr(padded, 6, FINGERPRINT_BYTES), fingerprint),
         "bitstream was written by another model"),
    ])
  with tf.control_dependencies(checks):
    height, width = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
    extra = _FIXED.size + 4 * num_strings
    index_check = tf.where(checked, _be_u32(padded, extra), NO_INDEX_CHECK)
    quality_code = tf.where(version >= 3, _be_u32(padded, extra + 4), 0)
    strings, offset = [], tf.constant(0, tf.int64)
    for length in lengths:
      strings.append(tf.strings.substr(payload, offset, length))
      offset += length
  return height, width, strings, index_check, quality_code
