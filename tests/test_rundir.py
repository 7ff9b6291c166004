"""tfcae.training.rundir.RunDir: the one owner of a run directory's training files (the
export in it is tfcae.serving.ExportedModel's, tests/test_serving.py).

What is checked: a committed run (a copy of the legacy fixture, never the fixture itself)
and a shipped zoo model read through RunDir; a missing or broken file is a one-line
TfcaeError naming it; and the file names are spelt only in tfcae/training/rundir.py and
tfcae/serving/exported.py (a scan of tfcae/ and bin/), so that a literal cannot creep in
elsewhere.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from tfcae import TfcaeError
from tfcae.training import rundir
from tfcae.training.rundir import RunDir

LEGACY = os.path.join(REPO, "tests", "fixtures", "legacy")


@pytest.fixture
def legacy_copy(tmp_path):
  """A writable copy of the legacy factorized run (the fixture stays untouched)."""
  copy = tmp_path / "factorized"
  shutil.copytree(os.path.join(LEGACY, "factorized"), copy)
  return RunDir(copy)


def read_json(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def assert_one_line(error, *fragments):
  message = str(error.value)
  assert "\n" not in message, message
  for fragment in fragments:
    assert fragment in message, message


# --- the layout ----------------------------------------------------------------------
def test_paths_are_the_layout_bin_train_writes(tmp_path):
  run = RunDir(tmp_path)
  assert run.path == str(tmp_path) and os.fspath(run) == str(tmp_path)
  assert str(run) == str(tmp_path)  # error messages name the directory as given
  expected = {"config_path": "train_config.json", "summary_path": "summary.json",
              "history_path": "history.csv", "checkpoint_dir": "checkpoints",
              "log_dir": "logs"}
  for attribute, name in expected.items():
    assert getattr(run, attribute) == os.path.join(str(tmp_path), name), attribute
  assert run.join("pruning.json") == os.path.join(str(tmp_path), "pruning.json")
  assert RunDir(run).path == run.path  # a RunDir is a path too


def test_importing_it_does_not_import_tensorflow():
  """Low layers (tools, plotting, benches' bookkeeping) may use it without TensorFlow."""
  code = ("import sys, tfcae.training.rundir as r; run = r.RunDir(sys.argv[1]); "
          "run.architecture(), run.read_summary(), run.exported().is_exported(), "
          "run.exported().info, run.is_finished(); "
          "sys.exit('tensorflow' in sys.modules)")
  result = subprocess.run([sys.executable, "-c", code, os.path.join(LEGACY, "factorized")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr or "tensorflow was imported"


# --- a committed run -------------------------------------------------------------------
def test_the_legacy_run_reads_as_before(legacy_copy):
  run = legacy_copy
  info = read_json(os.path.join(run.path, "tfcae_export.json"))
  summary = read_json(os.path.join(run.path, "summary.json"))
  assert run.exists() and run.require() is run
  assert run.exported().is_exported() and run.is_finished()
  assert run.exported().info == info and run.read_summary() == summary
  config = run.read_config()
  assert config.architecture == "factorized" and config.num_filters == 8
  assert config.lmbda == summary["settings"]["lmbda"]
  assert run.read_config_dict() == read_json(os.path.join(run.path, "train_config.json"))
  assert run.architecture() == info["architecture"]
  latest = run.latest_checkpoint()
  assert latest is not None and os.path.dirname(latest) == run.checkpoint_dir
  history = run.read_history()
  assert history and "bpp" in history[-1]


def test_architecture_falls_back_to_the_config(legacy_copy):
  """A run killed before its export has only train_config.json: same architecture."""
  expected = legacy_copy.architecture()
  os.remove(legacy_copy.exported().export_info_path)
  assert legacy_copy.architecture() == expected
  os.remove(legacy_copy.config_path)
  with pytest.raises(TfcaeError) as error:
    legacy_copy.architecture()
  assert_one_line(error, legacy_copy.path, "not a tfcae model directory",
                  "tfcae_export.json", "train_config.json")


def test_the_loaders_take_a_run_dir(legacy_copy):
  from tfcae.training.export import load_trained
  model = load_trained(legacy_copy, for_compression=False)
  assert model.get_config() == legacy_copy.architecture()


def test_writes_round_trip(tmp_path):
  from tfcae.training.config import TrainConfig
  run = RunDir(tmp_path / "new").create()
  assert run.exists() and not run.is_finished() and run.latest_checkpoint() is None
  config = TrainConfig(model_dir=run.path, lmbda=0.02)
  run.write_config(config)
  assert run.read_config() == config
  run.write_config(dict(config.to_dict(), extra="kept"))  # a dict is stored as given
  assert run.read_config_dict()["extra"] == "kept" and run.read_config() == config
  run.exported().write_info({"architecture": {"architecture": "factorized"}})
  run.write_summary({"steps": 3})
  assert run.is_finished() and run.read_summary() == {"steps": 3}
  assert run.architecture() == {"architecture": "factorized"}


# --- the zoo -----------------------------------------------------------------------------
def test_a_zoo_model_is_a_run_dir_without_checkpoints(monkeypatch):
  from tfcae import zoo
  monkeypatch.delenv("TFCAE_ZOO", raising=False)
  run = RunDir(zoo.resolve("zoo:factorized/1"))
  card = zoo.card("factorized", 1)
  assert run.path == zoo.path("factorized", 1)
  assert run.exported().is_exported() and run.latest_checkpoint() is None
  assert run.architecture() == card["config"] == run.exported().architecture
  assert run.read_config().architecture_config() == card["config"]
  assert zoo.PREFIX == rundir.ZOO_PREFIX


def test_an_unresolved_zoo_name_is_refused():
  """A model reference is resolved by tfcae.serving.open_model, not taken for a folder."""
  with pytest.raises(TfcaeError) as error:
    RunDir("zoo:factorized/1")
  assert_one_line(error, "zoo:factorized/1", "tfcae.serving.open_model")


# --- missing and broken files ------------------------------------------------------------
@pytest.mark.parametrize("method, name", [
    ("read_config", "train_config.json"), ("read_config_dict", "train_config.json"),
    ("read_summary", "summary.json"),
    ("read_history", "history.csv")])
def test_a_missing_file_is_a_one_line_error(tmp_path, method, name):
  with pytest.raises(TfcaeError) as error:
    getattr(RunDir(tmp_path), method)()
  assert_one_line(error, str(tmp_path), name)


def test_a_missing_directory_is_a_one_line_error(tmp_path):
  with pytest.raises(TfcaeError) as error:
    RunDir(tmp_path / "missing").require()
  assert_one_line(error, "missing", "no such model directory")
  assert RunDir(tmp_path / "missing").latest_checkpoint() is None


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "\xff"])
def test_a_broken_file_is_a_one_line_error(tmp_path, content):
  path = tmp_path / "summary.json"
  path.write_bytes(content.encode("latin-1"))
  with pytest.raises(TfcaeError) as error:
    RunDir(tmp_path).read_summary()
  assert_one_line(error, str(path))


# --- one spelling ----------------------------------------------------------------------
NAMES = ("train_config.json", "tfcae_export.json", "summary.json", "history.csv",
         "saved_model.pb", "fingerprint.pb", "checkpoints")


def test_the_names_are_spelt_only_in_rundir():
  """As string literals (quoted), in tfcae/ and bin/; docstrings and help texts may still
  mention a file inside a sentence."""
  literal = re.compile("[\"'](" + "|".join(map(re.escape, NAMES)) + ")[\"']")
  owners = [os.path.join(REPO, "tfcae", "training", "rundir.py"),
            os.path.join(REPO, "tfcae", "serving", "exported.py")]
  found = []
  for top in ("tfcae", "bin"):
    for folder, dirs, files in os.walk(os.path.join(REPO, top)):
      dirs[:] = [d for d in dirs if d != "__pycache__"]
      for name in files:
        path = os.path.join(folder, name)
        if path in owners or not (top == "bin" or name.endswith(".py")):
          continue
        with open(path, encoding="utf-8") as f:
          for number, line in enumerate(f, 1):
            if literal.search(line):
              found.append(f"{os.path.relpath(path, REPO)}:{number}: {line.strip()}")
  assert not found, ("use the constants of tfcae.training.rundir or tfcae.serving.exported:"
                     "\n  " + "\n  ".join(found))
  source = ""
  for owner in owners:
    with open(owner, encoding="utf-8") as f:
      source += f.read()
  for name in NAMES:  # and the scan would see them if they were elsewhere
    assert literal.search(f'"{name}"') and f'"{name}"' in source, name
