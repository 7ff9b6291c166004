"""The tools as a user runs them (bin/<tool> and `tfcae <tool>`), and the SavedModel API."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, SAMPLE_EVAL, run_tool, tiered

# The tests that run the tools on trained, exported models are the second tier (slow); the
# refusals below need no model, or a copy of a shipped one.
slow = pytest.mark.slow

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


@slow
def test_compress_is_deterministic_across_processes(compressed):
  _, out = compressed
  assert (out / "a.tfcae").read_bytes() == (out / "b.tfcae").read_bytes()


@slow
def test_cli_decode_equals_in_process_decode(compressed):
  from tfcae.serving.codec import Codec
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


@slow
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


@slow
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


@slow
def test_file_from_another_model_is_refused(compressed, other_factorized_dir, tmp_path):
  model_dir, out = compressed
  target = tmp_path / "out.png"
  r = run_tool("decompress", f"--model_dir={other_factorized_dir}", f"--input={out / 'a.tfcae'}",
               f"--output={target}")
  assert r.returncode == 1 and "another model" in r.stderr and not target.exists()


@slow
def test_failed_decode_keeps_existing_output(compressed, tmp_path):
  model_dir, _ = compressed
  target = tmp_path / "keep.png"
  target.write_bytes(b"precious")
  (tmp_path / "empty.tfcae").write_bytes(b"")
  r = run_tool("decompress", f"--model_dir={model_dir}", f"--input={tmp_path / 'empty.tfcae'}",
               f"--output={target}")
  assert r.returncode == 1 and target.read_bytes() == b"precious"


@slow
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


@slow
@pytest.mark.parametrize("args, message", [
    (["--model_dir=/nonexistent", f"--input={IMAGE}", "--output=x"], "no such model"),
    (["--model_dir={model}", "--input=/nonexistent.png", "--output=x"], "no such file"),
    (["--model_dir={model}", f"--input={REPO}/setup.py", "--output=x"], "cannot read image"),
    (["--model_dir={repo}", f"--input={IMAGE}", "--output=x"], "no exported model"),
    ([f"--input={IMAGE}", "--output=x"], "give --model=DIR or --model=zoo:"),
    (["--model_dir={model}", "--model=factorized", "--quality=1", f"--input={IMAGE}",
      "--output=x"], "not both"),
    (["--model=factorized", f"--input={IMAGE}", "--output=x"], "add --quality"),
    (["--model=nope", "--quality=1", f"--input={IMAGE}", "--output=x"], "no zoo model nope/1"),
])
def test_compress_bad_input(factorized_dir, tmp_path, args, message):
  args = [a.format(model=factorized_dir, repo=REPO) for a in args]
  r = run_tool("compress", *args[:-1], f"--output={tmp_path / 'x.tfcae'}")
  assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr
  assert not (tmp_path / "x.tfcae").exists()


@slow
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
  from tfcae.serving.codec import Codec
  from tfcae.io.fileio import load_rgb_image
  pixels = load_rgb_image(IMAGE)
  data_len = len(Codec(factorized_dir).compress(pixels))
  assert image["bpp"] == pytest.approx(8 * data_len / (pixels.shape[0] * pixels.shape[1]))


# --- one entry point ---------------------------------------------------------------------
TFCAE = os.path.join(os.path.dirname(sys.executable), "tfcae")
ZOO_MODEL = os.path.join(REPO, "zoo", "factorized", "1")


def run_tfcae(*args, cwd=None):
  return subprocess.run([TFCAE, *args], capture_output=True, text=True, cwd=cwd,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)


def test_tfcae_lists_every_command_with_one_line():
  from tfcae import cli
  for args, code in (["--help"], 0), ([], 1):
    r = run_tfcae(*args)
    assert r.returncode == code and r.stdout.startswith("usage: tfcae <command>")
    listed = [line.split()[0] for line in r.stdout.splitlines() if line.startswith("  ")]
    assert listed == list(cli.COMMANDS)
    assert set(cli.COMMANDS) == {f for f in os.listdir(os.path.join(REPO, "bin"))
                                 if not f.startswith((".", "_"))}
  r = run_tfcae("nope")
  assert r.returncode == 1 and r.stderr.startswith("error: unknown command 'nope'")


def test_tfcae_command_help_is_the_tools_absl_help():
  r = run_tfcae("plot", "--help")
  assert r.stdout.startswith("Rate-distortion plot") and "--metric" in r.stdout
  assert "--[no]debug" in r.stdout and "Traceback" not in r.stderr
  assert run_tool("plot", "--help").stdout == r.stdout


# --- refusing to destroy the user's data -------------------------------------------------
def _refused(r, message, path, before):
  """One `error:` line naming the problem, exit code 1, and the input as it was."""
  assert r.returncode == 1, r.stdout + r.stderr
  assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1, r.stderr
  assert message in r.stderr, r.stderr
  assert open(path, "rb").read() == before


@pytest.fixture
def photo(tmp_path):
  path = tmp_path / "photo.png"
  path.write_bytes(open(IMAGE, "rb").read())
  os.symlink(path, tmp_path / "alias.png")
  return path


COMPRESS_REFUSALS = [
    ("{dir}/photo.png", "is the input"),
    ("./photo.png", "is the input"),            # another spelling of the same path
    ("{dir}/alias.png", "is the input"),        # a symlink to it
    ("{dir}/other.png", "compress writes .tfcae files, not .png"),
    ("{dir}/photo", "has no extension (e.g. --output={dir}/photo.tfcae)"),
]


# Each refusal starts a tool (≈ 4 s): two cases per tool in the default tier, all in slow.
@pytest.mark.parametrize("output, message", tiered(COMPRESS_REFUSALS, *COMPRESS_REFUSALS[2:4]))
def test_compress_refuses_to_replace_its_input(photo, output, message):
  before = photo.read_bytes()
  output = output.format(dir=photo.parent)
  r = run_tool("compress", f"--model={ZOO_MODEL}", f"--input={photo}", f"--output={output}",
               cwd=str(photo.parent))
  _refused(r, message.format(dir=photo.parent), photo, before)
  assert sorted(os.listdir(photo.parent)) == ["alias.png", "photo.png"]  # nothing written


def test_tfcae_compress_is_bin_compress(photo):
  args = (f"--model={ZOO_MODEL}", f"--input={photo}", f"--output={photo}")
  r, same = run_tfcae("compress", *args), run_tool("compress", *args)
  assert (r.returncode, r.stdout, r.stderr) == (same.returncode, same.stdout, same.stderr)
  _refused(r, "is the input", photo, open(IMAGE, "rb").read())


DECOMPRESS_REFUSALS = [
    ("a.tfcae", "is the input"),
    ("hard.png", "is the input"),               # a hard link to it: the same file
    ("a.jpg", "decompress writes .png files, not .jpg"),
    ("a", "has no extension"),
]


@pytest.mark.parametrize("output, message", tiered(DECOMPRESS_REFUSALS,
                                                   *DECOMPRESS_REFUSALS[1:3]))
def test_decompress_refuses_to_replace_its_input(tmp_path, output, message):
  data = b"TFCA" + bytes(range(60))
  (tmp_path / "a.tfcae").write_bytes(data)
  os.link(tmp_path / "a.tfcae", tmp_path / "hard.png")
  r = run_tool("decompress", f"--input={tmp_path / 'a.tfcae'}", f"--output={output}",
               cwd=str(tmp_path))
  _refused(r, message, tmp_path / "a.tfcae", data)
  assert sorted(os.listdir(tmp_path)) == ["a.tfcae", "hard.png"]


@pytest.fixture
def model_copy(tmp_path):
  import shutil
  model = tmp_path / "model"
  shutil.copytree(ZOO_MODEL, model)
  (model / "encoder.tflite").write_bytes(b"a device encoder shipped with the model")
  os.symlink(model, tmp_path / "link")
  return model


EXPORT_REFUSALS = [
    ("{model}", "is the input"),
    ("{link}", "is the input"),                 # a symlink to the model directory
    ("{model}/saved_model.pb", "is a file of the model"),
    ("{link}/encoder.tflite", "is a file of the model"),
    ("{dir}/encoder.png", "the tflite target writes .tflite files, not .png"),
]


@pytest.mark.parametrize("tflite, message", tiered(EXPORT_REFUSALS, *EXPORT_REFUSALS[1:4:2]))
def test_export_refuses_to_overwrite_the_model(model_copy, tflite, message):
  files = {p: open(os.path.join(model_copy, p), "rb").read()
           for p in ("saved_model.pb", "encoder.tflite")}
  tflite = tflite.format(model=model_copy, link=model_copy.parent / "link",
                         dir=model_copy.parent)
  r = run_tool("export", f"--model={model_copy}", f"--tflite={tflite}")
  _refused(r, message, model_copy / "saved_model.pb", files["saved_model.pb"])
  assert (model_copy / "encoder.tflite").read_bytes() == files["encoder.tflite"]
  assert not os.path.exists(model_copy.parent / "encoder.png")


TARGET_FLAG_ERRORS = [
    (["--target=tflite", "--output={dir}/encoder.onnx"],
     "the tflite target writes .tflite files, not .onnx"),
    (["--tflite={dir}/a.tflite", "--output={dir}/b.tflite"], "give one of them"),
    (["--target=tflite"], "give --output=FILE"),
    (["--target=nothing", "--output={dir}/a.tflite"],
     "unknown device target 'nothing'; available: tflite"),
]


@pytest.mark.parametrize("args, message", tiered(TARGET_FLAG_ERRORS, *TARGET_FLAG_ERRORS[::3]))
def test_export_target_flags_are_checked(model_copy, args, message):
  before = (model_copy / "saved_model.pb").read_bytes()
  r = run_tool("export", f"--model={model_copy}",
               *[a.format(dir=model_copy.parent) for a in args])
  _refused(r, message, model_copy / "saved_model.pb", before)
  assert not [p for p in os.listdir(model_copy.parent) if p.endswith((".tflite", ".onnx"))]


@slow
def test_export_through_the_device_seam_codes_the_servers_files(tmp_path):
  """`--target=tflite --output=` and `--tflite=` write the same encoder; its symbols,
  coded on the host, are the server's file for this image."""
  for args in (["--target=tflite", f"--output={tmp_path / 'a.tflite'}"],
               [f"--tflite={tmp_path / 'b.tflite'}"]):
    r = run_tool("export", "--model=zoo:factorized/1", *args)
    assert r.returncode == 0, r.stderr
  assert (tmp_path / "a.tflite").read_bytes() == (tmp_path / "b.tflite").read_bytes()
  for name, extra in (("server", []), ("device", [f"--tflite={tmp_path / 'a.tflite'}"])):
    r = run_tool("compress", "--model=zoo:factorized/1", f"--input={IMAGE}",
                 f"--output={tmp_path / name}.tfcae", *extra)
    assert r.returncode == 0, r.stderr
  assert (tmp_path / "server.tfcae").read_bytes() == (tmp_path / "device.tfcae").read_bytes()


# --- one model reference -----------------------------------------------------------------
def test_every_model_reference_names_the_same_model(monkeypatch):
  from tfcae import cli
  monkeypatch.chdir(REPO)
  # The forms, through the one resolver (the tools call it from their flags).
  same = os.path.realpath(ZOO_MODEL)
  assert os.path.realpath(cli.resolve_model("zoo:factorized/1")) == same
  assert os.path.realpath(cli.resolve_model("factorized", 1)) == same
  assert os.path.realpath(cli.resolve_model("zoo/factorized/1")) == same
  assert [os.path.realpath(d) for d in cli.resolve_models(["factorized"], ["1"])] == [same]
  assert len(cli.resolve_models(["factorized"])) == len(
      [f for f in os.listdir(os.path.join(REPO, "zoo", "factorized")) if f.isdigit()])


@pytest.mark.parametrize("reference, message", [
    ("nope", "--model=nope: no such model directory, and no zoo model nope; available: "
             "factorized 1,"),
    ("zoo:nope/1", "no zoo model nope/1; available: factorized 1,"),
    ("zoo:factorized", "expected zoo:<family>/<quality>; available: factorized 1,"),
    ("factorized", "is a zoo family: add --quality, or give --model=zoo:factorized/<quality>"),
])
def test_a_bad_model_reference_lists_what_exists(reference, message):
  from tfcae import TfcaeError, cli
  with pytest.raises(TfcaeError) as e:
    cli.resolve_model(reference)
  assert message in str(e.value) and "\n" not in str(e.value)


@slow
@pytest.mark.parametrize("args", [
    ["--model=zoo:factorized/1"], [f"--model={ZOO_MODEL}"], [f"--model_dir={ZOO_MODEL}"],
    ["--model=factorized", "--quality=1"]])
def test_compress_takes_every_model_reference(tmp_path, args):
  r = run_tool("compress", *args, f"--input={IMAGE}", f"--output={tmp_path / 'a.tfcae'}")
  assert r.returncode == 0, r.stderr
  r = run_tool("decompress", *args, f"--input={tmp_path / 'a.tfcae'}",
               f"--output={tmp_path / 'a.png'}")
  assert r.returncode == 0, r.stderr


def test_a_bad_model_reference_is_one_line_from_the_tool(tmp_path):
  r = run_tool("analyze", "--model=nope")
  assert r.returncode == 1 and r.stderr.startswith("error: --model=nope: no such model")
  assert len(r.stderr.strip().splitlines()) == 1 and "available: factorized" in r.stderr
