"""Bounded range decoding: TFC's range decoder, fed so that no payload can hang it, and
checked so that a payload it does not consume exactly is refused.

Why TFC's own `decompress` is not enough for hostile files (tensorflow_compression
2.14, cc/kernels/range_coder_kernels.cc, cc/lib/range_coder.h):

  * The hang. A table row with a negative precision enables TFC's overflow path: the
    last symbol is an escape, followed by an Elias-gamma code of the value, whose prefix
    is decoded by `while (decoder.DecodeLinearly(binary_uniform_cdf, 1) == 0) ++n;` with
    no bound on n. Past the end of its string the decoder shifts in zero bytes. If it is
    there with value == base (a crafted or bit-flipped payload gets there easily; the
    two bytes ff 40 do for the first row of tests/fixtures/legacy/factorized), every
    binary decode yields 0 and the loop never ends, at 100% of a core.
  * The sanity check (`entropy_decode_finalize`, `decode_sanity_check=True`) only says
    the decoder read up to the end of its string and stopped on a value the encoder's
    Finalize could have written. An empty string passes it (value = base = 0) and
    decodes to the first symbol of every row; so may cut or random ones.

What this module does instead, with TFC's ops and tables only (no coder of our own):

  1. `min_payload_bytes`: a lower bound on a string's length from the number of symbols
     and the tables (`row_min_bits`), checked before anything is allocated.
  2. `decode`: the string is followed by ZERO_GAP zero bytes (what a legitimate decoder
     reads of the implicit trailing zeros: at most 7 + 2k bytes, k being the encoder's
     pending carries at the end) and then by GUARD_BYTES_PER_SYMBOL bytes 0xff per
     symbol. Inside 0xff bytes the gamma prefix ends within 32 binary decodes, and no
     symbol can consume more than 80 bits, so the decoder never runs out of input: time
     and memory are linear in the number of symbols. Legitimate strings decode to the
     same symbols bit for bit (they never read past the zero gap).
  3. The decoded symbols are bounded (|s| <= MAX_SYMBOL, far beyond any latent a
     transform produces and within what TFC's encoder handles) and re-encoded with the
     same tables; the result must equal the string, byte for byte. A legitimate string
     is the (deterministic) encoding of its symbols, so it always passes; an empty, cut,
     extended, random or bit-flipped one passes only if it happens to be the encoding of
     what it decodes to, i.e. a valid string of other latents (which the file's CRC
     then had to be forged for). This replaces TFC's weaker finalize check.

Every function works eagerly (tfcae.serving.codec's checks of SavedModels without the
bounded decoder) and inside a tf.function (the exported `decompress`).
"""
import math

import numpy as np

__all__ = ["ZERO_GAP", "GUARD_BYTES_PER_SYMBOL", "MAX_SYMBOL", "PENDING_CARRIES",
           "INCONSISTENT", "OUT_OF_RANGE", "TOO_SHORT", "row_min_bits", "row_min_bits_tf",
           "min_payload_bytes", "decode", "decompress_batched", "decompress_indexed"]

ZERO_GAP = 64
GUARD_BYTES_PER_SYMBOL = 10
MAX_SYMBOL = 2**20
# The encoder's pending carries allowed at the end of a string (see min_payload_bytes):
# each one more needs its interval to straddle 2^32 through 16 more bits, ~2^-16 odds.
PENDING_CARRIES = 3
# A range coder's interval never shrinks by less than p + 2^-16 per symbol of
# probability p (its size stays >= 2^16 and truncation adds at most 1).
_SIZE_SLACK = 2.**-16

INCONSISTENT = ("corrupted tfcae bitstream (the range-coded payload is not the encoding "
                "of what it decodes to: cut, extended or altered)")
OUT_OF_RANGE = "corrupted tfcae bitstream (a decoded latent is out of range)"
TOO_SHORT = "corrupted tfcae bitstream (payload too short for the image size in the header)"


def row_min_bits(cdf):
  """The fewest bits a symbol of each row of a TFC coding table (1-D int32: rows of
  [-precision, 0, ..., 2^precision]) can cost: -log2(largest probability + 2^-16).
  numpy float64 [rows]."""
  cdf = np.asarray(cdf, np.int64).reshape(-1)
  starts = np.flatnonzero(cdf < 0)
  bits = []
  for i, start in enumerate(starts):
    end = starts[i + 1] if i + 1 < len(starts) else len(cdf)
    row = cdf[start + 1:end]
    largest = np.diff(row).max() / 2.**(-cdf[start]) if len(row) > 1 else 1.
    bits.append(-math.log2(min(1., largest + _SIZE_SLACK)))
  return np.array(bits, np.float64)


def row_min_bits_tf(cdf):
  """`row_min_bits` in TensorFlow ops (float64 [rows])."""
  import tensorflow as tf
  cdf = tf.cast(tf.reshape(cdf, [-1]), tf.int64)
  marker = cdf < 0
  row = tf.cumsum(tf.cast(marker, tf.int32)) - 1
  num_rows = tf.reduce_sum(tf.cast(marker, tf.int32))
  precision = tf.boolean_mask(-cdf, marker)
  inside = tf.logical_not(marker[1:]) & tf.logical_not(marker[:-1])
  step = tf.where(inside, cdf[1:] - cdf[:-1], 0)
  largest = tf.math.unsorted_segment_max(step, row[1:], num_rows)
  p = tf.cast(largest, tf.float64) / tf.pow(tf.constant(2., tf.float64),
                                            tf.cast(precision, tf.float64))
  one = tf.constant(1., tf.float64)
  return -tf.math.log(tf.minimum(one, p + _SIZE_SLACK)) / math.log(2.)


def min_payload_bytes(bits):
  """The shortest string TFC's range encoder writes for symbols that cost at least
  `bits` in total (a Python float or a float64 tensor; returns int or int64 tensor).

  The interval starts at 2^32, shrinks by the symbols' probabilities and ends >= 2^16,
  so there are R >= (bits - 16) / 16 renormalisations; each writes 2 bytes, except the
  last one and up to PENDING_CARRIES carries still pending at the end, which Finalize
  leaves as implicit zeros (it writes at least one byte for them).
  """
  if isinstance(bits, (int, float, np.floating)):
    bits = float(bits) * (1 - 1e-9) - 1e-6  # float rounding of the sum: err low
    renorms = max(0, math.ceil((bits - 16) / 16))
    return max(0, 2 * renorms - 1 - 2 * PENDING_CARRIES)
  import tensorflow as tf
  bits = tf.cast(bits, tf.float64) * (1 - 1e-9) - 1e-6
  renorms = tf.maximum(tf.constant(0., tf.float64), tf.math.ceil((bits - 16.) / 16.))
  return tf.maximum(tf.constant(0, tf.int64),
                    2 * tf.cast(renorms, tf.int64) - 1 - 2 * PENDING_CARRIES)


def _require(condition, message):
  import tensorflow as tf
  return tf.debugging.Assert(tf.reduce_all(condition), [message])


def decode(string, cdf, shape, indexes=None):
  """Range-decodes one scalar string with a TFC table; int32 symbols [1, *shape] (before
  TFC adds its cdf_offset), exactly what `gen_ops.entropy_decode_channel` (indexes None)
  or `entropy_decode_index` (int32 indexes [1, *shape]) give for a valid string.

  Raises InvalidArgumentError (OUT_OF_RANGE, INCONSISTENT) for any string that is not
  the encoding of its symbols; never hangs (see the module docstring).
  """
  import tensorflow as tf
  from tensorflow_compression.python.ops import gen_ops
  string = tf.reshape(tf.convert_to_tensor(string, tf.string), [])
  shape = tf.cast(shape, tf.int32)
  count = tf.reduce_prod(tf.cast(shape, tf.int64))
  # Gamma prefixes run through zero bits only (the payload's and the gap's) and their
  # suffixes are as long: 2 bytes per such byte, on top of 80 bits per symbol.
  length = tf.cast(tf.strings.length(string), tf.int64)
  need = count * GUARD_BYTES_PER_SYMBOL + 2 * (length + ZERO_GAP)
  # Joined from 64 KiB pieces: 64-byte string elements cost ~100 bytes each (184 MB more
  # peak memory for a 24-megapixel image's 12 M symbols). The piece is built at run time:
  # a 64 KiB constant would be stored in every exported graph.
  piece = 64
  chunk = tf.strings.reduce_join(tf.fill([1024], b"\xff" * piece))
  guard = tf.strings.reduce_join(tf.fill([need // (1024 * piece) + 1], chunk))
  padded = tf.strings.join([string, b"\0" * ZERO_GAP, guard])
  handle = gen_ops.create_range_decoder(tf.reshape(padded, [1]), cdf)
  if indexes is None:
    handle, symbols = gen_ops.entropy_decode_channel(handle, shape, tf.int32)
  else:
    handle, symbols = gen_ops.entropy_decode_index(handle, indexes, shape, tf.int32)
  # Bounded before re-encoding: TFC's encoder loops on gamma values near 2^31 as well.
  in_range = tf.reduce_all((symbols >= -MAX_SYMBOL) & (symbols <= MAX_SYMBOL))
  with tf.control_dependencies([_require(in_range, OUT_OF_RANGE)]):
    encoder = gen_ops.create_range_encoder([1], cdf)
    if indexes is None:
      encoder = gen_ops.entropy_encode_channel(encoder, symbols)
    else:
      encoder = gen_ops.entropy_encode_index(encoder, indexes, symbols)
    again = gen_ops.entropy_encode_finalize(encoder)
  with tf.control_dependencies([_require(tf.equal(again[0], string), INCONSISTENT)]):
    return tf.identity(symbols)


def decompress_batched(entropy_model, string, broadcast_shape):
  """`tfc.ContinuousBatchedEntropyModel.decompress` of one string (coding rank 3, one
  image) with `decode` in place of TFC's decoder: the same values, bit for bit."""
  import tensorflow as tf
  broadcast_shape = tf.cast(broadcast_shape, tf.int32)
  channels = tf.reduce_prod(entropy_model.prior_shape_tensor)
  decode_shape = tf.concat([broadcast_shape, [channels]], 0)
  output_shape = tf.concat([[1], broadcast_shape, entropy_model.prior_shape_tensor], 0)
  symbols = decode(string, entropy_model.cdf, decode_shape)
  symbols += entropy_model.cdf_offset
  outputs = tf.cast(tf.reshape(symbols, output_shape), entropy_model.bottleneck_dtype)
  offset = entropy_model.quantization_offset
  if offset is not None:
    outputs += offset
  return outputs


def decompress_indexed(entropy_model, string, indexes, loc=None):
  """`tfc.LocationScaleIndexedEntropyModel.decompress` of one string (one image) with
  `decode` in place of TFC's decoder: the same values, bit for bit."""
  import tensorflow as tf
  flat_indexes = entropy_model._flatten_indexes(entropy_model._normalize_indexes(indexes))
  decode_shape = tf.shape(flat_indexes)[-entropy_model.coding_rank:]
  symbols = decode(string, entropy_model.cdf, decode_shape, flat_indexes)
  symbols += tf.gather(entropy_model.cdf_offset, flat_indexes)
  values = tf.cast(symbols, entropy_model.bottleneck_dtype)
  if loc is not None:
    values += loc
  return values
