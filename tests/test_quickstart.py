"""The README's quick start, end to end, on the shipped sample (slow tier)."""
import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, run_tool


def _demo_commands():
  """The commands of the Makefile's `demo` target, as make would run them."""
  out = subprocess.run(["make", "-n", "-s", "demo", "DEMO_DIR=@DIR@", "STAMP=Makefile"],
                       cwd=REPO, capture_output=True, text=True, check=True).stdout
  return [line for line in out.splitlines() if "bin/" in line]


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path):
  commands = _demo_commands()
  assert [os.path.basename(c.split()[1]) for c in commands] == [
      "train", "compress", "decompress", "evaluate"]
  for command in commands:
    # "<python> bin/<tool> --flag=... ..." -> run bin/<tool> with this interpreter, in REPO.
    tool, *args = command.split()[1:]
    args = [a.replace("@DIR@", str(tmp_path)).replace("'", "") for a in args]
    r = run_tool(os.path.basename(tool), *args, cwd=REPO, timeout=900)
    assert r.returncode == 0, f"{command}\n{r.stderr[-3000:]}"
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["epochs_completed"] == summary["settings"]["epochs"]
  decoded = np.asarray(Image.open(tmp_path / "kodim23.png"))
  assert decoded.shape == (512, 768, 3)
  results = json.loads((tmp_path / "eval.json").read_text())["results"]
  # What configs/quickstart.cfg promises (measured in docs/results.md), with margin.
  assert 0.2 < results["bpp"][0] < 1.2
  assert results["psnr-rgb"][0] > 24.0
