"""Every model shipped in zoo/: it loads by name, round-trips a shipped image
bit-exactly through the CLI and the SavedModel signatures, carries its card's fingerprint,
is found by that fingerprint, and decodes across TensorFlow's oneDNN kernels on and off.
A module of its own: tests/test_zoo.py points TFCAE_ZOO at a tiny zoo for its whole module."""
import json
import os

import numpy as np
import pytest

from tfcae import zoo
from tfcae.deploy import crossplatform
from tfcae.serving.codec import Codec
from tfcae.zoo.device import TFLITE_FILES
from tfcae.zoo.sparse import SPARSE_FAMILIES

from conftest import REPO, SAMPLE_EVAL, run_tool, sample_image, tiered

IMAGE = os.path.join(SAMPLE_EVAL, "kodim23.png")
SHIPPED = zoo.list() if not os.environ.get("TFCAE_ZOO") else []
QUALITIES = {}  # family: its ladder's qualities
for _card in SHIPPED:
  QUALITIES.setdefault(_card["family"], []).append(_card.get("quality") or 0)
# The default tier checks the first model of each family in process; the slow tier all.
IN_PROCESS = tiered(SHIPPED, *[c for c in SHIPPED
                               if (c.get("quality") or 0) == min(QUALITIES[c["family"]])])
# The two-process checks (CLI, oneDNN on/off) run on the ends of each ladder: the models
# share one code path and differ in their weights and tables, which the in-process test
# checks for every model; the ends span the smallest and the largest tables.
ENDS = [c for c in SHIPPED
        if (c.get("quality") or 0) in (min(QUALITIES[c["family"]]), max(QUALITIES[c["family"]]))]
# What a variable-rate model (one folder, every quality) codes the checks at: between rate
# points, where its gains are interpolated.
VARIABLE_QUALITY = 2.5


def coding(card):
  """The quality argument of a zoo model's compress: none for a model of one rate."""
  return {"quality": VARIABLE_QUALITY} if card.get("rate_points") else {}


def test_the_zoo_ships_a_ladder():
  if os.environ.get("TFCAE_ZOO"):
    pytest.skip("TFCAE_ZOO points elsewhere")
  assert len([c for c in SHIPPED if c["family"] == "factorized"]) >= 6
  # Every dense family is a ladder (≥ 6 λ); sparse families take some of a ladder's; a
  # variable-rate family is one model for at least 8 rate points.
  for family in {c["family"] for c in SHIPPED} - set(SPARSE_FAMILIES):
    cards = [c for c in SHIPPED if c["family"] == family]
    if cards[0].get("rate_points"):
      assert len(cards) == 1 and cards[0]["rate_points"] >= 8
      assert len(cards[0]["kodak"]["quality"]) == cards[0]["rate_points"]
      continue
    assert len(cards) >= 6 and len({c["lmbda"] for c in cards}) == len(cards)
    assert len({c["distortion"] for c in cards}) == 1


def check_decodes_across_onednn(model_dir, tmp_path, quality=None):
  """A file written with oneDNN on decodes with it off and the other way round, to pixels
  within ±1. Whether the two settings write the same bytes is not checked: a float encoder
  does not guarantee it, as another summation order can flip the rounding of a latent that
  lies at .5 (factorized-msssim/6 and factorized-l11/5 on kodim23 on an AVX-512 EPYC); the
  files then differ and each still decodes across."""
  for write in (0, 1):
    (record,) = crossplatform.cross_check(model_dir, [IMAGE], str(tmp_path / f"w{write}"),
                                          write=write, read=1 - write, quality=quality)
    assert record["status"] == "ok", record


@pytest.mark.parametrize("card", IN_PROCESS, ids=[c["name"] for c in SHIPPED])
def test_shipped_model_round_trips_and_matches_its_card(card):
  """In process: loads by name, carries its card's fingerprint, is found by it, and its
  SavedModel signatures round-trip the image (the CLI's part is the slow tier's, below:
  two fresh processes per model; tests/test_zoo.py runs the CLI on a tiny zoo)."""
  folder = card["path"]
  codec = zoo.load(card["family"], card.get("quality"))
  assert os.path.samefile(codec.model_dir, folder)
  assert codec.fingerprint.hex() == card["fingerprint"]
  with open(os.path.join(folder, "tfcae_export.json")) as f:
    assert json.load(f)["fingerprint"] == card["fingerprint"]
  assert os.path.samefile(zoo.find(bytes.fromhex(card["fingerprint"])), folder)
  data = codec.compress(sample_image(), **coding(card))
  assert codec.compress(sample_image(), **coding(card)) == data  # deterministic
  stream = codec.parse(data)
  assert (stream.height, stream.width) == sample_image().shape[:2]
  from tfcae.objectives import metrics
  # A real reconstruction (kodim23 at the lowest quality: ≈ 28 dB), not a shape.
  assert metrics.psnr(sample_image(), codec.decompress(data)) > 24.


@pytest.mark.slow
@pytest.mark.parametrize("card", ENDS, ids=[c["name"] for c in ENDS])
def test_shipped_model_round_trips_through_the_cli(card, tmp_path):
  """bin/compress by name writes the signature's bytes; bin/decompress without --model
  finds the model by the file's fingerprint and writes the signature's pixels."""
  codec = Codec(card["path"])
  out = tmp_path / "x.tfcae"
  quality = card.get("quality") or VARIABLE_QUALITY
  r = run_tool("compress", f"--model={card['family']}", f"--quality={quality}",
               f"--input={IMAGE}", f"--output={out}")
  assert r.returncode == 0, r.stderr
  # CLI = signature, bit for bit.
  assert out.read_bytes() == codec.compress(sample_image(), **coding(card))
  r = run_tool("decompress", f"--input={out}", f"--output={tmp_path / 'x.png'}")
  assert r.returncode == 0, r.stderr
  from tfcae.io.fileio import load_rgb_image
  np.testing.assert_array_equal(load_rgb_image(str(tmp_path / "x.png")),
                                codec.decompress(out.read_bytes()))


@pytest.mark.slow
@pytest.mark.parametrize("card", ENDS, ids=[c["name"] for c in ENDS])
def test_shipped_model_decodes_across_onednn(card, tmp_path):
  check_decodes_across_onednn(card["path"], tmp_path, quality=coding(card).get("quality"))


def test_zoo_fits_its_budget():
  total = sum(os.path.getsize(os.path.join(d, f))
              for d, _, fs in os.walk(os.path.join(REPO, "zoo")) for f in fs)
  assert total <= 130e6  # docs/zoo.md, "Size budget"


# --- sparse families (tfcae.zoo.sparse): cheap encoders and their device flatbuffers --------
SPARSE = [c for c in SHIPPED if c["family"] in SPARSE_FAMILIES]


def test_every_sparse_family_is_shipped():
  if os.environ.get("TFCAE_ZOO"):
    pytest.skip("TFCAE_ZOO points elsewhere")
  for name, family in SPARSE_FAMILIES.items():
    assert sorted(c["quality"] for c in SPARSE if c["family"] == name) == sorted(
        family.qualities)


@pytest.mark.parametrize("card", SPARSE, ids=[c["name"] for c in SPARSE])
def test_sparse_card_states_what_analyze_counts(card):
  """The card's encoder cost is the accounting of the shipped weights (what bin/analyze
  prints), and the dense sibling is the zoo model of the same quality and λ."""
  from tfcae.analysis import accounting
  from tfcae.training.export import load_trained
  total = accounting.analyze(load_trained(card["path"], for_compression=False))[
      "encoder"]["total"]
  encoder = card["encoder"]
  assert encoder["S"] == total["S"]
  assert encoder["macs_per_pixel"] == total["maccs_per_pixel"] == card["macs_per_pixel"][
      "encoder"]
  assert encoder["macs_per_pixel_reduced"] == total["maccs_per_pixel_reduced"]
  assert encoder["weight_bytes"]["reduced"] == total["memory_reduced_bytes"]
  assert encoder["peak_activation_bytes_per_pixel"]["reduced"] == total[
      "peak_activation_bytes_per_pixel_reduced"]
  sibling = zoo.card(SPARSE_FAMILIES[card["family"]].dense_family, card["quality"])
  assert encoder["dense_sibling"] == sibling["name"] and card["lmbda"] == sibling["lmbda"]
  assert encoder["macs_reduction"] >= 0.3  # a sparse model that removes nothing is no model


# Every shipped model with device encoders (the sparse families, and dense models that
# ship theirs: tfcae.zoo.device).
DEVICE = [c for c in SHIPPED if c.get("device_encoders")]
DEVICE_FAST = tiered(DEVICE, *[c for c in DEVICE if c["family"] == "factorized"][:1])


def test_factorized_3_and_5_ship_device_encoders():
  if os.environ.get("TFCAE_ZOO"):
    pytest.skip("TFCAE_ZOO points elsewhere")
  shipped = {c["name"] for c in DEVICE}
  assert {"factorized/3", "factorized/5"} | {c["name"] for c in SPARSE} <= shipped
  for card in DEVICE:
    assert sorted(card["device_encoders"]) == sorted(TFLITE_FILES)
    for name, block in card["device_encoders"].items():
      with open(os.path.join(card["path"], name + ".json")) as f:
        info = json.load(f)
      if TFLITE_FILES[name] == "int8":  # the integer GDN graph: no float ABS, int8 |x|
        assert info["int8_gdn"] == "integer" and "LEAKY_RELU" in info["ops"]
      assert block["bytes"] == os.path.getsize(os.path.join(card["path"], name))
      assert block["kodak"]["images"] == 24


@pytest.mark.parametrize("card", DEVICE_FAST, ids=[c["name"] for c in DEVICE])
def test_device_encoders_write_files_the_zoo_model_decodes(card):
  """The shipped float32 and int8 TFLite encoders code a Kodak image through host coding;
  the file decodes with the zoo model. Float32: the SavedModel's pixels within ±1 (≥ 99 %
  of them). int8: within 1.5 dB of it (its symbols differ by ±1 in a few per cent of
  places)."""
  from tfcae.deploy.hostcoding import HostCoder
  from tfcae.objectives import metrics
  codec = zoo.load(card["family"], card.get("quality"))
  image = sample_image()
  reference = codec.decompress(codec.compress(image))
  for name in TFLITE_FILES:
    path = os.path.join(card["path"], name)
    with open(path + ".json") as f:
      info = json.load(f)
    assert info["reduced_encoder"] == (card["family"] in SPARSE_FAMILIES)
    assert info["fingerprint"] == card["fingerprint"]
    assert card["device_encoders"][name]["bytes"] == os.path.getsize(path)
    decoded = codec.decompress(HostCoder(path, card["path"]).compress(image))
    if TFLITE_FILES[name] == "none":
      # The SavedModel's pixels, up to the rare latent at .5 that XNNPACK's summation order
      # rounds the other way (none here; a CPU with other kernels may flip one).
      off = np.abs(decoded.astype(int) - reference.astype(int)) > 1
      assert off.mean() <= 0.01
      assert abs(metrics.psnr(image, decoded) - metrics.psnr(image, reference)) < 0.05
    else:
      assert metrics.psnr(image, decoded) > metrics.psnr(image, reference) - 1.5


@pytest.mark.slow
@pytest.mark.parametrize("card", DEVICE, ids=[c["name"] for c in DEVICE])
def test_device_encoders_through_the_cli(card, tmp_path):
  """bin/compress --tflite by zoo name, then bin/decompress (model found by fingerprint):
  the pixels are the SavedModel decompress signature's on the same file, within ±1; and,
  for a sparse model, bin/analyze prints the card's encoder cost next to its Kodak result."""
  import tensorflow as tf
  module = tf.saved_model.load(card["path"])
  for name in TFLITE_FILES:
    out, png = tmp_path / f"{name}.tfcae", tmp_path / f"{name}.png"
    r = run_tool("compress", f"--model={card['family']}", f"--quality={card['quality']}",
                 f"--tflite={os.path.join(card['path'], name)}", f"--input={IMAGE}",
                 f"--output={out}")
    assert r.returncode == 0, r.stderr
    r = run_tool("decompress", f"--input={out}", f"--output={png}")
    assert r.returncode == 0, r.stderr
    from tfcae.io.fileio import load_rgb_image
    signature = module.decompress(tf.constant(out.read_bytes())).numpy()
    assert np.abs(load_rgb_image(str(png)).astype(int) - signature.astype(int)).max() <= 1
  if card["family"] not in SPARSE_FAMILIES:
    return
  r = run_tool("analyze", f"--model={card['family']}", f"--quality={card['quality']}")
  assert r.returncode == 0, r.stderr
  encoder = card["encoder"]
  assert (f"{encoder['macs_per_pixel'] / 1e3:.2f} -> {encoder['macs_per_pixel_reduced'] / 1e3:.2f}"
          " kMAC/px") in r.stdout
  assert f"{card['kodak']['bpp']:.3f} bpp, {card['kodak']['psnr-rgb']:.2f} dB PSNR" in r.stdout


