"""Do files decode on another machine? TensorFlow's CPU kernels with oneDNN on or off
(`TF_ENABLE_ONEDNN_OPTS=1/0`) are two implementations of the same convolutions, as a
phone's and a server's are: files written under one setting and read under the other, in
fresh processes, expose every floating-point decision the file format depends on
(tests/test_zoo.py runs it on every shipped model, bench/cross_kernel.py on
Kodak).

A decode is classified as
  "ok"       pixels within ±1 of the same-kernel decode (float synthesis flips a few
             roundings; the latents are identical),
  "refused"  the decoder failed with the one-line platform-mismatch message (a version-2
             hyperprior file whose scale indices it recomputes differently),
  "garbage"  decoded, but further than ±1 from the same-kernel decode (the range decoder
             desynchronised: what the index check exists to prevent),
  "error"    failed otherwise, or "hang": no result within the timeout.
"""
import os
import subprocess
import sys

import numpy as np

from tfcae.io import bitstream
from tfcae.io.fileio import load_rgb_image
from tfcae.objectives import metrics

__all__ = ["compress_under", "decompress_under", "cross_check"]

_PRELUDE = ("import sys, numpy as np, tensorflow as tf, tensorflow_compression\n"
            "from PIL import Image\nm = tf.saved_model.load(sys.argv[1])\n")
# argv: model, quality ("" for a model of one rate), then (image, output) pairs.
_COMPRESS = ("q = () if not sys.argv[2] else (tf.constant(float(sys.argv[2])),)\n"
             "for src, dst in zip(sys.argv[3::2], sys.argv[4::2]):\n"
             "  x = np.asarray(Image.open(src).convert('RGB'))\n"
             "  open(dst, 'wb').write(m.compress(tf.constant(x), *q).numpy())\n")
_DECOMPRESS = ("data = open(sys.argv[2], 'rb').read()\n"
               "np.save(sys.argv[3], m.decompress(tf.constant(data)).numpy())\n")


def _run(code, onednn, args, timeout):
  env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=str(int(onednn)), TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, "-c", _PRELUDE + code, *args], env=env,
                        capture_output=True, text=True, timeout=timeout)


def compress_under(model_dir, onednn, images, outputs, timeout=1800, quality=None):
  """Writes outputs[i] = the SavedModel's file of images[i] (at `quality`, for a
  variable-rate model), in one process whose oneDNN setting is `onednn`."""
  args = [model_dir, "" if quality is None else repr(float(quality))] + [
      p for pair in zip(images, outputs) for p in pair]
  result = _run(_COMPRESS, onednn, args, timeout)
  if result.returncode:
    raise RuntimeError(f"compress under oneDNN={onednn} failed: {result.stderr[-500:]}")


def decompress_under(model_dir, onednn, path, output_npy, timeout=300):
  """Decodes a file in a fresh process; returns None on success, else (status, message)
  with status "refused", "error" or "hang"."""
  try:
    result = _run(_DECOMPRESS, onednn, [model_dir, path, output_npy], timeout)
  except subprocess.TimeoutExpired:
    return "hang", f"no result after {timeout} s"
  if result.returncode == 0:
    return None
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  message = next((line for line in lines if bitstream.PLATFORM_MISMATCH[:40] in line),
                 lines[-1] if lines else "")
  return ("refused" if bitstream.PLATFORM_MISMATCH[:40] in message else "error"), message


def cross_check(model_dir, images, work_dir, write=1, read=0, as_version_1=False,
                timeout=300, log=None, quality=None):
  """Writes every image under oneDNN=`write`, decodes each file under `read` and under
  `write` (the reference), and classifies the cross decode (see the module docstring).
  as_version_1: strip the index check first (what files were before format version 2).
  quality: the quality a variable-rate model codes at.
  Returns one record per image: image, status, bytes_equal (the file written under `read`
  is the same), max_abs_diff, psnr (same-kernel decode) and cross_psnr, message."""
  os.makedirs(work_dir, exist_ok=True)
  names = [os.path.splitext(os.path.basename(p))[0] for p in images]
  files = {o: [os.path.join(work_dir, f"{n}.w{o}.tfcae") for n in names] for o in (write, read)}
  for o in files:
    compress_under(model_dir, o, images, files[o], quality=quality)
  records = []
  for i, name in enumerate(names):
    path = files[write][i]
    with open(path, "rb") as a, open(files[read][i], "rb") as b:
      written = a.read()
      record = {"image": name, "bytes_equal": written == b.read(), "max_abs_diff": None,
                "cross_psnr": None, "message": ""}
    if as_version_1:
      stream = bitstream.parse(written)
      path = os.path.join(work_dir, f"{name}.w{write}.v1.tfcae")
      with open(path, "wb") as f:
        f.write(bitstream.pack(stream.fingerprint, stream.height, stream.width,
                               stream.strings))
    reference = os.path.join(work_dir, f"{name}.ref.npy")
    cross = os.path.join(work_dir, f"{name}.cross.npy")
    failure = decompress_under(model_dir, write, path, reference, timeout)
    if failure is not None:
      raise RuntimeError(f"{name}: the writing kernels cannot decode their own file: "
                         f"{failure[1]}")
    original = load_rgb_image(images[i])
    record["psnr"] = metrics.psnr(original, np.load(reference))
    failure = decompress_under(model_dir, read, path, cross, timeout)
    if failure is None:
      decoded = np.load(cross)
      diff = int(np.max(np.abs(decoded.astype(np.int16) - np.load(reference).astype(np.int16))))
      record.update(status="ok" if diff <= 1 else "garbage", max_abs_diff=diff,
                    cross_psnr=metrics.psnr(original, decoded))
    else:
      record.update(status=failure[0], message=failure[1])
    records.append(record)
    if log:
      log(f"{name}: {record['status']}" + (f" (max |Δ| {diff})" if failure is None else
                                           f": {record['message'][:100]}"))
  return records
