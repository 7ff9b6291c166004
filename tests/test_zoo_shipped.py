"""Every model shipped in zoo/ (issue 14): it loads by name, round-trips a shipped image
bit-exactly through the CLI and the SavedModel signatures, carries its card's fingerprint,
is found by that fingerprint, and decodes across TensorFlow's oneDNN kernels on and off
(issue 16's check). A module of its own: tests/test_zoo.py points TFCAE_ZOO at a tiny zoo
for its whole module."""
import json
import os

import numpy as np
import pytest

from tfcae import zoo
from tfcae.deploy import crossplatform
from tfcae.deploy.codec import Codec

from conftest import REPO, SAMPLE_EVAL, run_tool, sample_image

IMAGE = os.path.join(SAMPLE_EVAL, "kodim23.png")
SHIPPED = zoo.list() if not os.environ.get("TFCAE_ZOO") else []


def test_the_zoo_ships_a_ladder():
  if os.environ.get("TFCAE_ZOO"):
    pytest.skip("TFCAE_ZOO points elsewhere")
  assert len([c for c in SHIPPED if c["family"] == "factorized"]) >= 6
  for family in {c["family"] for c in SHIPPED}:  # every family is a ladder: ≥ 6 λ
    cards = [c for c in SHIPPED if c["family"] == family]
    assert len(cards) >= 6 and len({c["lmbda"] for c in cards}) == len(cards)
    assert len({c["distortion"] for c in cards}) == 1


def check_decodes_across_onednn(model_dir, tmp_path):
  """A file written with oneDNN on decodes with it off and the other way round, to pixels
  within ±1, and the bytes written do not depend on the setting."""
  for write in (0, 1):
    (record,) = crossplatform.cross_check(model_dir, [IMAGE], str(tmp_path / f"w{write}"),
                                          write=write, read=1 - write)
    assert record["bytes_equal"]
    assert record["status"] == "ok", record


@pytest.mark.parametrize("card", SHIPPED, ids=[c["name"] for c in SHIPPED])
def test_shipped_model_round_trips_and_matches_its_card(card, tmp_path):
  folder = card["path"]
  codec = Codec(folder)
  assert codec.fingerprint.hex() == card["fingerprint"]
  with open(os.path.join(folder, "tfcae_export.json")) as f:
    assert json.load(f)["fingerprint"] == card["fingerprint"]
  out = tmp_path / "x.tfcae"
  r = run_tool("compress", f"--model={card['family']}", f"--quality={card['quality']}",
               f"--input={IMAGE}", f"--output={out}")
  assert r.returncode == 0, r.stderr
  assert out.read_bytes() == codec.compress(sample_image())  # CLI = signature, bit for bit
  by_name = zoo.load(card["family"], card["quality"])
  assert by_name.compress(sample_image()) == out.read_bytes()
  assert os.path.samefile(zoo.find(bytes.fromhex(card["fingerprint"])), folder)
  r = run_tool("decompress", f"--input={out}", f"--output={tmp_path / 'x.png'}")
  assert r.returncode == 0, r.stderr
  from tfcae.io.fileio import load_rgb_image
  np.testing.assert_array_equal(load_rgb_image(str(tmp_path / "x.png")),
                                codec.decompress(out.read_bytes()))


@pytest.mark.slow
@pytest.mark.parametrize("card", SHIPPED, ids=[c["name"] for c in SHIPPED])
def test_shipped_model_decodes_across_onednn(card, tmp_path):
  check_decodes_across_onednn(card["path"], tmp_path)


def test_zoo_fits_its_budget():
  total = sum(os.path.getsize(os.path.join(d, f))
              for d, _, fs in os.walk(os.path.join(REPO, "zoo")) for f in fs)
  assert total <= 80e6


