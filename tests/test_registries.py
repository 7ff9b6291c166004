"""The registries: the generic Registry, the architectures it lists
and the settings they declare, the classical codecs, and the training methods.

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


def test_registry_and_classical_codecs_import_without_tensorflow():
  # (TrainConfig imports the methods, whose settings it is made of: TensorFlow.)
  code = ("import sys, tfcae.registry, tfcae.evaluation.classical; "
          "assert 'tensorflow' not in sys.modules, 'TF imported'")
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                     env=dict(os.environ, PYTHONPATH=REPO))
  assert r.returncode == 0, r.stderr


# --- architectures -------------------------------------------------------------------
def test_architectures_are_registered_by_their_classes():
  from tfcae import models
  assert models.ARCHITECTURES.names() == ("factorized", "hyperprior", "meanscale", "caep",
                                          "meanscale-vbr")
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
  assert set(ARCHITECTURE_FIELDS) == {"architecture", "num_filters", "latent_channels",
                                      "hyper_filters", "integer_hyper_synthesis",
                                      "caep_blocks", "gdn", "rate_points"}


def test_model_flag_lists_the_registry():
  from tfcae.models import ARCHITECTURES
  values = flags.FlagValues()
  cli.define_flags_from_dataclass(TrainConfig, flag_values=values)
  assert tuple(values["architecture"].parser.enum_values) == ARCHITECTURES.names()
  assert "<factorized|hyperprior|meanscale|caep|meanscale-vbr>" in values.get_help()


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
    settings = dict(architecture=model, num_filters=64, latent_channels=int(latent),
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
  assert {s["architecture"] for s, _ in rows} == {"factorized", "hyperprior", "meanscale", "caep"}


@pytest.mark.parametrize("settings, expected", list(_rows()),
                         ids=lambda v: "-".join(map(str, v.values())) if isinstance(v, dict)
                         else "")
def test_architecture_config_is_unchanged(settings, expected):
  config = TrainConfig(model_dir="x", train_images="y", patch_size=256, **settings)
  if expected is None:
    with pytest.raises(ValueError, match="applies to --architecture="):
      config.validate()
    return
  config.validate()
  got = [(key, value, type(value)) for key, value in config.architecture_config().items()]
  assert got == [(key, value, type(value)) for key, value in expected]  # order, types too


def test_architecture_config_is_what_the_model_reports():
  """The config TrainConfig builds is the built model's get_config() (what it hashes)."""
  from tfcae.models import ARCHITECTURES, build_model
  varied = dict(num_filters=8, latent_channels=6, hyper_filters=4, caep_blocks=1)
  for name, cls in ARCHITECTURES.items():
    switches = dict(gdn="original") if "gdn" in cls.settings else {}
    architecture = TrainConfig(architecture=name, **varied, **switches).architecture_config()
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


# --- methods -------------------------------------------------------------------------
# The flags of the four methods as they were when they were TrainConfig's own fields:
# every flagfile and train_config.json names them, so a method's settings keep them.
METHOD_FLAGS = {
    "dco": ("objective", "target_distortion", "target_bpp", "hinge_lambda",
            "target_tolerance", "multiplier_rule", "multiplier_lr", "multiplier_momentum",
            "multiplier_dampening", "multiplier_max", "multiplier_init", "multiplier_signal"),
    "decorrelation": ("decorrelation_weight", "decorrelation_form"),
    "admm": ("admm_keep_ratio", "admm_period", "admm_rho", "admm_scope"),
    "double_descent": ("sparsity_constraint", "sparsity_groups", "sparsity_radius",
                       "sparsity_relative_radius", "sparsity_layers", "first_descent_epochs",
                       "project_every"),
}


def test_methods_are_registered_and_own_todays_flags():
  import dataclasses
  from tfcae.methods.registry import METHODS
  from tfcae.training.config import CoreSettings
  assert METHODS.names() == tuple(METHOD_FLAGS)
  fields = {f.name for f in dataclasses.fields(TrainConfig)}
  core = {f.name for f in dataclasses.fields(CoreSettings)}
  claimed = list(core)
  for name, flags_ in METHOD_FLAGS.items():
    own = tuple(f.name for f in dataclasses.fields(METHODS.get(name).settings))
    assert own == flags_, name
    assert set(own) <= fields
    claimed += own
  # No setting is declared twice (a dataclass would silently keep one of the two).
  assert sorted(claimed) == sorted(fields) and len(set(claimed)) == len(claimed)


def _term_and_hook_classes(objective):
  return ([type(t).__name__ for t in objective.terms],
          [type(h).__name__ for h in objective.hooks])


@pytest.mark.parametrize("overrides, terms, hooks", [
    ({}, ["Rate", "Distortion"], []),
    ({"decorrelation_weight": 0.1}, ["Rate", "Distortion", "Decorrelation"], []),
    ({"objective": "dco", "target_distortion": 40., "decorrelation_weight": 0.1},
     ["Rate", "ConstrainedDistortion", "Decorrelation"], ["DualAscent"]),
    ({"objective": "hinge", "target_distortion": 40.}, ["Rate", "Hinge"], []),
    ({"objective": "rco", "target_bpp": 0.5}, ["Distortion", "ConstrainedRate"],
     ["DualAscent"]),
    ({"architecture": "caep", "admm_keep_ratio": 0.5}, ["Rate", "Distortion", "ADMMPenalty"],
     ["ADMMUpdate"]),
    ({"sparsity_constraint": "l11", "epochs": 3}, ["Rate", "Distortion"], ["DoubleDescent"]),
])
def test_build_objective_is_a_loop_over_the_methods(tmp_path, overrides, terms, hooks):
  """What each method contributes, and that D-CO/R-CO/hinge replace R + λ·D while the
  others add to it (the if-ladder this loop replaced did the same)."""
  from tfcae.training import loop
  from conftest import tiny_config
  config = tiny_config(tmp_path, **overrides)
  config.validate()
  assert _term_and_hook_classes(loop.build_objective(config)) == (terms, hooks)


def test_mnist_composes_its_objective_from_the_same_methods():
  import dataclasses
  from tfcae.methods.decorrelation import DecorrelationSettings
  from tfcae.training import mnist
  own = [f.name for f in dataclasses.fields(DecorrelationSettings)]
  assert set(own) <= {f.name for f in dataclasses.fields(mnist.MnistConfig)}
  objective = mnist.build_objective(mnist.MnistConfig(decorrelation_weight=0.5))
  assert _term_and_hook_classes(objective) == (["BinaryCrossEntropy", "Decorrelation"], [])
  assert objective.terms[1].weight == 0.5
  with pytest.raises(ValueError, match="decorrelation_weight must be >= 0"):
    mnist.MnistConfig(decorrelation_weight=-1.).validate()


def test_a_new_method_is_one_file(tmp_path):
  """A method written as one module -- its settings, checks, and the term it adds -- is
  a flag of TrainConfig and part of the objective once imported, with no edit of the
  config or the training loop."""
  (tmp_path / "toy_method.py").write_text('''
import dataclasses
import tensorflow as tf
from tfcae.methods.registry import METHODS, Method
from tfcae.objectives.terms import LossTerm
from tfcae.registry import setting

class KernelL2(LossTerm):
  def value(self, ctx):
    return tf.add_n([tf.reduce_sum(tf.square(v)) for v in ctx.model.trainable_variables
                     if "kernel" in v.name])

@dataclasses.dataclass
class ToySettings:
  toy_weight: float = setting(0.0, "Weight decay of the kernels; 0 disables it.")

@METHODS.register
class Toy(Method):
  name = "toy"
  settings = ToySettings
  def enabled(config): return config.toy_weight > 0
  def validate(config):
    if config.toy_weight < 0: raise ValueError("--toy_weight must be >= 0")
  def parts(config): return [KernelL2(config.toy_weight, "kernel_l2")], []
''')
  code = """
import toy_method
from tfcae.training import loop
from tfcae.training.config import TrainConfig
c = TrainConfig(model_dir="m", train_images="t", toy_weight=1e-3)
c.validate()
print([type(t).__name__ for t in loop.build_objective(c).terms])
try:
  TrainConfig(model_dir="m", train_images="t", toy_weight=-1.).validate()
except ValueError as e:
  print(e)
"""
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                     env=dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}"),
                     timeout=300)
  assert r.returncode == 0, r.stderr
  assert r.stdout.splitlines()[-2:] == ["['Rate', 'Distortion', 'KernelL2']",
                                        "--toy_weight must be >= 0"]
