"""Every shipped flagfile parses into a valid config of the tool its header names."""
import glob
import os
import re

import pytest
from absl import flags

from tfcae import cli, zoo
from tfcae.models import ARCHITECTURES
from tfcae.training.config import TrainConfig
from tfcae.training.mnist import MnistConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.cfg")))
TOOLS = {"bin/train": TrainConfig, "bin/train_mnist": MnistConfig}


def test_there_are_configs():
  assert len(CONFIGS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_parses_and_validates(path, monkeypatch, tmp_path):
  text = open(path).read()
  # The header shows the exact command, and it runs this very file.
  command = re.search(r"^#\s+(bin/\w+) --flagfile=(configs/\S+\.cfg)(.*)$", text, re.M)
  assert command, "the header must show the command that runs this flagfile"
  tool, named, rest = command.groups()
  extra = [a for a in rest.split() if a.startswith("--") and not a.startswith("--model_dir")]
  assert named == os.path.relpath(path, ROOT)
  values = flags.FlagValues()
  cli.define_flags_from_dataclass(TOOLS[tool], flag_values=values)
  monkeypatch.chdir(ROOT)  # nested --flagfile lines are relative to the repository root
  values(["prog", f"--flagfile={named}", *extra, f"--model_dir={tmp_path}"])
  config = cli.dataclass_from_flags(TOOLS[tool], flag_values=values)
  config.validate()
  # Lines of this file win over those of a flagfile it includes (--flagfile comes first).
  for line in text.splitlines():
    m = re.match(r"--(\w+)=(.*)$", line.strip())
    if m and m.group(1) != "flagfile":
      assert values[m.group(1)].value == values[m.group(1)].parser.parse(m.group(2)), line


ZOO_WARM_STARTS = [p for p in CONFIGS if "--init_from=zoo:" in open(p).read()]


def test_methods_warm_start_from_the_zoo():
  names = {os.path.basename(p) for p in ZOO_WARM_STARTS}
  assert {"sparse_l1.cfg", "sparse_l11.cfg", "sparse_l1inf.cfg", "dco_cpu.cfg"} <= names


@pytest.mark.parametrize("path", ZOO_WARM_STARTS, ids=os.path.basename)
def test_zoo_warm_start_is_shipped_and_has_the_configs_architecture(path, monkeypatch):
  """A flagfile that warm-starts from the zoo names a shipped model whose architecture is
  the one the flagfile builds (otherwise the weights cannot be copied)."""
  values = flags.FlagValues()
  cli.define_flags_from_dataclass(TrainConfig, flag_values=values)
  monkeypatch.chdir(ROOT)
  values(["prog", f"--flagfile={os.path.relpath(path, ROOT)}", "--model_dir=x"])
  config = cli.dataclass_from_flags(TrainConfig, flag_values=values)
  architecture, quality = zoo.parse_spec(config.init_from)
  card = zoo.card(architecture, quality)
  cls = ARCHITECTURES.get(config.architecture)
  # The same architecture, or one whose parts the model takes (a variable-rate model's
  # transforms from a factorized one).
  assert card["config"] == config.architecture_config() or getattr(
      cls, "shared_parts", lambda *_: [])(card["config"], config.architecture_config())
  if config.objective == "beta" and not config.lmbda_max:  # the warm start's trade-off
    assert abs(card["lmbda"] - config.lmbda) < 1e-9


# --- the architecture setting: --architecture, and the deprecated --model / "model" ------
def test_train_config_takes_the_architecture():
  config = TrainConfig(model_dir="m", train_images="t", architecture="hyperprior")
  config.validate()
  assert config.architecture_config()["architecture"] == "hyperprior"
  assert "model" not in config.to_dict() and config.to_dict()["architecture"] == "hyperprior"


def test_an_old_flagfile_with_model_builds_the_same_architecture(tmp_path, capsys):
  old = tmp_path / "old.cfg"
  old.write_text("--model=hyperprior\n--num_filters=8\n")
  values = flags.FlagValues()
  cli.define_flags_from_dataclass(TrainConfig, flag_values=values)
  values(["prog", f"--flagfile={old}", "--model_dir=x"])
  config = cli.dataclass_from_flags(TrainConfig, flag_values=values)
  assert capsys.readouterr().err == "warning: --model is deprecated, use --architecture\n"
  new = TrainConfig(architecture="hyperprior", num_filters=8, model_dir="x")
  assert config == new and config.architecture_config() == new.architecture_config()
  # The new flag: no warning.
  values = flags.FlagValues()
  cli.define_flags_from_dataclass(TrainConfig, flag_values=values)
  values(["prog", "--architecture=hyperprior", "--num_filters=8", "--model_dir=x"])
  assert cli.dataclass_from_flags(TrainConfig, flag_values=values) == new
  assert capsys.readouterr().err == ""


def test_an_old_train_config_json_with_model_builds_the_same_architecture(tmp_path, capsys):
  import json
  saved = TrainConfig(architecture="hyperprior", num_filters=8, lmbda=0.02).to_dict()
  saved["model"] = saved.pop("architecture")
  path = tmp_path / "train_config.json"
  path.write_text(json.dumps(saved))
  config = TrainConfig.load(str(path))
  err = capsys.readouterr().err
  assert err.startswith(f"warning: {path}: \"model\" is deprecated") and err.count("\n") == 1
  assert config == TrainConfig(architecture="hyperprior", num_filters=8, lmbda=0.02)
  assert config.architecture_config() == {"architecture": "hyperprior", "num_filters": 8,
                                          "latent_channels": 8, "hyper_filters": 8}
