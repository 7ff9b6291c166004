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
import queue
import subprocess
import sys
import tempfile
import threading

import numpy as np

from tfcae.io import bitstream
from tfcae.io.fileio import load_rgb_image
from tfcae.objectives import metrics

__all__ = ["compress_under", "decompress_under", "decompress_all_under", "cross_check"]

# The start of the one-line error of a decoder whose scale indices differ from the file's.
_MISMATCH = bitstream.PLATFORM_MISMATCH[:40]
_PRELUDE = ("import sys, numpy as np, tensorflow as tf, tensorflow_compression\n"
            "from PIL import Image\nm = tf.saved_model.load(sys.argv[1])\n")
# argv: model, quality ("" for a model of one rate), then (image, output) pairs.
_COMPRESS = ("q = () if not sys.argv[2] else (tf.constant(float(sys.argv[2])),)\n"
             "for src, dst in zip(sys.argv[3::2], sys.argv[4::2]):\n"
             "  x = np.asarray(Image.open(src).convert('RGB'))\n"
             "  open(dst, 'wb').write(m.compress(tf.constant(x), *q).numpy())\n")
# argv: model, then (file, output .npy) pairs. One line per file on stdout once it is done:
# "ok" or the error's last line (a decoder error is a file's result, not the process's).
_DECOMPRESS = ("for src, dst in zip(sys.argv[2::2], sys.argv[3::2]):\n"
               "  try:\n"
               "    np.save(dst, m.decompress(tf.constant(open(src, 'rb').read())).numpy())\n"
               "    print('ok', flush=True)\n"
               "  except Exception as e:\n"
               "    lines = [l.strip() for l in str(e).splitlines() if l.strip()] or ['']\n"
               "    mismatch = [l for l in lines if %r in l]\n"
               "    print('error ' + (mismatch[0] if mismatch else\n"
               "                      type(e).__name__ + ': ' + lines[0]), flush=True)\n"
               % _MISMATCH)


def _env(onednn):
  """The environment of a fresh process with TensorFlow's oneDNN kernels on or off."""
  return dict(os.environ, TF_ENABLE_ONEDNN_OPTS=str(int(onednn)), TF_CPP_MIN_LOG_LEVEL="3")


def _run(code, onednn, args, timeout):
  return subprocess.run([sys.executable, "-c", _PRELUDE + code, *args], env=_env(onednn),
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
  """Decodes one file in a fresh process (decompress_all_under); returns None on success,
  else (status, message) with status "refused", "error" or "hang"."""
  return decompress_all_under(model_dir, onednn, [path], [output_npy], timeout)[0]


def _lines_into(stream, lines):
  """Puts each line of `stream` into the queue `lines`, then None at its end."""
  for line in stream:
    lines.put(line)
  lines.put(None)


def decompress_all_under(model_dir, onednn, paths, outputs, timeout=300):
  """Decodes files in fresh processes whose oneDNN setting is `onednn`: one process for as
  many files as it gets through (the SavedModel loads once), a new one after a file that
  gives no result within `timeout` seconds, which counts as a hang.

  Returns:
    One entry per file: None (decoded into its output .npy) or (status, message), status
    "refused" (the platform-mismatch error), "error" or "hang".
  """
  results = []
  while len(results) < len(paths):
    rest = list(zip(paths, outputs))[len(results):]
    argv = [sys.executable, "-c", _PRELUDE + _DECOMPRESS, model_dir,
            *[p for pair in rest for p in pair]]
    with tempfile.TemporaryFile("w+") as errors, subprocess.Popen(
        argv, env=_env(onednn), stdout=subprocess.PIPE, stderr=errors, text=True) as proc:
      lines = queue.Queue()
      threading.Thread(target=_lines_into, args=(proc.stdout, lines), daemon=True).start()
      before = len(results)
      while len(results) < len(paths):
        # The first file's clock includes loading the model.
        try:
          line = lines.get(timeout=timeout * (2 if len(results) == before else 1))
        except queue.Empty:
          proc.kill()
          results.append(("hang", f"no result after {timeout} s"))
          break
        if line is None:  # the process died: the file it was on fails with its message
          proc.wait()
          errors.seek(0)
          tail = [l for l in errors.read().splitlines() if l.strip()]
          results.append(("error", tail[-1] if tail else f"exit code {proc.returncode}"))
          break
        status, _, message = line.strip().partition(" ")
        if status == "ok":
          results.append(None)
        else:
          results.append(("refused" if _MISMATCH in message else "error", message))
  return results


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
  paths = list(files[write])
  if as_version_1:
    for i, name in enumerate(names):
      with open(paths[i], "rb") as f:
        stream = bitstream.parse(f.read())
      paths[i] = os.path.join(work_dir, f"{name}.w{write}.v1.tfcae")
      with open(paths[i], "wb") as f:
        f.write(bitstream.pack(stream.fingerprint, stream.height, stream.width,
                               stream.strings))
  references = [os.path.join(work_dir, f"{n}.ref.npy") for n in names]
  crosses = [os.path.join(work_dir, f"{n}.cross.npy") for n in names]
  own = decompress_all_under(model_dir, write, paths, references, timeout)
  other = decompress_all_under(model_dir, read, paths, crosses, timeout)
  records = []
  for i, name in enumerate(names):
    with open(files[write][i], "rb") as a, open(files[read][i], "rb") as b:
      record = {"image": name, "bytes_equal": a.read() == b.read(), "max_abs_diff": None,
                "cross_psnr": None, "message": ""}
    if own[i] is not None:
      raise RuntimeError(f"{name}: the writing kernels cannot decode their own file: "
                         f"{own[i][1]}")
    original = load_rgb_image(images[i])
    reference = np.load(references[i])
    record["psnr"] = metrics.psnr(original, reference)
    if other[i] is None:
      decoded = np.load(crosses[i])
      diff = int(np.max(np.abs(decoded.astype(np.int16) - reference.astype(np.int16))))
      record.update(status="ok" if diff <= 1 else "garbage", max_abs_diff=diff,
                    cross_psnr=metrics.psnr(original, decoded))
    else:
      record.update(status=other[i][0], message=other[i][1])
    records.append(record)
    if log:
      log(f"{name}: {record['status']}" + (f" (max |Δ| {record['max_abs_diff']})"
                                           if other[i] is None else
                                           f": {record['message'][:100]}"))
  return records
