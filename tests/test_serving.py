"""tfcae.serving: the exported model as an object, and the one parser of model references.

What is checked: a zoo model and the committed legacy run read through ExportedModel
(architecture, fingerprint, signatures, the string layout the file decoder checks, the
card); `open_model` takes a directory, `zoo:<family>/<quality>`, a family and quality, and
refuses anything else in one line; the layout a fresh export records equals the one the
model registry gives for exports that do not record it; a file is parsed once on its way
to the decoder; and ExportedModel's reading needs no TensorFlow.
"""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from tfcae import TfcaeError
from tfcae.io import bitstream
from tfcae.serving import ExportedModel, open_model

LEGACY = os.path.join(REPO, "tests", "fixtures", "legacy", "factorized")


@pytest.fixture(autouse=True)
def shipped_zoo(monkeypatch):
  monkeypatch.delenv("TFCAE_ZOO", raising=False)


def test_a_zoo_model_reads_through_exported_model():
  from tfcae import zoo
  exported = open_model("zoo:factorized/3")
  card = zoo.card("factorized", 3)
  assert exported.path == zoo.path("factorized", 3)
  assert exported.architecture == card["config"]
  assert exported.fingerprint.hex() == card["fingerprint"] and len(exported.fingerprint) == 8
  assert exported.stride == 16 and exported.num_strings == 1
  assert {"compress", "decompress", "decompress_limited", "compress_symbols"} <= set(
      exported.signatures)
  assert exported.string_layout == [{"table": "batched", "stride": 16, "coding": "channels"}]
  assert exported.card["quality"] == card["quality"]
  assert ExportedModel(LEGACY).card is None  # a run is not a zoo folder


def test_model_references_resolve_in_one_place(tmp_path):
  from tfcae import zoo
  folder = zoo.path("factorized", 2)
  assert open_model("zoo:factorized/2").path == folder
  assert open_model("factorized", quality=2).path == folder
  assert open_model(folder).path == folder
  assert open_model(ExportedModel(folder)).path == folder
  assert open_model(LEGACY).path == LEGACY
  for bad, fragments in [("zoo:factorized/99", ("no zoo model factorized/99", "available:")),
                         ("zoo:nothing", ("expected zoo:<family>/<quality>",)),
                         ("zoo:factorized/x", ("zoo quality must be an integer",)),
                         (str(tmp_path / "missing"), ("no such model directory",)),
                         (str(tmp_path), ("no exported model (saved_model.pb)",))]:
    with pytest.raises(TfcaeError) as error:
      open_model(bad)
    message = str(error.value)
    assert "\n" not in message and all(f in message for f in fragments), message
  with pytest.raises(TfcaeError, match="open_model"):
    ExportedModel("zoo:factorized/2")


@pytest.mark.parametrize("architecture", ["factorized", "hyperprior", "meanscale", "caep"])
def test_the_recorded_layout_is_the_registrys(architecture, tmp_path):
  """An export records its string layout; exports that do not (the zoo's, the legacy run)
  get the same one from the model registry, so no table outside tfcae/models/ knows it."""
  from tfcae.models import ARCHITECTURES, build_model
  cls = ARCHITECTURES.get(architecture)
  model = build_model({"architecture": architecture, "num_filters": 8})
  strings = cls.string_layout()
  assert len(strings) == model.num_strings == model.latent_codec().num_strings
  stride = cls.latent_stride or cls.stride
  assert strings[0]["stride"] == stride
  if architecture in ("hyperprior", "meanscale"):
    assert [s["table"] for s in strings] == ["indexed", "batched"]
    assert strings[1]["stride"] == 4 * stride == cls.stride
  else:
    assert [s["table"] for s in strings] == ["batched"]
  info = {"architecture": model.get_config(), "num_strings": model.num_strings}
  folder = ExportedModel(tmp_path)
  folder.write_info(info)
  assert ExportedModel(tmp_path).string_layout == strings  # from the registry
  folder.write_info(dict(info, string_layout=[{"table": "batched", "stride": 2,
                                               "coding": "channels"}]))
  assert ExportedModel(tmp_path).string_layout[0]["stride"] == 2  # the recorded one wins


def test_a_file_is_parsed_once_on_its_way_to_the_decoder(tmp_path, monkeypatch):
  from tfcae.io.fileio import load_rgb_image
  from tfcae.serving import codec as codec_module
  image = load_rgb_image(os.path.join(REPO, "data", "sample", "eval", "kodim23.png"))[:64, :96]
  data = codec_module.Codec(open_model("zoo:factorized/1")).compress(image)
  path = tmp_path / "a.tfcae"
  path.write_bytes(data)
  calls = []
  real = bitstream.parse
  monkeypatch.setattr(bitstream, "parse", lambda *a, **k: calls.append(1) or real(*a, **k))
  stats = codec_module.decompress_file(None, str(path), str(tmp_path / "a.png"))
  assert (stats["height"], stats["width"]) == (64, 96) and len(calls) == 1


def test_reading_an_export_does_not_import_tensorflow():
  code = ("import sys; from tfcae.serving import open_model; m = open_model(sys.argv[1]); "
          "m.architecture, m.fingerprint, m.signatures, m.card; "
          "sys.exit('tensorflow' in sys.modules)")
  result = subprocess.run([sys.executable, "-c", code, LEGACY], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr or "tensorflow was imported"


def test_the_trained_objective_is_found_for_every_kind_of_export(tmp_path):
  """What an encoder fine-tuning keeps (tfcae export --qat_steps): from the zoo card, from
  the training summary an older export names, or recorded by today's export."""
  from tfcae import zoo
  card = zoo.card("factorized", 3)
  assert open_model("zoo:factorized/3").trained_objective() == {
      "lmbda": card["lmbda"], "distortion": card["distortion"]}
  legacy = ExportedModel(LEGACY)
  with open(os.path.join(LEGACY, "summary.json"), encoding="utf-8") as f:
    settings = json.load(f)["settings"]
  assert legacy.trained_objective() == {"lmbda": settings["lmbda"],
                                        "distortion": settings.get("distortion", "mse")}
  recorded = ExportedModel(tmp_path)
  recorded.write_info({"objective": {"lmbda": 0.5, "distortion": "ms-ssim"}})
  assert recorded.trained_objective() == {"lmbda": 0.5, "distortion": "ms-ssim"}
  bare = ExportedModel(tmp_path / "bare")
  os.makedirs(bare.path)
  bare.write_info({})
  assert bare.trained_objective() is None
