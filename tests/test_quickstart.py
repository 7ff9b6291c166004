"""The README's quick start, end to end, on the shipped sample (slow tier)."""
import json
import os
import subprocess
import tempfile

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, run_tool


def _demo_commands():
  """The commands of the Makefile's `demo` target, as make would run them."""
  # STAMP: a file newer than setup.py and constraints.txt, so make sees the install as
  # done. (Not the Makefile: make remakes a makefile that has a rule even under -n, and in
  # a fresh clone the Makefile may well be older than setup.py.)
  with tempfile.NamedTemporaryFile() as stamp:
    out = subprocess.run(["make", "-n", "-s", "demo", "DEMO_DIR=@DIR@", f"STAMP={stamp.name}"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
  return [line for line in out.splitlines() if "bin/" in line]


def _demo_zoo(factorized_dir, tmp_path):
  """The zoo the demo codes with: the repository's when it ships the demo's model, else
  one built here from a tiny model under the same name (the commands run either way)."""
  from tfcae import zoo
  from tfcae.zoo import ladder
  try:
    zoo.path("factorized", 3)
    return {}
  except Exception:  # noqa: BLE001  (TfcaeError: not shipped yet)
    root = tmp_path / "zoo"
    ladder.publish(factorized_dir, "factorized", 3,
                   [os.path.join(REPO, "data/sample/eval/kodim23.png")], zoo_root=str(root))
    return {"TFCAE_ZOO": str(root)}


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, factorized_dir):
  commands = _demo_commands()
  assert [os.path.basename(c.split()[1]) for c in commands] == [
      "compress", "decompress", "compare", "train", "compress", "decompress", "evaluate"]
  env = _demo_zoo(factorized_dir, tmp_path)
  outputs = []
  for command in commands:
    # "<python> bin/<tool> --flag=... ..." -> run bin/<tool> with this interpreter, in REPO.
    tool, *args = command.split()[1:]
    args = [a.replace("@DIR@", str(tmp_path)).replace("'", "") for a in args]
    r = run_tool(os.path.basename(tool), *args, cwd=REPO, timeout=900, env=env)
    assert r.returncode == 0, f"{command}\n{r.stderr[-3000:]}"
    outputs.append(r.stdout)
  # The zoo part: the file decoded by fingerprint, next to JPEG at no more bytes.
  assert np.asarray(Image.open(tmp_path / "zoo.png")).shape == (512, 768, 3)
  tfcae_row, jpeg_row = outputs[2].strip().splitlines()
  assert tfcae_row.startswith("tfcae") and jpeg_row.startswith("jpeg (quality")
  assert int(jpeg_row.split("bytes")[0].split()[-1]) <= (tmp_path / "zoo.tfcae").stat().st_size
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["epochs_completed"] == summary["settings"]["epochs"]
  decoded = np.asarray(Image.open(tmp_path / "kodim23.png"))
  assert decoded.shape == (512, 768, 3)
  results = json.loads((tmp_path / "eval.json").read_text())["results"]
  # What configs/quickstart.cfg promises (measured in docs/results.md), with margin.
  assert 0.2 < results["bpp"][0] < 1.2
  assert results["psnr-rgb"][0] > 24.0
