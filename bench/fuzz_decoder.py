#!/usr/bin/env python3
"""Fuzzes the decoder with CRC-valid hostile files, in one long-lived process.

  bench/fuzz_decoder.py --model_dir=tests/fixtures/legacy/factorized \
      --file=tests/fixtures/legacy/factorized/kodim23_crop.tfcae --cases=10000 \
      --corpus=tests/fixtures/fuzz --signature --failures=/tmp/fuzz_failures

Every case is a tfcae file made from --file: each header field and the payload mutated
(bit flips, cuts, extensions, zeros, random bytes, sizes up to 2^32-1, other versions,
string counts and fingerprints), with the lengths and the CRC-32 made consistent again
unless the mutation is about them, plus short and foreign files; then the files of
--corpus. Each runs through tfcae.serving.codec.Codec.decompress (what bin/decompress runs) and,
with --signature, the SavedModel's `decompress` signature, in a worker thread under a
watchdog: a call that has not returned after --timeout seconds is a hang, a resident set
above --max_rss_mb is a memory failure; both end the run (a stuck TensorFlow kernel
cannot be stopped) after saving the case. Outcomes: refused (TfcaeError, or the
signature's InvalidArgumentError), decoded, hang, memory, traceback (any other exception).
Prints one JSON summary; exits 1 on any hang, memory failure or traceback.
"""
import json
import os
import random
import struct
import sys
import threading
import time
import zlib

from tfcae import cli  # first: it quiets TensorFlow's start-up
from absl import flags

SIZES = [0, 1, 2, 15, 16, 17, 63, 64, 65, 255, 4096, 9459, 9460, 65535, 65536, 2**31 - 1,
         2**31, 2**32 - 1]


def rss_mb():
  """Resident set of this process in MiB (Linux)."""
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def raw_file(magic, version, fingerprint, height, width, strings, index_check=None,
             lengths=None, crc=None, num_strings=None):
  """A tfcae file from its fields, any of them out of range: the CRC-32 is computed over
  the result unless given (crc), the lengths follow the strings unless given."""
  lengths = [len(s) for s in strings] if lengths is None else lengths
  num_strings = len(lengths) if num_strings is None else num_strings
  head = struct.pack(">4sBB8sII", magic, version % 256, num_strings % 256, fingerprint,
                     height % 2**32, width % 2**32)
  head += b"".join(struct.pack(">I", n % 2**32) for n in lengths)
  if version == 2:
    head += struct.pack(">I", (index_check or 0) % 2**32)
  payload = b"".join(strings)
  if crc is None:
    crc = zlib.crc32(payload, zlib.crc32(head))
  return head + struct.pack(">I", crc) + payload


def mutations(seed_bytes, rng):
  """An endless stream of (name, file bytes) mutated from a valid file."""
  from tfcae.io import bitstream
  base = bitstream.parse(seed_bytes)
  strings = list(base.strings)
  fields = dict(magic=bitstream.MAGIC, version=base.version, fingerprint=base.fingerprint,
                height=base.height, width=base.width, strings=strings,
                index_check=base.index_check)

  def make(**changes):
    return raw_file(**dict(fields, **changes))

  def flip(data, bits=1):
    data = bytearray(data)
    for _ in range(bits):
      if data:
        i = rng.randrange(len(data) * 8)
        data[i // 8] ^= 1 << (i % 8)
    return bytes(data)

  def one_string(new):
    i = rng.randrange(len(strings))
    return [new(s) if k == i else s for k, s in enumerate(strings)]

  generators = [
      ("height", lambda: make(height=rng.choice(SIZES + [rng.randrange(2**32)]))),
      ("width", lambda: make(width=rng.choice(SIZES + [rng.randrange(2**32)]))),
      ("size", lambda: make(height=rng.choice(SIZES), width=rng.choice(SIZES))),
      ("version", lambda: make(version=rng.choice([0, 1, 2, 3, 255]))),
      ("num_strings", lambda: make(num_strings=rng.choice([0, 1, 2, 3, 255]))),
      ("fingerprint", lambda: make(fingerprint=bytes(rng.randrange(256) for _ in range(8)))),
      ("index_check", lambda: make(version=2, index_check=rng.randrange(2**32))),
      ("lengths", lambda: make(lengths=[rng.choice([0, len(s) - 1, len(s) + 1, 2**32 - 1])
                                        for s in strings])),
      ("crc", lambda: make(crc=rng.randrange(2**32))),
      ("payload_flip", lambda: make(strings=one_string(lambda s: flip(s, rng.choice([1, 1, 2, 3]))))),
      ("payload_byte", lambda: make(strings=one_string(
          lambda s: s[:(i := rng.randrange(max(1, len(s))))] + bytes([rng.randrange(256)]) +
          s[i + 1:]))),
      ("payload_cut", lambda: make(strings=one_string(lambda s: s[:rng.randrange(len(s) + 1)]))),
      ("payload_extend", lambda: make(strings=one_string(
          lambda s: s + rng.choice([b"\0", b"\xff", os.urandom(rng.randrange(1, 64))])))),
      ("payload_empty", lambda: make(strings=[b""] * len(strings))),
      ("payload_zeros", lambda: make(strings=one_string(lambda s: b"\0" * len(s)))),
      ("payload_random", lambda: make(strings=one_string(lambda s: os.urandom(len(s))))),
      ("payload_random_len", lambda: make(strings=one_string(
          lambda s: os.urandom(rng.randrange(0, 4 * len(s) + 8))))),
      ("payload_escape", lambda: make(height=16, width=16, strings=one_string(
          lambda s: b"\xff" + bytes([rng.randrange(256)])))),
      ("relabel", lambda: make(height=rng.choice([16, 64, 65535, base.height * 2]),
                               width=rng.choice([16, 768, 65535, base.width * 2]))),
      ("short_file", lambda: seed_bytes[:rng.randrange(len(seed_bytes))]),
      ("foreign", lambda: bitstream.MAGIC + os.urandom(rng.randrange(0, 80))),
      ("empty_file", lambda: b""),
  ]
  while True:
    name, generate = rng.choice(generators)
    yield name, generate()


class Watchdog:
  """Runs calls in one worker thread; a call still running after `timeout` seconds is a
  hang; the resident set is sampled meanwhile."""

  def __init__(self, timeout, max_rss_mb):
    self.timeout, self.max_rss_mb = timeout, max_rss_mb
    self.peak_rss_mb = rss_mb()

  def run(self, fn, refusal):
    """(outcome, detail): refused (fn raised a `refusal`) / decoded / hang / memory /
    traceback."""
    result = {}

    def work():
      try:
        result["value"] = fn()
      except BaseException as e:  # noqa: BLE001 (classified below)
        result["error"] = e

    thread = threading.Thread(target=work, daemon=True)
    start = time.monotonic()
    thread.start()
    while thread.is_alive():
      thread.join(0.02)
      rss = rss_mb()
      self.peak_rss_mb = max(self.peak_rss_mb, rss)
      if self.max_rss_mb and rss > self.max_rss_mb:
        return "memory", f"{rss:.0f} MiB resident"
      if time.monotonic() - start > self.timeout:
        return "hang", f"no result after {self.timeout} s"
    return classify(result, refusal)


def classify(result, refusal):
  error = result.get("error")
  if error is None:
    return "decoded", ""
  if isinstance(error, refusal):
    from tfcae.serving.codec import graph_error_message
    return "refused", (graph_error_message(error) if hasattr(error, "message")
                       else str(error))[:200]
  return "traceback", f"{error.__class__.__name__}: {str(error)[:200]}"


def fuzz(model_dir, seed_file, cases, seed=0, corpus=None, signature=False, timeout=20.,
         max_rss_mb=0, failures=None, log=None):
  """Runs the cases; returns the summary dict (see the module docstring)."""
  import tensorflow as tf
  from tfcae import TfcaeError
  from tfcae.serving.codec import Codec
  codec = Codec(model_dir)
  with open(seed_file, "rb") as f:
    seed_bytes = f.read()
  rng = random.Random(seed)
  jobs = []
  if corpus:
    for name in sorted(os.listdir(corpus)):
      if name.endswith(".tfcae"):
        with open(os.path.join(corpus, name), "rb") as f:
          jobs.append((f"corpus:{name}", f.read()))
  stream = mutations(seed_bytes, rng)
  jobs += [next(stream) for _ in range(cases)]
  # What each path may refuse with: the library's one-line error, the signature's
  # InvalidArgumentError; anything else is a traceback.
  paths = [("codec", lambda data: codec.decompress(data), TfcaeError)]
  if signature:
    sig = codec.module.signatures["decompress"]
    paths.append(("signature", lambda data: sig(bitstream=tf.constant(data))["image"],
                  tf.errors.InvalidArgumentError))
  dog = Watchdog(timeout, max_rss_mb)
  counts = {path: {} for path, _, _ in paths}
  bad = []
  started = time.monotonic()
  for name, data in jobs:
    for path, call, refusal in paths:
      outcome, detail = dog.run(lambda: call(data), refusal)
      counts[path][outcome] = counts[path].get(outcome, 0) + 1
      if log:
        print(f"{path} {name} {outcome} {detail}", file=log)
      if outcome in ("hang", "memory", "traceback"):
        bad.append({"path": path, "case": name, "outcome": outcome, "detail": detail})
        if failures:
          os.makedirs(failures, exist_ok=True)
          with open(os.path.join(failures, f"{len(bad):04d}_{path}_{outcome}.tfcae"), "wb") as f:
            f.write(data)
      if outcome in ("hang", "memory"):  # a stuck kernel keeps its core: stop here
        return summary(counts, bad, len(jobs), dog, started, stopped=True)
  return summary(counts, bad, len(jobs), dog, started, stopped=False)


def summary(counts, bad, cases, dog, started, stopped):
  return {"cases": cases, "outcomes": counts, "failures": bad, "stopped_early": stopped,
          "peak_rss_mb": round(dog.peak_rss_mb, 1),
          "seconds": round(time.monotonic() - started, 1)}


def define_flags():
  """The flags, defined only when this runs as a script (tests import the module)."""
  flags.DEFINE_string("model_dir", None, "The model whose decoder is fuzzed.")
  flags.DEFINE_string("file", None, "a valid file of that model")
  flags.DEFINE_integer("cases", 1000, "Mutated cases.")
  flags.DEFINE_integer("seed", 0, "Random seed of the mutations.")
  flags.DEFINE_string("corpus", None, "a folder of .tfcae files run first")
  flags.DEFINE_bool("signature", False, "also run each case through the SavedModel's signature")
  flags.DEFINE_float("timeout", 20., "Seconds before a call counts as a hang.")
  flags.DEFINE_float("max_rss_mb", 0, "0: no memory watchdog")
  flags.DEFINE_string("failures", None, "save failing cases here")
  flags.DEFINE_bool("verbose", False, "one line per case on stderr")
  flags.mark_flags_as_required(["model_dir", "file"])


def main():
  f = flags.FLAGS
  result = fuzz(f.model_dir, f.file, f.cases, f.seed, f.corpus, f.signature, f.timeout,
                f.max_rss_mb, f.failures, sys.stderr if f.verbose else None)
  print(json.dumps(result, indent=2))
  sys.stdout.flush()
  # A hung kernel thread would keep the interpreter from exiting.
  os._exit(1 if result["failures"] else 0)


if __name__ == "__main__":
  import tensorflow as tf  # noqa: F401  (before cli.run: see its docstring)
  define_flags()
  cli.run(main)
