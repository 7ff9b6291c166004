"""The registries (issue 15, item 2): the generic Registry, the architectures it lists
and the settings they declare, and the classical codecs.

Why: an architecture used to be named in three places (models.MODELS, the --model flag's
choices, an if-ladder in TrainConfig.architecture()) and the codecs in a string if-ladder;
now the class and its decorator are the one place. The architecture config these settings
build is what the models' fingerprints hash, so the move must not change it by a key: the
table below was computed from TrainConfig.architecture() as it was before the registry.
"""
import inspect
import os
import subprocess
import sys

import pytest
from absl import flags

from conftest import REPO
from tfcae import TfcaeError, cli
from tfcae.evaluation import classical
from tfcae.registry import LazyNames, Registry
from tfcae.training.config import ARCHITECTURE_FIELDS, FILTERS, SWITCH, VALUE, TrainConfig


# --- the generic registry ------------------------------------------------------------
def test_register_by_attribute_by_name_and_with_declarations():
  registry = Registry("gadget", attribute="kind")

  @registry.register
  class A:
    kind = "a"

  @registry.register("bee", sides=6)
  class B:
    pass

  assert registry.get("a") is A and registry["bee"] is B and B.sides == 6
  assert registry.names() == ("a", "bee") and list(registry) == ["a", "bee"]
  assert "a" in registry and "c" not in registry and len(registry) == 2
  assert dict(registry.items()) == {"a": A, "bee": B}
  with pytest.raises(ValueError, match=r"^unknown gadget 'c'; available: a, bee$"):
    registry.get("c")
  with pytest.raises(ValueError, match="unknown gadget"):
    registry.get(["not", "hashable"])
  with pytest.raises(ValueError, match="'a' is registered twice"):
    registry.register("a")(type("Other", (), {}))
  assert registry.register(A) is A  # the same class again is harmless
  with pytest.raises(TypeError, match="needs a name"):
    registry.register(type("Nameless", (), {}))


def test_lookup_error_type_and_lazy_names():
  registry = Registry("codec", error=TfcaeError)
  with pytest.raises(TfcaeError, match="unknown codec 'x'; available: $"):
    registry.get("x")
  loads = []

  def load():
    loads.append(1)
    return registry

  names = LazyNames(load)
  assert not loads  # nothing is imported until the names are read
  registry.register("z")(type("Z", (), {}))
  assert list(names) == ["z"] and "z" in names and "y" not in names and loads


def test_config_and_registry_import_without_tensorflow():
  code = ("import sys, tfcae.training.config, tfcae.registry, tfcae.evaluation.classical; "
          "assert 'tensorflow' not in sys.modules, 'TF imported'")
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                     env=dict(os.environ, PYTHONPATH=REPO))
  assert r.returncode == 0, r.stderr


# --- architectures -------------------------------------------------------------------
def test_architectures_are_registered_by_their_classes():
  from tfcae import models
  assert models.ARCHITECTURES.names() == ("factorized", "hyperprior", "meanscale", "caep")
  assert models.MODELS is models.ARCHITECTURES and models.MODELS["caep"] is models.CaepModel
  for name, cls in models.ARCHITECTURES.items():
    assert cls.architecture == name and issubclass(cls, models.CompressionModel)
    # Each declared setting is a constructor argument (build_model passes the config as
    # keywords) and a TrainConfig field that says how it enters the config.
    parameters = inspect.signature(cls.__init__).parameters
    for setting in cls.settings:
      assert setting in parameters, (name, setting)
      field = TrainConfig.__dataclass_fields__[setting]
      assert field.metadata["architecture"] in (VALUE, FILTERS, SWITCH), setting
  assert set(ARCHITECTURE_FIELDS) == {"model", "num_filters", "latent_channels",
                                      "hyper_filters", "integer_hyper_synthesis",
                                      "caep_blocks", "gdn"}


def test_model_flag_lists_the_registry():
  from tfcae.models import ARCHITECTURES
  values = flags.FlagValues()
  cli.define_flags_from_dataclass(TrainConfig, flag_values=values)
  assert tuple(values["model"].parser.enum_values) == ARCHITECTURES.names()
  assert "<factorized|hyperprior|meanscale|caep>" in values.get_help()


# TrainConfig.architecture() before the registry, num_filters = 64 (its key comes second,
# after "architecture"), for every architecture with and without each setting it could
# take: latent_channels (M, 0 = N), hyper_filters (H, 0 = N), gdn, integer_hyper_synthesis
# and caep_blocks. "refused": validate() refuses the combination (so it trains no model).
# The keys after "architecture" and "num_filters", in order:
#
# model       M  H gdn        int  blocks | architecture config
TODAY = """
factorized  0  0 simplified False 15 | latent_channels=64
factorized  0  0 simplified False  2 | latent_channels=64
factorized  0  0 simplified True  15 | refused
factorized  0  0 simplified True   2 | refused
factorized  0  0 original   False 15 | latent_channels=64 gdn=original
factorized  0  0 original   False  2 | latent_channels=64 gdn=original
factorized  0  0 original   True  15 | refused
factorized  0  0 original   True   2 | refused
factorized  0 48 simplified False 15 | latent_channels=64
factorized  0 48 simplified False  2 | latent_channels=64
factorized  0 48 simplified True  15 | refused
factorized  0 48 simplified True   2 | refused
factorized  0 48 original   False 15 | latent_channels=64 gdn=original
factorized  0 48 original   False  2 | latent_channels=64 gdn=original
factorized  0 48 original   True  15 | refused
factorized  0 48 original   True   2 | refused
factorized 96  0 simplified False 15 | latent_channels=96
factorized 96  0 simplified False  2 | latent_channels=96
factorized 96  0 simplified True  15 | refused
factorized 96  0 simplified True   2 | refused
factorized 96  0 original   False 15 | latent_channels=96 gdn=original
factorized 96  0 original   False  2 | latent_channels=96 gdn=original
factorized 96  0 original   True  15 | refused
factorized 96  0 original   True   2 | refused
factorized 96 48 simplified False 15 | latent_channels=96
factorized 96 48 simplified False  2 | latent_channels=96
factorized 96 48 simplified True  15 | refused
factorized 96 48 simplified True   2 | refused
factorized 96 48 original   False 15 | latent_channels=96 gdn=original
factorized 96 48 original   False  2 | latent_channels=96 gdn=original
factorized 96 48 original   True  15 | refused
factorized 96 48 original   True   2 | refused
hyperprior  0  0 simplified False 15 | latent_channels=64 hyper_filters=64
hyperprior  0  0 simplified False  2 | latent_channels=64 hyper_filters=64
hyperprior  0  0 simplified True  15 | latent_channels=64 hyper_filters=64 integer_hyper_synthesis=True
hyperprior  0  0 simplified True   2 | latent_channels=64 hyper_filters=64 integer_hyper_synthesis=True
hyperprior  0  0 original   False 15 | latent_channels=64 gdn=original hyper_filters=64
hyperprior  0  0 original   False  2 | latent_channels=64 gdn=original hyper_filters=64
hyperprior  0  0 original   True  15 | latent_channels=64 gdn=original hyper_filters=64 integer_hyper_synthesis=True
hyperprior  0  0 original   True   2 | latent_channels=64 gdn=original hyper_filters=64 integer_hyper_synthesis=True
hyperprior  0 48 simplified False 15 | latent_channels=64 hyper_filters=48
hyperprior  0 48 simplified False  2 | latent_channels=64 hyper_filters=48
hyperprior  0 48 simplified True  15 | latent_channels=64 hyper_filters=48 integer_hyper_synthesis=True
hyperprior  0 48 simplified True   2 | latent_channels=64 hyper_filters=48 integer_hyper_synthesis=True
hyperprior  0 48 original   False 15 | latent_channels=64 gdn=original hyper_filters=48
hyperprior  0 48 original   False  2 | latent_channels=64 gdn=original hyper_filters=48
hyperprior  0 48 original   True  15 | latent_channels=64 gdn=original hyper_filters=48 integer_hyper_synthesis=True
hyperprior  0 48 original   True   2 | latent_channels=64 gdn=original hyper_filters=48 integer_hyper_synthesis=True
hyperprior 96  0 simplified False 15 | latent_channels=96 hyper_filters=64
hyperprior 96  0 simplified False  2 | latent_channels=96 hyper_filters=64
hyperprior 96  0 simplified True  15 | latent_channels=96 hyper_filters=64 integer_hyper_synthesis=True
hyperprior 96  0 simplified True   2 | latent_channels=96 hyper_filters=64 integer_hyper_synthesis=True
hyperprior 96  0 original   False 15 | latent_channels=96 gdn=original hyper_filters=64
hyperprior 96  0 original   False  2 | latent_channels=96 gdn=original hyper_filters=64
hyperprior 96  0 original   True  15 | latent_channels=96 gdn=original hyper_filters=64 integer_hyper_synthesis=True
hyperprior 96  0 original   True   2 | latent_channels=96 gdn=original hyper_filters=64 integer_hyper_synthesis=True
hyperprior 96 48 simplified False 15 | latent_channels=96 hyper_filters=48
hyperprior 96 48 simplified False  2 | latent_channels=96 hyper_filters=48
hyperprior 96 48 simplified True  15 | latent_channels=96 hyper_filters=48 integer_hyper_synthesis=True
hyperprior 96 48 simplified True   2 | latent_channels=96 hyper_filters=48 integer_hyper_synthesis=True
hyperprior 96 48 original   False 15 | latent_channels=96 gdn=original hyper_filters=48
hyperprior 96 48 original   False  2 | latent_channels=96 gdn=original hyper_filters=48
hyperprior 96 48 original   True  15 | latent_channels=96 gdn=original hyper_filters=48 integer_hyper_synthesis=True
hyperprior 96 48 original   True   2 | latent_channels=96 gdn=original hyper_filters=48 integer_hyper_synthesis=True
meanscale   0  0 simplified False 15 | latent_channels=64 hyper_filters=64
meanscale   0  0 simplified False  2 | latent_channels=64 hyper_filters=64
meanscale   0  0 simplified True  15 | refused
meanscale   0  0 simplified True   2 | refused
meanscale   0  0 original   False 15 | latent_channels=64 gdn=original hyper_filters=64
meanscale   0  0 original   False  2 | latent_channels=64 gdn=original hyper_filters=64
meanscale   0  0 original   True  15 | refused
meanscale   0  0 original   True   2 | refused
meanscale   0 48 simplified False 15 | latent_channels=64 hyper_filters=48
meanscale   0 48 simplified False  2 | latent_channels=64 hyper_filters=48
meanscale   0 48 simplified True  15 | refused
meanscale   0 48 simplified True   2 | refused
meanscale   0 48 original   False 15 | latent_channels=64 gdn=original hyper_filters=48
meanscale   0 48 original   False  2 | latent_channels=64 gdn=original hyper_filters=48
meanscale   0 48 original   True  15 | refused
meanscale   0 48 original   True   2 | refused
meanscale  96  0 simplified False 15 | latent_channels=96 hyper_filters=64
meanscale  96  0 simplified False  2 | latent_channels=96 hyper_filters=64
meanscale  96  0 simplified True  15 | refused
meanscale  96  0 simplified True   2 | refused
meanscale  96  0 original   False 15 | latent_channels=96 gdn=original hyper_filters=64
meanscale  96  0 original   False  2 | latent_channels=96 gdn=original hyper_filters=64
meanscale  96  0 original   True  15 | refused
meanscale  96  0 original   True   2 | refused
meanscale  96 48 simplified False 15 | latent_channels=96 hyper_filters=48
meanscale  96 48 simplified False  2 | latent_channels=96 hyper_filters=48
meanscale  96 48 simplified True  15 | refused
meanscale  96 48 simplified True   2 | refused
meanscale  96 48 original   False 15 | latent_channels=96 gdn=original hyper_filters=48
meanscale  96 48 original   False  2 | latent_channels=96 gdn=original hyper_filters=48
meanscale  96 48 original   True  15 | refused
meanscale  96 48 original   True   2 | refused
caep        0  0 simplified False 15 | latent_channels=64 caep_blocks=15
caep        0  0 simplified False  2 | latent_channels=64 caep_blocks=2
caep        0  0 simplified True  15 | refused
caep        0  0 simplified True   2 | refused
caep        0  0 original   False 15 | refused
caep        0  0 original   False  2 | refused
caep        0  0 original   True  15 | refused
caep        0  0 original   True   2 | refused
caep        0 48 simplified False 15 | latent_channels=64 caep_blocks=15
caep        0 48 simplified False  2 | latent_channels=64 caep_blocks=2
caep        0 48 simplified True  15 | refused
caep        0 48 simplified True   2 | refused
caep        0 48 original   False 15 | refused
caep        0 48 original   False  2 | refused
caep        0 48 original   True  15 | refused
caep        0 48 original   True   2 | refused
caep       96  0 simplified False 15 | latent_channels=96 caep_blocks=15
caep       96  0 simplified False  2 | latent_channels=96 caep_blocks=2
caep       96  0 simplified True  15 | refused
caep       96  0 simplified True   2 | refused
caep       96  0 original   False 15 | refused
caep       96  0 original   False  2 | refused
caep       96  0 original   True  15 | refused
caep       96  0 original   True   2 | refused
caep       96 48 simplified False 15 | latent_channels=96 caep_blocks=15
caep       96 48 simplified False  2 | latent_channels=96 caep_blocks=2
caep       96 48 simplified True  15 | refused
caep       96 48 simplified True   2 | refused
caep       96 48 original   False 15 | refused
caep       96 48 original   False  2 | refused
caep       96 48 original   True  15 | refused
caep       96 48 original   True   2 | refused
"""


def _value(text):
  return {"True": True, "False": False}.get(text, int(text) if text.isdigit() else text)


def _rows():
  for line in TODAY.strip().splitlines():
    left, right = line.split("|")
    model, latent, hyper, gdn, integer, blocks = left.split()
    settings = dict(model=model, num_filters=64, latent_channels=int(latent),
                    hyper_filters=int(hyper), gdn=gdn,
                    integer_hyper_synthesis=_value(integer), caep_blocks=int(blocks))
    expected = None
    if right.strip() != "refused":
      expected = [("architecture", model), ("num_filters", 64)] + [
          (key, _value(value)) for key, value in (p.split("=") for p in right.split())]
    yield settings, expected


def test_the_table_covers_every_architecture_and_variation():
  rows = list(_rows())
  assert len(rows) == 128 and sum(e is not None for _, e in rows) == 72
  assert {s["model"] for s, _ in rows} == {"factorized", "hyperprior", "meanscale", "caep"}


@pytest.mark.parametrize("settings, expected", list(_rows()),
                         ids=lambda v: "-".join(map(str, v.values())) if isinstance(v, dict)
                         else "")
def test_architecture_config_is_unchanged(settings, expected):
  config = TrainConfig(model_dir="x", train_images="y", patch_size=256, **settings)
  if expected is None:
    with pytest.raises(ValueError, match="applies to --model="):
      config.validate()
    return
  config.validate()
  got = [(key, value, type(value)) for key, value in config.architecture().items()]
  assert got == [(key, value, type(value)) for key, value in expected]  # order, types too


def test_architecture_config_is_what_the_model_reports():
  """The config TrainConfig builds is the built model's get_config() (what it hashes)."""
  from tfcae.models import ARCHITECTURES, build_model
  varied = dict(num_filters=8, latent_channels=6, hyper_filters=4, caep_blocks=1)
  for name, cls in ARCHITECTURES.items():
    switches = dict(gdn="original") if "gdn" in cls.settings else {}
    architecture = TrainConfig(model=name, **varied, **switches).architecture()
    assert build_model(architecture).get_config() == architecture


# --- classical codecs ----------------------------------------------------------------
def test_codecs_are_registered_classes_and_the_tables_come_from_them():
  assert classical.CODECS == ("jpeg", "webp", "jpeg2000", "avif", "heic")
  assert classical.CODEC_REGISTRY.names() == classical.CODECS
  for name, cls in classical.CODEC_REGISTRY.items():
    assert issubclass(cls, classical.ClassicalCodec) and cls.name == name
    codec = classical.get(name)
    assert classical.DEFAULT_QUALITIES[name] == codec.default_qualities
    assert classical.QUALITY_RANGES[name] == codec.quality_range
    assert classical.QUALITY_INCREASES_RATE[name] == codec.quality_increases_rate
    assert codec.description().startswith(f"{name} via Pillow ")
  with pytest.raises(TfcaeError, match="^unknown codec 'gif'; available: jpeg, webp, "):
    classical.get("gif")
