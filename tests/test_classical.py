"""Classical codecs: round trips on real crops, rate monotonicity, sweeps, bin/bench."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfcae import TfcaeError
from tfcae.evaluation import classical
from tfcae.evaluation.results import read_results
from tfcae.io.fileio import load_rgb_image
from tfcae.objectives import metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "data", "sample", "eval")


@pytest.fixture(scope="module")
def crop():
  # A textured 96x128 crop of a real photograph (odd-free sizes are not required).
  return load_rgb_image(os.path.join(SAMPLE, "kodim23.png"))[200:296, 300:428].copy()


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory):
  """Two real 176x192 crops on disk: the smallest size class MS-SSIM accepts."""
  folder = tmp_path_factory.mktemp("tiny")
  for name in ("kodim04.png", "kodim15.png"):
    array = load_rgb_image(os.path.join(SAMPLE, name))[100:276, 150:342]
    Image.fromarray(array).save(folder / name)
  return folder


# A mid-rate quality per codec (jpeg2000: compression ratio 24 ~ 1 bpp).
MID = {"jpeg": 75, "webp": 75, "jpeg2000": 24, "avif": 60, "heic": 40}


@pytest.mark.parametrize("codec", classical.CODECS)
def test_round_trip(codec, crop):
  data = classical.encode(crop, codec, MID[codec])
  assert isinstance(data, bytes) and len(data) > 100
  decoded = classical.decode(data, codec)
  assert decoded.dtype == np.uint8 and decoded.shape == crop.shape
  # Lossy but close: a mid quality gives a recognisable picture.
  psnr = metrics.psnr(crop, decoded)
  assert 24 < psnr < 60, psnr
  # Bitstream magic numbers: the codec really is what it claims.
  magic = {"jpeg": data[:2] == b"\xff\xd8", "webp": data[8:12] == b"WEBP",
           "jpeg2000": data[4:8] == b"jP  " or data[:4] == b"\xff\x4f\xff\x51",
           "avif": data[4:12] == b"ftypavif", "heic": data[4:8] == b"ftyp" and b"heic" in data[8:24]}
  assert magic[codec], data[:24]


def test_jpeg2000_uses_colour_transform_and_ratio(crop):
  data = classical.encode(crop, "jpeg2000", 24)
  # The ratio is relative to 24 bpp: ratio 24 should land near 1 bpp.
  assert 0.7 < metrics.bpp(len(data), *crop.shape[:2]) < 1.2
  # With the colour transform (mct=1) the same rate buys clearly more quality than
  # coding R, G, B independently (Pillow's default).
  import io
  buf = io.BytesIO()
  Image.fromarray(crop).save(buf, format="JPEG2000", irreversible=True, mct=0,
                             quality_mode="rates", quality_layers=[24], num_resolutions=6)
  without = metrics.psnr(crop, classical.decode(buf.getvalue(), "jpeg2000"))
  assert metrics.psnr(crop, classical.decode(data, "jpeg2000")) > without + 0.3


def test_jpeg_is_420(crop):
  data = classical.encode(crop, "jpeg", 90)
  from PIL import JpegImagePlugin
  with Image.open(__import__("io").BytesIO(data)) as im:
    assert JpegImagePlugin.get_sampling(im) == 2  # 4:2:0


@pytest.mark.parametrize("codec", classical.CODECS)
def test_rate_monotonic_in_quality(codec, crop):
  qualities = classical.DEFAULT_QUALITIES[codec][::3]  # 4 well-spaced points
  sizes = [len(classical.encode(crop, codec, q)) for q in qualities]
  if not classical.QUALITY_INCREASES_RATE[codec]:
    sizes = sizes[::-1]
  assert all(a < b for a, b in zip(sizes, sizes[1:])), (qualities, sizes)


def test_default_sweeps_are_ten_points():
  for codec in classical.CODECS:
    qs = classical.DEFAULT_QUALITIES[codec]
    assert len(qs) == 10 and len(set(qs)) == 10
    for q in qs:
      classical.check_quality(codec, q)


def test_bad_codec_and_quality(crop):
  with pytest.raises(TfcaeError, match="unknown codec 'png'"):
    classical.encode(crop, "png", 50)
  with pytest.raises(TfcaeError, match="unknown codec"):
    classical.decode(b"xx", "mp3")
  with pytest.raises(TfcaeError, match=r"quality must be an integer in \[1, 95\]"):
    classical.encode(crop, "jpeg", 200)
  with pytest.raises(TfcaeError, match="quality"):
    classical.encode(crop, "webp", 50.5)
  with pytest.raises(TfcaeError, match="compression ratio"):
    classical.parse_qualities("jpeg2000", "10,0")
  with pytest.raises(TfcaeError, match="duplicate"):
    classical.parse_qualities("jpeg", "10,10")
  with pytest.raises(TfcaeError, match="cannot decode"):
    classical.decode(b"not an image", "jpeg")
  with pytest.raises(TfcaeError, match="uint8"):
    classical.encode(crop.astype(np.float32), "jpeg", 50)
  assert classical.parse_qualities("jpeg", " 10, 20 ,") == (10, 20)
  assert classical.parse_qualities("webp", None) == classical.DEFAULT_QUALITIES["webp"]


def test_sweep_records(tiny_images):
  paths = sorted(str(p) for p in tiny_images.iterdir())
  res = classical.sweep("jpeg", paths, "20,80", progress=False)
  assert res["name"] == "jpeg"
  assert [p["label"] for p in res["points"]] == ["q=20", "q=80"]
  r = res["results"]
  assert r["bpp"][0] < r["bpp"][1] and r["psnr-rgb"][0] < r["psnr-rgb"][1]
  for i, (point, q) in enumerate(zip(res["points"], (20, 80))):
    for record, path in zip(point["images"], paths):
      image = load_rgb_image(path)
      data = classical.encode(image, "jpeg", q)  # deterministic encoder
      assert record["bpp"] == pytest.approx(8 * len(data) / (176 * 192))
      decoded = classical.decode(data, "jpeg")
      assert record["psnr-rgb"] == pytest.approx(metrics.psnr(image, decoded))
      assert record["ms-ssim-rgb"] == pytest.approx(metrics.ms_ssim(image, decoded))
      assert record["encoding_time"] > 0 and record["decoding_time"] > 0
    assert r["bpp"][i] == pytest.approx(
        np.mean([rec["bpp"] for rec in point["images"]]))


def _bench(*args):
  return subprocess.run([sys.executable, os.path.join(REPO, "bin", "bench"), *args],
                        capture_output=True, text=True, cwd=REPO, timeout=120)


def test_bench_cli(tiny_images, tmp_path):
  out = tmp_path / "out" / "webp.json"
  proc = _bench("--codec=webp", f"--images={tiny_images}/*.png", f"--output={out}",
                "--qualities=10,50,90", "--noprogress")
  assert proc.returncode == 0, proc.stderr
  data = read_results(str(out))
  assert data["name"] == "webp"
  r = data["results"]
  for key in ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"):
    assert len(r[key]) == 3
  assert r["bpp"] == sorted(r["bpp"]) and 0 < r["bpp"][0] < r["bpp"][2] < 8
  assert 0.8 < r["ms-ssim-rgb"][0] < r["ms-ssim-rgb"][2] <= 1
  assert {rec["image"] for rec in data["points"][0]["images"]} == {"kodim04.png", "kodim15.png"}
  json.dumps(data)  # plain JSON types only


@pytest.mark.parametrize("args,message", [
    (("--codec=gif",), "unknown codec 'gif'"),
    (("--codec=jpeg", "--images=/nonexistent/*.png"), "no images match"),
    (("--codec=jpeg", "--qualities=5,abc"), "quality must be an integer"),
    (("--codec=jpeg", "--images=" + os.path.join(SAMPLE, "missing.png")), "no images match"),
])
def test_bench_cli_errors(tiny_images, tmp_path, args, message):
  full = list(args)
  if not any(a.startswith("--images") for a in full):
    full.append(f"--images={tiny_images}/*.png")
  full.append(f"--output={tmp_path / 'x.json'}")
  proc = _bench(*full)
  assert proc.returncode == 1
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
  assert not (tmp_path / "x.json").exists()


def test_bench_cli_small_image_error(tmp_path):
  Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "small.png")
  proc = _bench("--codec=jpeg", f"--images={tmp_path}/small.png", f"--output={tmp_path}/o.json")
  assert proc.returncode == 1
  assert proc.stderr.strip().startswith("error: ") and "too small for MS-SSIM" in proc.stderr
  assert "Traceback" not in proc.stderr
