"""The model zoo: publishing, lookup by name and fingerprint, the CLI, warm starts, and
every shipped model's round trip.

Most tests use a zoo built here from a tiny trained model (TFCAE_ZOO points at it); the
`shipped` tests run on every model in the repository's zoo/.
"""
import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfcae import TfcaeError, zoo
from tfcae.serving.codec import Codec
from tfcae.io import bitstream
from tfcae.zoo import ladder

from conftest import SAMPLE_EVAL, run_tool, sample_image
from test_zoo_shipped import check_decodes_across_onednn

EVAL_IMAGES = sorted(os.path.join(SAMPLE_EVAL, f) for f in os.listdir(SAMPLE_EVAL))
IMAGE = os.path.join(SAMPLE_EVAL, "kodim23.png")


@pytest.fixture(scope="module")
def tiny_zoo(factorized_dir, tmp_path_factory, monkeypatch_module):
  root = tmp_path_factory.mktemp("zoo")
  card = ladder.publish(factorized_dir, "factorized", 2, EVAL_IMAGES[:1], "bin/train ...",
                        zoo_root=str(root))
  monkeypatch_module.setenv("TFCAE_ZOO", str(root))
  return root, card


@pytest.fixture(scope="module")
def monkeypatch_module():
  with pytest.MonkeyPatch.context() as mp:
    yield mp


def test_published_card_and_folder(tiny_zoo, factorized_dir):
  root, card = tiny_zoo
  folder = root / "factorized" / "2"
  assert sorted(os.listdir(folder)) == ["card.json", "saved_model.pb", "tfcae_export.json",
                                        "train_config.json", "variables"]
  on_disk = json.loads((folder / "card.json").read_text())
  with open(os.path.join(factorized_dir, "tfcae_export.json")) as f:
    assert on_disk["fingerprint"] == json.load(f)["fingerprint"]
  assert on_disk["fingerprint"] == Codec(str(folder)).fingerprint.hex()
  assert on_disk["kodak"]["images"] == 1 and on_disk["kodak"]["bpp"] > 0
  assert on_disk["macs_per_pixel"]["encoder"] > 0 and on_disk["macs_per_pixel"]["decoder"] > 0
  assert on_disk["bytes"] == sum(os.path.getsize(os.path.join(d, f))
                                 for d, _, fs in os.walk(folder) for f in fs
                                 if f != "card.json")
  assert not os.path.exists(str(folder) + ".tmp")


def test_list_path_and_errors(tiny_zoo):
  root, _ = tiny_zoo
  (names,) = [(c["name"]) for c in zoo.list()]
  assert names == "factorized/2"
  assert zoo.path("factorized", 2) == str(root / "factorized" / "2")
  assert zoo.resolve("zoo:factorized/2") == zoo.path("factorized", "2")
  assert zoo.resolve("runs/x") == "runs/x"
  for bad in [("factorized", 9), ("nope", 2), ("factorized", "x")]:
    with pytest.raises(TfcaeError, match=r"available: factorized 2$"):
      zoo.path(*bad)
  with pytest.raises(TfcaeError, match="expected zoo:<family>/<quality>"):
    zoo.resolve("zoo:factorized")
  assert zoo.qualities("factorized") == [2]
  with pytest.raises(TfcaeError, match=r"^no zoo model nope; available: factorized 2$"):
    zoo.qualities("nope")


def test_load_round_trips_bit_exactly(tiny_zoo, factorized_dir):
  image = sample_image()
  codec = zoo.load("factorized", quality=2)
  original = Codec(factorized_dir)
  data = codec.compress(image)
  assert data == original.compress(image)  # the same SavedModel: the same bytes
  np.testing.assert_array_equal(codec.decompress(data), original.decompress(data))
  assert zoo.find(bitstream.parse(data).fingerprint) == zoo.path("factorized", 2)
  assert zoo.find(b"\0" * bitstream.FINGERPRINT_BYTES) is None


@pytest.mark.slow
def test_keras_model_restored_from_the_savedmodel_writes_the_same_file(tiny_zoo):
  image = sample_image()
  model = zoo.load("factorized", 2, keras=True)
  codec = zoo.load("factorized", 2)
  data = model.compress(tf.constant(image)).numpy()
  assert data == codec.compress(image)
  np.testing.assert_array_equal(model.decompress(tf.constant(data)).numpy(),
                                codec.decompress(data))


@pytest.mark.slow
def test_warm_start_from_the_zoo(tiny_zoo):
  from tfcae.models import build_model
  from tfcae.training.loop import warm_start
  source = zoo.load("factorized", 2, keras=True)
  model = build_model(source.get_config())
  warm_start(model, "zoo:factorized/2")
  for a, b in zip(model.weight_variables(), source.weight_variables()):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  other = build_model(dict(source.get_config(), num_filters=4))
  with pytest.raises(TfcaeError, match="different architecture"):
    warm_start(other, "zoo:factorized/2")


@pytest.mark.slow
def test_cli_by_name_and_decompress_by_fingerprint(tiny_zoo, tmp_path):
  root, _ = tiny_zoo
  env = {"TFCAE_ZOO": str(root)}
  out = tmp_path / "a.tfcae"
  r = run_tool("compress", "--model=factorized", "--quality=2", f"--input={IMAGE}",
               f"--output={out}", env=env)
  assert r.returncode == 0, r.stderr
  r = run_tool("decompress", f"--input={out}", f"--output={tmp_path / 'a.png'}", env=env)
  assert r.returncode == 0, r.stderr
  from tfcae.io.fileio import load_rgb_image
  np.testing.assert_array_equal(load_rgb_image(str(tmp_path / "a.png")),
                                zoo.load("factorized", 2).decompress(out.read_bytes()))
  r = run_tool("compress", "--model=factorized", "--quality=7", f"--input={IMAGE}",
               f"--output={tmp_path / 'b.tfcae'}", env=env)
  assert r.returncode == 1
  assert r.stderr.strip().splitlines() == [
      "error: no zoo model factorized/7; available: factorized 2"]
  assert not (tmp_path / "b.tfcae").exists()
  # A file of a model that is not in the zoo: a one-line error, nothing written.
  foreign = bitstream.pack(b"\1" * 8, 4, 4, [b"x"])
  (tmp_path / "f.tfcae").write_bytes(foreign)
  r = run_tool("decompress", f"--input={tmp_path / 'f.tfcae'}",
               f"--output={tmp_path / 'f.png'}", env=env)
  assert r.returncode == 1 and "not in the zoo" in r.stderr
  assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "f.png").exists()


@pytest.mark.slow
def test_evaluate_and_analyze_by_name(tiny_zoo, tmp_path):
  root, _ = tiny_zoo
  env = {"TFCAE_ZOO": str(root)}
  r = run_tool("evaluate", "--model=factorized", f"--images={IMAGE}",
               f"--output={tmp_path / 'e.json'}", env=env)
  assert r.returncode == 0, r.stderr
  assert len(json.loads((tmp_path / "e.json").read_text())["results"]["bpp"]) == 1
  r = run_tool("analyze", "--model=factorized", "--quality=2", env=env)
  assert r.returncode == 0, r.stderr
  assert "encoder" in r.stdout


@pytest.mark.slow
def test_onednn_check_on_the_tiny_zoo_model(tiny_zoo, tmp_path):
  check_decodes_across_onednn(zoo.path("factorized", 2), tmp_path)


def test_family_is_the_folder_for_cards_written_before_families(tiny_zoo, tmp_path,
                                                                 monkeypatch):
  import shutil
  root, _ = tiny_zoo
  legacy = tmp_path / "zoo" / "old-family" / "2"
  shutil.copytree(root / "factorized" / "2", legacy)
  card = json.loads((legacy / "card.json").read_text())
  del card["family"]
  (legacy / "card.json").write_text(json.dumps(card))
  monkeypatch.setenv("TFCAE_ZOO", str(tmp_path / "zoo"))
  assert [c["family"] for c in zoo.list()] == ["old-family"]
  assert zoo.qualities("old-family") == [2]
  assert zoo.path("old-family", 2) == str(legacy)
  with pytest.raises(TfcaeError, match="available: old-family 2"):
    zoo.path("factorized", 2)


@pytest.mark.slow
def test_refresh_rewrites_a_shipped_model_with_the_same_files(tiny_zoo, tmp_path):
  root, card = tiny_zoo
  folder = tmp_path / "factorized" / "2"
  shutil.copytree(root / "factorized" / "2", folder)
  data = Codec(str(folder)).compress(sample_image())
  weights = {n: (folder / "variables" / n).read_bytes() for n in os.listdir(folder / "variables")}
  fresh = ladder.refresh(str(folder), IMAGE)
  assert sorted(os.listdir(folder)) == sorted(os.listdir(root / "factorized" / "2"))
  # same values: the old variable files are kept byte for byte (no new blobs in git)
  assert {n: (folder / "variables" / n).read_bytes() for n in weights} == weights
  assert fresh["fingerprint"] == card["fingerprint"] and "exported" in fresh
  assert json.loads((folder / "card.json").read_text()) == fresh
  assert fresh["bytes"] == sum(os.path.getsize(os.path.join(d, f))
                               for d, _, fs in os.walk(folder) for f in fs if f != "card.json")
  codec = Codec(str(folder))
  assert codec.compress(sample_image()) == data
  assert codec.fingerprint.hex() == card["fingerprint"]
  assert not os.path.exists(str(folder) + ".tmp") and not os.path.exists(str(folder) + ".old")


@pytest.mark.slow
def test_refresh_keeps_the_old_model_when_the_new_one_decodes_differently(
    tiny_zoo, tmp_path, monkeypatch):
  from tfcae.serving import export
  root, _ = tiny_zoo
  folder = tmp_path / "factorized" / "2"
  shutil.copytree(root / "factorized" / "2", folder)
  before = (folder / "saved_model.pb").read_bytes()
  real = export.restore_keras

  def perturbed(model_dir, for_compression=True):  # same fingerprint, other synthesis
    model = real(model_dir, for_compression)
    kernel = model.synthesis_transform.trainable_variables[0]
    kernel.assign(kernel + 0.05)
    return model

  monkeypatch.setattr(export, "restore_keras", perturbed)
  with pytest.raises(TfcaeError, match="codes .* differently; kept the old"):
    ladder.refresh(str(folder), IMAGE)
  assert (folder / "saved_model.pb").read_bytes() == before
  assert sorted(os.listdir(tmp_path / "factorized")) == ["2"]


@pytest.mark.slow  # ≈ 1.5 min: the shipped models' device encoders are checked by default
def test_device_encoders_ship_into_a_zoo_model_and_are_measured(tiny_zoo, tmp_path,
                                                                monkeypatch):
  """tfcae zoo --device_encoders on a shipped dense model: both flatbuffers and their .json
  in its folder, the card's Kodak and latency blocks and its bytes; a file written through
  the int8 encoder decodes with the zoo model; --device_latency measures again and refuses a
  model without device encoders."""
  from tfcae.deploy.hostcoding import HostCoder
  from tfcae.zoo import device
  root, _ = tiny_zoo
  folder = tmp_path / "zoo" / "factorized" / "2"
  shutil.copytree(root / "factorized" / "2", folder)
  monkeypatch.setenv("TFCAE_ZOO", str(tmp_path / "zoo"))
  with pytest.raises(TfcaeError, match="ships no device encoders"):
    device.measure("factorized", 2)
  card = device.ship("factorized", 2, EVAL_IMAGES[:1])
  for name, quantize in device.TFLITE_FILES.items():
    info = json.loads((folder / (name + ".json")).read_text())
    assert info["model_dir"] == "zoo:factorized/2" and info["quantize"] == quantize
    assert not info["reduced_encoder"]
    assert card["device_encoders"][name]["bytes"] == os.path.getsize(folder / name)
    assert card["device_encoders"][name]["kodak"]["images"] == 1
  runs = card["device_latency"]["runs"]
  assert {(r["file"], r["threads"]) for r in runs} == {
      (name, t) for name in device.TFLITE_FILES for t in (1, 2)}
  assert all(r["ms"] > 0 for r in runs) and card["device_latency"]["cpu"]
  assert card["bytes"] == ladder.folder_bytes(str(folder))
  image = sample_image()
  codec = zoo.load("factorized", 2)
  data = HostCoder(str(folder / "encoder_int8.tflite"), str(folder)).compress(image)
  assert codec.decompress(data).shape == image.shape
  again = device.measure("factorized", 2)
  assert again["device_encoders"] == card["device_encoders"]
  assert len(again["device_latency"]["runs"]) == len(runs)
  with pytest.raises(TfcaeError, match="variable-rate"):
    (tmp_path / "zoo" / "vbr").mkdir()
    (tmp_path / "zoo" / "vbr" / "card.json").write_text("{}")
    device.ship("vbr", None, EVAL_IMAGES[:1])


def test_ladder_fine_tunes_in_a_chain_outwards_from_the_anchor():
  for spec in ladder.LADDERS.values():
    assert len(spec.lambdas) >= 6 and spec.cpu_minutes() <= 240  # ≤ 2 h on 2 cores
  chain = ladder.Ladder(name="factorized", architecture="factorized", flagfile="x.cfg",
                        lambdas={q: 0.001 * 2 ** q for q in range(1, 8)}, anchors=(4,),
                        anchor_minutes=1, finetune_minutes=1)
  assert [chain.source(q) for q in range(1, 8)] == [2, 3, 4, None, 4, 5, 6]
  assert [chain.hops(q) for q in range(1, 8)] == [3, 2, 1, 0, 1, 2, 3]
  two = dataclasses.replace(chain, anchors=(2, 6))
  assert [two.source(q) for q in range(1, 8)] == [2, None, 2, 3, 6, None, 6]
  # An explicit source overrides the neighbour rule: q7 from q5, beside q6.
  forked = dataclasses.replace(chain, sources=((7, 5),))
  assert [forked.source(q) for q in range(1, 8)] == [2, 3, 4, None, 4, 5, 5]
  assert forked.hops(7) == forked.hops(6) == 2
  argv = ladder.train_command(forked, 7, "out")
  assert f"--init_from={os.path.join('out', 'factorized', '5')}" in argv
  argv = ladder.train_command(chain, 3, "out")
  assert f"--init_from={os.path.join('out', 'factorized', '4')}" in argv
  assert "--time_budget_minutes=1" in argv


def test_the_job_with_the_longest_chain_waiting_on_it_starts_first(monkeypatch, tmp_path):
  """Eight qualities, anchors q2 and q5, six fine-tunes on two cores: q6 (q7 and q8 wait on
  it) starts before q1, q3 and q4, so the ladder takes three rounds of fine-tunes, not
  four."""
  spec = ladder.Ladder(name="f", architecture="factorized", flagfile="x.cfg",
                       lambdas={q: 0.001 * 2 ** q for q in range(1, 9)}, anchors=(2, 5),
                       anchor_minutes=1, finetune_minutes=1)
  assert [spec.height(q) for q in range(1, 9)] == [0, 1, 0, 0, 3, 2, 1, 0]
  started = []
  monkeypatch.setattr(ladder.jobs, "run_pinned",
                      lambda work, parallel, log: started.extend(w[0] for w in work) or {})
  ladder.train(spec, str(tmp_path), log=lambda *_: None)
  assert started == [5, 6, 2, 7, 1, 3, 4, 8]


def test_a_two_stage_anchor_polishes_in_float32_from_its_first_run():
  """polish_minutes > 0: the anchor's first run (its flags, the time but the polish) and a
  second that warm-starts from it for the last minutes; fine-tunes are unchanged."""
  spec = ladder.Ladder(name="f", architecture="factorized", flagfile="x.cfg",
                       lambdas={1: 0.001, 2: 0.002, 3: 0.004}, anchors=(2,),
                       anchor_minutes=45, finetune_minutes=20,
                       anchor_flags=("--precision=mixed_bfloat16",), polish_minutes=9,
                       polish_flags=("--learning_rate=5e-5",))
  first = ladder.train_command(spec, 2, "out", first_stage=True)
  assert "--time_budget_minutes=36" in first and "--precision=mixed_bfloat16" in first
  assert f"--model_dir={os.path.join('out', 'f', '2-stage1')}" in first
  assert not any(a.startswith("--init_from") for a in first)
  polish = ladder.train_command(spec, 2, "out")
  assert "--time_budget_minutes=9" in polish and "--learning_rate=5e-5" in polish
  assert f"--init_from={os.path.join('out', 'f', '2-stage1')}" in polish
  assert "--precision=mixed_bfloat16" not in polish
  assert f"--model_dir={os.path.join('out', 'f', '2')}" in polish
  tune = ladder.train_command(spec, 3, "out")
  assert "--time_budget_minutes=20" in tune and "--precision=mixed_bfloat16" not in tune
  assert spec.cpu_minutes() == 45 + 2 * 20


def test_without_bf16_kernels_the_anchors_train_in_float32():
  """On a CPU without AVX512-BF16/AMX (bf16 emulated, ≈ 11× slower) a bf16 anchor becomes
  one float32 run of the whole anchor time with the flagfile's schedule; with them, and
  for a ladder without bf16, nothing changes."""
  shipped = ladder.LADDERS["factorized"]
  assert "--precision=mixed_bfloat16" in shipped.anchor_flags  # what this test is about
  assert ladder.for_this_cpu(shipped, lacks_bfloat16=False) is shipped
  plain = ladder.for_this_cpu(shipped, lacks_bfloat16=True)
  assert plain.polish_minutes == 0 and plain.anchor_flags == ()
  assert shipped.anchors == (2, 5)
  argv = ladder.train_command(plain, 5, "out")
  assert "--time_budget_minutes=45" in argv
  assert f"--model_dir={os.path.join('out', 'factorized', '5')}" in argv
  assert not any(a.startswith(("--precision", "--lr_schedule", "--init_from")) for a in argv)
  assert ladder.train_command(plain, 3, "out") == ladder.train_command(shipped, 3, "out")
  msssim = ladder.LADDERS["factorized-msssim"]
  assert ladder.for_this_cpu(msssim, lacks_bfloat16=True) is msssim


@pytest.mark.slow
def test_ladder_trains_resumes_and_publishes(tmp_path):
  """A two-quality ladder end to end: the anchor from scratch, the other fine-tuned from it
  (it waits for the anchor), a re-run trains nothing, and both publish with cards."""
  flagfile = tmp_path / "tiny.cfg"
  flagfile.write_text("\n".join([
      "--architecture=factorized", "--num_filters=8", f"--train_images={SAMPLE_EVAL}/../train",
      "--patch_size=64", "--batch_size=2", "--steps_per_epoch=10", "--epochs=1000",
      "--validation_batches=1", "--learning_rate=5e-3", "--image_summaries=false",
      "--verbose=0"]) + "\n")
  spec = ladder.Ladder(name="tiny-msssim", architecture="factorized", flagfile=str(flagfile),
                       lambdas={1: 0.003, 2: 0.03}, anchors=(2,), anchor_minutes=0.2,
                       finetune_minutes=0.1, finetune_flags=("--learning_rate=1e-3",),
                       polish_minutes=0.05, polish_flags=("--learning_rate=1e-3",))
  assert spec.source(1) == 2 and spec.source(2) is None
  out = str(tmp_path / "runs")
  codes = ladder.train(spec, out, parallel=2, log=lambda *_: None)
  assert codes == {"2-stage1": 0, 2: 0, 1: 0}
  with open(os.path.join(out, "tiny-msssim", "1", "train_config.json")) as f:
    assert json.load(f)["init_from"] == os.path.join(out, "tiny-msssim", "2")
  assert ladder.train(spec, out, parallel=2, log=lambda *_: None) == {}  # all done
  cards = ladder.publish_ladder(spec, out, EVAL_IMAGES[:1], zoo_root=str(tmp_path / "zoo"),
                                log=lambda *_: None)
  # The family names the folder and the card; the architecture stays the model's.
  assert [c["name"] for c in cards] == ["tiny-msssim/1", "tiny-msssim/2"]
  assert [c["architecture"] for c in cards] == ["factorized"] * 2
  assert os.path.isdir(tmp_path / "zoo" / "tiny-msssim" / "1")
  assert cards[0]["training"]["init_from"].endswith(os.path.join("tiny-msssim", "2"))
  assert "--init_from=" in cards[0]["training"]["command"]
  # The two-stage anchor's card counts both runs and names both commands.
  stages = [json.load(open(os.path.join(out, "tiny-msssim", d, "summary.json")))["steps"]
            for d in ("2-stage1", "2")]
  assert cards[1]["training"]["steps"] == sum(stages) and cards[1]["training"]["init_from"] is None
  assert cards[1]["training"]["command"].count("bin/train") == 2
  table = ladder.card_table(cards)
  assert table.count("\n") == 3 and cards[1]["fingerprint"] in table


@pytest.mark.slow
def test_sparse_family_trains_from_the_zoo_and_ships_device_encoders(tiny_zoo, tmp_path,
                                                                      monkeypatch):
  """Double descent from a zoo model (a tiny factorized/2 here), published as a sparse
  family: its card holds the encoder's cost, the dense sibling and ΔPSNR at equal bpp, the
  folder its reduced float32 and int8 TFLite encoders, whose host-coded files decode."""
  from tfcae.analysis import accounting
  from tfcae.deploy import hostcoding
  from tfcae.training.export import load_trained
  from tfcae.zoo import device, sparse
  root, _ = tiny_zoo
  own = tmp_path / "zoo"
  shutil.copytree(root / "factorized", own / "factorized")
  # A second dense point (the same model's card at twice the rate, +2 dB): a dense curve.
  shutil.copytree(own / "factorized" / "2", own / "factorized" / "3")
  dense = json.loads((own / "factorized" / "3" / "card.json").read_text())
  dense["kodak"].update(bpp=2 * dense["kodak"]["bpp"], **{
      "psnr-rgb": dense["kodak"]["psnr-rgb"] + 2})
  (own / "factorized" / "3" / "card.json").write_text(json.dumps(dense))
  monkeypatch.setenv("TFCAE_ZOO", str(own))
  flagfile = tmp_path / "tiny_l11.cfg"
  flagfile.write_text("\n".join([
      "--architecture=factorized", "--num_filters=8", f"--train_images={SAMPLE_EVAL}/../train",
      "--patch_size=64", "--batch_size=2", "--steps_per_epoch=20", "--epochs=2",
      "--first_descent_epochs=1", "--project_every=epoch", "--sparsity_constraint=l11",
      "--sparsity_radius=0.01", "--validation_batches=1", "--learning_rate=1e-3",
      "--image_summaries=false", "--verbose=0"]) + "\n")
  family = sparse.SparseFamily(name="tiny-l11", dense_family="factorized",
                               flagfile=str(flagfile), qualities=(2,))
  argv = sparse.train_command(family, 2, str(tmp_path / "runs"))
  assert "--init_from=zoo:factorized/2" in argv
  assert f"--lmbda={zoo.card('factorized', 2)['lmbda']}" in argv
  assert sparse.train(family, str(tmp_path / "runs"), parallel=1, log=lambda *_: None) == {2: 0}
  (card,) = sparse.publish_family(family, str(tmp_path / "runs"), EVAL_IMAGES[:1],
                                  zoo_root=str(own), log=lambda *_: None)
  folder = own / "tiny-l11" / "2"
  assert card["name"] == "tiny-l11/2" and card["training"]["steps"] == 40
  encoder = card["encoder"]
  total = accounting.analyze(load_trained(str(folder), for_compression=False))["encoder"]["total"]
  assert encoder["macs_per_pixel"] == total["maccs_per_pixel"]
  assert encoder["macs_per_pixel_reduced"] == total["maccs_per_pixel_reduced"] < total[
      "maccs_per_pixel"]
  assert card["macs_per_pixel"]["encoder_reduced"] == encoder["macs_per_pixel_reduced"]
  assert encoder["S"] > 0.3 and encoder["dense_sibling"] == "factorized/2"
  from tfcae.evaluation import green
  curve = green.curve_of_cards(zoo.list()[:2])
  expected = green.delta_psnr_at_bpp(curve, card["kodak"]["bpp"], card["kodak"]["psnr-rgb"])
  assert encoder["delta_psnr_at_equal_bpp"] == (None if expected is None else
                                                pytest.approx(expected))
  assert encoder["weight_bytes"]["reduced"] < encoder["weight_bytes"]["dense"]
  on_disk = json.loads((folder / "card.json").read_text())
  assert on_disk["encoder"] == encoder
  assert on_disk["bytes"] == sum(os.path.getsize(os.path.join(d, f))
                                 for d, _, fs in os.walk(folder) for f in fs
                                 if f != "card.json")
  image = sample_image()
  codec = zoo.load("tiny-l11", 2)
  reference = codec.decompress(codec.compress(image))
  for name in device.TFLITE_FILES:
    info = json.loads((folder / (name + ".json")).read_text())
    assert info["model_dir"] == "zoo:tiny-l11/2" and info["reduced_encoder"]
    assert card["device_encoders"][name]["bytes"] == os.path.getsize(folder / name)
    assert {r["threads"] for r in card["device_latency"]["runs"] if r["file"] == name} == {1, 2}
    data = hostcoding.HostCoder(str(folder / name), str(folder)).compress(image)
    decoded = codec.decompress(data)
    assert decoded.shape == image.shape
    if name == "encoder.tflite":  # float32: the SavedModel's pixels (but a rare flipped .5)
      assert (np.abs(decoded.astype(int) - reference.astype(int)) > 1).mean() <= 0.01
  assert ladder.card_table([card]).count(f"{encoder['macs_per_pixel_reduced'] / 1e3:.1f} / ") == 1
  # A refresh (today's serving graph) keeps the device encoders and the card's blocks.
  before = {name: (folder / name).read_bytes() for name in device.TFLITE_FILES}
  refreshed = ladder.refresh(str(folder), IMAGE)
  assert refreshed["encoder"] == encoder and refreshed["device_encoders"] == card[
      "device_encoders"]
  assert {name: (folder / name).read_bytes() for name in device.TFLITE_FILES} == before
