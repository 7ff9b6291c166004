"""Tiled coding (tfcae.models.tiling): the latents and pixels of whole-image coding, with
the transforms run window by window; tiles below the receptive field refused; files
written either way decode either way; a device encoder with a static input shape codes
an image larger than its window."""
import os

import numpy as np
import pytest
import tensorflow as tf

from tfcae import TfcaeError
from tfcae.models import tiling
from tfcae.models.registry import ARCHITECTURES
from tfcae.serving.codec import Codec
from tfcae.serving.exported import ExportedModel

from conftest import REPO, run_tool, sample_image, tiered

# Architecture settings of small models (random weights: the transforms' arithmetic is
# what tiling must preserve, not what they learned).
SMALL = {"caep": dict(caep_blocks=1), "meanscale-vbr": dict(rate_points=3)}


def small_model(architecture):
  model = ARCHITECTURES.get(architecture)(num_filters=8, **SMALL.get(architecture, {}))
  model.prepare_for_compression()
  return model


def coding_inputs(model, image):
  quality = (tf.constant(2.5),) if architecture_of(model) == "meanscale-vbr" else ()
  return (tf.constant(image),) + quality


def architecture_of(model):
  return model.get_config()["architecture"]


def test_receptive_field_of_the_ballé_2017_analysis_is_measured_exactly():
  # 9×9 stride 4, then 5×5 stride 2 twice: 9 + 4·4 + 4·8 = 57 pixels; windows align to 16.
  model = small_model("factorized")
  assert tiling.receptive_field(model.encode, 3, 16, upsampling=False) == 57
  assert model.tiling_halos() == {"analysis_halo": 64, "synthesis_halo": 4,
                                  "latent_stride": 16}


# The scale and mean-scale hyperpriors share the variable-rate model's transforms and
# codec: they join it in the slow tier.
@pytest.mark.parametrize("architecture", tiered(list(ARCHITECTURES), "factorized", "caep",
                                                "meanscale-vbr"))
def test_tiled_coding_gives_the_whole_image_latents_and_pixels(architecture, rng):
  model = small_model(architecture)
  halo = model.tiling_halos()["analysis_halo"]
  # Not a multiple of any stride, and several tiles of the smallest legal size each way.
  image = rng.integers(0, 256, (3 * halo + 37, 4 * halo + 11, 3)).astype(np.uint8)
  whole = model.encode_image(tf.constant(image), 0).numpy()
  tiled = model.encode_image(tf.constant(image), halo).numpy()
  assert tiled.shape == whole.shape
  np.testing.assert_allclose(tiled, whole, atol=1e-3 * max(1., np.abs(whole).max()))
  # Symbols identical except a rare rounding tie.
  assert np.mean(np.round(tiled) != np.round(whole)) <= 1e-3
  inputs = coding_inputs(model, image)
  whole_file = model.compress_tiled(*inputs, tf.constant(0)).numpy()
  tiled_file = model.compress_tiled(*inputs, tf.constant(halo)).numpy()
  # An image of no more pixels than a default window is one: `compress` codes it whole.
  assert image.size // 3 <= tiling.AUTO_ABOVE_PIXELS
  assert model.compress(*inputs).numpy() == whole_file
  with pytest.raises(tf.errors.InvalidArgumentError, match="receptive field"):
    model.compress_tiled(*inputs, tf.constant(halo - model.coding_stride))
  unlimited = tf.constant(0, tf.int64)
  decoded = {}
  for name, data in (("whole", whole_file), ("tiled", tiled_file)):
    for tile in (0, halo):  # written either way, decoded either way
      decoded[name, tile] = model.decompress_tiled(tf.constant(data), unlimited,
                                                   tf.constant(tile)).numpy()
      assert decoded[name, tile].shape == image.shape
  for name in ("whole", "tiled"):
    difference = np.abs(decoded[name, halo].astype(int) - decoded[name, 0])
    assert difference.max() <= 1
  if whole_file == tiled_file:  # the usual case: no tie flipped
    assert np.array_equal(decoded["whole", 0], decoded["tiled", 0])


def test_codec_tiles_and_refuses_bad_tiles(factorized_dir):
  exported = ExportedModel(factorized_dir)
  assert exported.tiling["latent_stride"] == 16
  halo = exported.tiling["analysis_halo"]
  image = sample_image()  # 768 x 512: several tiles of 128
  whole, tiled = Codec(factorized_dir, tile=0), Codec(factorized_dir, tile=128)
  data = tiled.compress(image)
  assert np.abs(tiled.decompress(data).astype(int) - whole.decompress(data)).max() <= 1
  assert np.abs(whole.decompress(whole.compress(image)).astype(int) -
                tiled.decompress(data)).max() <= 1
  for bad, reason in ((halo - 16, "smaller than the model's receptive field"),
                      (-1, "must be 0")):
    with pytest.raises(TfcaeError, match=reason):
      Codec(factorized_dir, tile=bad)


def test_an_export_without_tiled_coding_codes_whole_images_and_says_so():
  legacy = os.path.join(REPO, "tests", "fixtures", "legacy", "factorized")
  exported = ExportedModel(legacy)
  assert exported.tiling is None
  with pytest.raises(TfcaeError, match="predates tiled coding"):
    Codec(legacy, tile=256)


@pytest.mark.slow  # three tool processes; the Codec test above covers the same in-process
def test_cli_tiled_file_decodes_untiled_and_a_small_tile_writes_nothing(factorized_dir,
                                                                       tmp_path):
  source = os.path.join(REPO, "data", "sample", "eval", "kodim23.png")
  out = tmp_path / "tiled.tfcae"
  done = run_tool("compress", f"--model_dir={factorized_dir}", f"--input={source}",
                  f"--output={out}", "--tile=128")
  assert done.returncode == 0, done.stderr
  png = tmp_path / "untiled.png"
  done = run_tool("decompress", f"--model_dir={factorized_dir}", f"--input={out}",
                  f"--output={png}", "--tile=0")
  assert done.returncode == 0, done.stderr
  from tfcae.io.fileio import load_rgb_image
  expected = Codec(factorized_dir, tile=0).decompress(out.read_bytes())
  assert np.array_equal(load_rgb_image(str(png)), expected)
  refused = tmp_path / "refused.tfcae"
  done = run_tool("compress", f"--model_dir={factorized_dir}", f"--input={source}",
                  f"--output={refused}", "--tile=32")
  assert done.returncode != 0
  assert "receptive field" in done.stderr and len(done.stderr.strip().splitlines()) == 1
  assert not refused.exists()


@pytest.mark.slow
def test_evaluate_codes_in_tiles(factorized_dir, tmp_path):
  from tfcae.evaluation.rd import evaluate_model_dirs
  source = os.path.join(REPO, "data", "sample", "eval", "kodim23.png")
  points = [evaluate_model_dirs([factorized_dir], [source], progress=False, tile=tile)
            ["results"] for tile in (0, 128)]
  assert points[1]["bpp"][0] == pytest.approx(points[0]["bpp"][0], rel=2e-3)
  assert points[1]["psnr-rgb"][0] == pytest.approx(points[0]["psnr-rgb"][0], abs=0.01)
  out = tmp_path / "rd.json"
  done = run_tool("evaluate", f"--model_dir={factorized_dir}", f"--images={source}",
                  f"--output={out}", "--tile=32")
  assert done.returncode != 0 and "receptive field" in done.stderr
  assert not out.exists()


def test_a_static_shape_tflite_encoder_codes_an_image_larger_than_its_window(factorized_dir,
                                                                            tmp_path):
  from tfcae.deploy import tflite
  from tfcae.deploy.hostcoding import HostCoder
  path = tmp_path / "window.tflite"
  info = tflite.export_tflite(factorized_dir, str(path), tile=128)
  halo = ExportedModel(factorized_dir).tiling["analysis_halo"]
  window = 128 + 2 * halo
  encoder = tflite.TFLiteEncoder(str(path))
  assert encoder.input_window == (window, window)
  assert f"{window}, {window}" in info["input"]
  host, server = HostCoder(str(path), factorized_dir), Codec(factorized_dir, tile=0)
  image = sample_image()  # 768 x 512: 3 x 2 windows of 256
  assert min(image.shape[:2]) > window
  data = host.compress(image)
  # The symbols of whole-image coding (a float encoder: bar a rounding tie).
  whole = server.compress(image)
  assert len(data) == pytest.approx(len(whole), rel=0.002)
  decoded = server.decompress(data)
  assert np.abs(decoded.astype(int) - server.decompress(whole)).mean() < 0.01
  small = image[:100, :150]  # smaller than a window: edge-padded into one
  assert server.decompress(host.compress(small)).shape == small.shape


# --- large PNGs in stripes of rows (tfcae.io.fileio) -------------------------------------
@pytest.fixture
def streaming(monkeypatch):
  """Every PNG counts as large: the row-by-row reader and writer run on small images."""
  from tfcae.io import fileio
  monkeypatch.setattr(fileio, "STREAM_PIXELS", 100)
  return fileio


def test_large_pngs_are_read_and_written_row_by_row_with_the_same_rules(streaming, tmp_path,
                                                                        rng):
  from PIL import Image
  image = rng.integers(0, 256, (40, 30, 3)).astype(np.uint8)
  streaming.save_png(tmp_path / "rgb.png", image)
  with Image.open(tmp_path / "rgb.png") as written:  # a PNG any reader takes
    assert np.array_equal(np.asarray(written), image)
  assert np.array_equal(streaming.load_rgb_image(tmp_path / "rgb.png"), image)
  Image.fromarray(image[..., 0]).save(tmp_path / "gray.png")
  assert np.array_equal(streaming.load_rgb_image(tmp_path / "gray.png"),
                        np.repeat(image[..., :1], 3, axis=2))
  rgba = np.concatenate([image, np.full((40, 30, 1), 255, np.uint8)], axis=2)
  Image.fromarray(rgba).save(tmp_path / "opaque.png")
  assert np.array_equal(streaming.load_rgb_image(tmp_path / "opaque.png"), image)
  rgba[3, 4, 3] = 0
  Image.fromarray(rgba).save(tmp_path / "transparent.png")
  Image.fromarray(image[..., 0].astype(np.uint16) * 257).save(tmp_path / "deep.png")
  (tmp_path / "cut.png").write_bytes((tmp_path / "rgb.png").read_bytes()[:300])
  for name, reason in (("transparent", "transparency"), ("deep", "16-bit"),
                       ("cut", "cannot read image")):
    with pytest.raises(TfcaeError, match=reason):
      streaming.load_rgb_image(tmp_path / f"{name}.png")
  with pytest.raises(TfcaeError, match="over the limit"):
    streaming.load_rgb_image(tmp_path / "rgb.png", max_pixels=1000)
