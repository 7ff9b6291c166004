"""bin/compress, bin/decompress, bin/evaluate as a user runs them, and the SavedModel API."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, SAMPLE_EVAL, run_tool

# Every test here runs the tools in fresh processes on trained, exported models: second tier.
pytestmark = pytest.mark.slow

IMAGE = os.path.join(SAMPLE_EVAL, "kodim23.png")


@pytest.fixture(scope="module")
def compressed(exported_model, tmp_path_factory):
  """Compress one image twice, in two fresh processes; decompress in a third."""
  arch, model_dir = exported_model
  out = tmp_path_factory.mktemp(f"cli_{arch}")
  for name in ("a.tfcae", "b.tfcae"):
    r = run_tool("compress", f"--model_dir={model_dir}", f"--input={IMAGE}",
                 f"--output={out / name}")
    assert r.returncode == 0, r.stderr
    assert "bpp" in r.stdout
  r = run_tool("decompress", f"--model_dir={model_dir}", f"--input={out / 'a.tfcae'}",
               f"--output={out / 'a.png'}")
  assert r.returncode == 0, r.stderr
  return model_dir, out


def test_compress_is_deterministic_across_processes(compressed):
  _, out = compressed
  assert (out / "a.tfcae").read_bytes() == (out / "b.tfcae").read_bytes()


def test_cli_decode_equals_in_process_decode(compressed):
  from tfcae.deploy.codec import Codec
  model_dir, out = compressed
  codec = Codec(model_dir)
  data = (out / "a.tfcae").read_bytes()
  decoded = np.asarray(Image.open(out / "a.png"))
  np.testing.assert_array_equal(decoded, codec.decompress(data))
  assert decoded.shape == np.asarray(Image.open(IMAGE)).shape
  assert oct(os.stat(out / "a.png").st_mode & 0o777) != "0o600"


SERVING_CLIENT = r"""
import sys, numpy as np, tensorflow as tf, tensorflow_compression
from PIL import Image
model_dir, image_path, out = sys.argv[1:]
loaded = tf.saved_model.load(model_dir)
image = np.asarray(Image.open(image_path).convert("RGB"))
data = loaded.signatures["compress"](image=tf.constant(image))["bitstream"].numpy()
pixels = loaded.signatures["decompress"](bitstream=tf.constant(data))["image"].numpy()
assert "tfcae" not in sys.modules
open(out + ".tfcae", "wb").write(data)
np.save(out + ".npy", pixels)
"""


def test_saved_model_signatures_match_cli_without_tfcae(compressed, tmp_path):
  model_dir, out = compressed
  r = subprocess.run([sys.executable, "-c", SERVING_CLIENT, model_dir, IMAGE,
                      str(tmp_path / "sig")], capture_output=True, text=True,
                     env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=""),
                     cwd=str(tmp_path))
  assert r.returncode == 0, r.stderr
  assert (tmp_path / "sig.tfcae").read_bytes() == (out / "a.tfcae").read_bytes()
  np.testing.assert_array_equal(np.load(tmp_path / "sig.npy"),
                                np.asarray(Image.open(out / "a.png")))


def _damaged(data):
  mid = len(data) // 2
  return {
      "empty": (b"", "empty file"),
      "truncated": (data[:mid], "truncated"),
      "corrupted": (data[:mid] + bytes([data[mid] ^ 0x10]) + data[mid + 1:], "CRC-32"),
      "foreign": (open(IMAGE, "rb").read(), "not a tfcae bitstream"),
  }


@pytest.mark.parametrize("kind", ["empty", "truncated", "corrupted", "foreign"])
def test_broken_files_fail_cleanly(compressed, tmp_path, kind):
  model_dir, out = compressed
  data, message = _damaged((out / "a.tfcae").read_bytes())[kind]
  broken = tmp_path / "broken.tfcae"
  broken.write_bytes(data)
  target = tmp_path / "out.png"
  r = run_tool("decompress", f"--model_dir={model_dir}", f"--input={broken}",
               f"--output={target}")
  assert r.returncode == 1
  assert r.stderr.strip().startswith("error:") and message in r.stderr
  assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
  assert not target.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def test_file_from_another_model_is_refused(compressed, other_factorized_dir, tmp_path):
  model_dir, out = compressed
  target = tmp_path / "out.png"
  r = run_tool("decompress", f"--model_dir={other_factorized_dir}", f"--input={out / 'a.tfcae'}",
               f"--output={target}")
  assert r.returncode == 1 and "another model" in r.stderr and not target.exists()


def test_failed_decode_keeps_existing_output(compressed, tmp_path):
  model_dir, _ = compressed
  target = tmp_path / "keep.png"
  target.write_bytes(b"precious")
  (tmp_path / "empty.tfcae").write_bytes(b"")
  r = run_tool("decompress", f"--model_dir={model_dir}", f"--input={tmp_path / 'empty.tfcae'}",
               f"--output={target}")
  assert r.returncode == 1 and target.read_bytes() == b"precious"


def test_grayscale_converted_and_transparency_refused(factorized_dir, tmp_path):
  rgb = np.asarray(Image.open(IMAGE))[:40, :50]
  Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
  r = run_tool("compress", f"--model_dir={factorized_dir}", f"--input={tmp_path / 'gray.png'}",
               f"--output={tmp_path / 'gray.tfcae'}")
  assert r.returncode == 0, r.stderr
  rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 128, np.uint8)], axis=-1)
  Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
  r = run_tool("compress", f"--model_dir={factorized_dir}", f"--input={tmp_path / 'alpha.png'}",
               f"--output={tmp_path / 'alpha.tfcae'}")
  assert r.returncode == 1 and "transparency" in r.stderr
  assert not (tmp_path / "alpha.tfcae").exists()


@pytest.mark.parametrize("args, message", [
    (["--model_dir=/nonexistent", f"--input={IMAGE}", "--output=x"], "no such model"),
    (["--model_dir={model}", "--input=/nonexistent.png", "--output=x"], "no such file"),
    (["--model_dir={model}", f"--input={REPO}/setup.py", "--output=x"], "cannot read image"),
    (["--model_dir={repo}", f"--input={IMAGE}", "--output=x"], "no exported model"),
    ([f"--input={IMAGE}", "--output=x"], "give --model_dir, or a zoo model"),
    (["--model_dir={model}", "--model=factorized", "--quality=1", f"--input={IMAGE}",
      "--output=x"], "not both"),
    (["--model=factorized", f"--input={IMAGE}", "--output=x"], "go together"),
    (["--model=nope", "--quality=1", f"--input={IMAGE}", "--output=x"], "no zoo model nope/1"),
])
def test_compress_bad_input(factorized_dir, tmp_path, args, message):
  args = [a.format(model=factorized_dir, repo=REPO) for a in args]
  r = run_tool("compress", *args[:-1], f"--output={tmp_path / 'x.tfcae'}")
  assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr
  assert not (tmp_path / "x.tfcae").exists()


def test_evaluate_writes_compressai_json(factorized_dir, tmp_path):
  out = tmp_path / "eval.json"
  r = run_tool("evaluate", f"--model_dir={factorized_dir}", f"--images={SAMPLE_EVAL}/kodim2*.png",
               f"--output={out}")
  assert r.returncode == 0, r.stderr
  data = json.loads(out.read_text())
  assert {"name", "description", "results"} <= set(data)
  res = data["results"]
  for key in ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time",
              "estimated_bpp"):
    assert len(res[key]) == 1 and np.isfinite(res[key][0])
  (image,) = data["points"][0]["images"]
  assert image["image"] == "kodim23.png"
  # bpp is measured from the file: compressing again gives exactly these bytes.
  from tfcae.deploy.codec import Codec
  from tfcae.io.fileio import load_rgb_image
  pixels = load_rgb_image(IMAGE)
  data_len = len(Codec(factorized_dir).compress(pixels))
  assert image["bpp"] == pytest.approx(8 * data_len / (pixels.shape[0] * pixels.shape[1]))
