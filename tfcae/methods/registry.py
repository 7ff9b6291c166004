"""METHODS: the registry of training methods, and the loop that composes an objective.

A method is one file in tfcae/methods/ holding everything about it:

    @dataclasses.dataclass
    class DecorrelationSettings:               # its flags, with the names they always had
      decorrelation_weight: float = setting(0.0, "α of ...")

    @METHODS.register
    class DecorrelationMethod(Method):
      name = "decorrelation"
      settings = DecorrelationSettings         # its fields become TrainConfig fields
      def enabled(config): ...                 # is it switched on by these settings?
      def validate(config): ...                # ValueError for settings that cannot work
      def parts(config): return terms, hooks   # what it adds to the objective seam

`TrainConfig` (tfcae.training.config) is the core settings plus every registered
method's settings dataclass, so each flag, flagfile line and train_config.json entry keeps
its name; `build_objective` below is a loop over the methods, in registration order (the
imports of tfcae/methods/__init__.py). A method whose terms replace the rate-distortion
terms R + λ·D (D-CO, R-CO, the hinge) says so with `replaces_rate_distortion`; at most one
such method may be on. The MNIST study composes its objective with the same loop, from
the methods that apply to it (decorrelation).
"""
from tfcae.objectives.terms import Objective
from tfcae.registry import Registry

__all__ = ["METHODS", "Method", "build_objective", "settings_classes"]

METHODS = Registry("method", attribute="name")


class Method:
  """Base of a registered method (class methods only: a method has no state of its own;
  its terms and hooks hold it, and the model's checkpoint saves them)."""

  name = None
  settings = None                   # a dataclass of `tfcae.registry.setting` fields
  replaces_rate_distortion = False  # its terms replace R + λ·D instead of adding to them

  @classmethod
  def enabled(cls, config):
    """Whether these settings switch the method on."""
    raise NotImplementedError

  @classmethod
  def validate(cls, config):
    """Raises ValueError for settings of this method that cannot work. `config` is the
    whole config (a method's checks may involve the strategy, the distortion, ...); called
    by the config's validate() whether or not the method is on."""

  @classmethod
  def parts(cls, config):
    """(loss terms, training hooks) it contributes, for a config where it is enabled."""
    raise NotImplementedError

  @classmethod
  def upgrade(cls, saved):
    """Fills in, in a train_config.json dict saved by an older version, the settings whose
    default has changed since (so an old run resumes as it was trained)."""


def settings_classes(names=None):
  """The settings dataclasses of the registered methods (or of `names`), in order."""
  return tuple(METHODS.get(n).settings for n in (names or METHODS.names()))


def build_objective(config, base_terms, names=None):
  """Objective(terms, hooks): `base_terms` (R + λ·D for the codecs, the cross-entropy for
  MNIST) with every enabled method's terms added, or replacing them for a method that
  says so, and its hooks appended; `names` limits the methods to those a config has."""
  terms, hooks, replaced_by = list(base_terms), [], None
  for name in names or METHODS.names():
    method = METHODS.get(name)
    if not method.enabled(config):
      continue
    new_terms, new_hooks = method.parts(config)
    if method.replaces_rate_distortion:
      if replaced_by:
        raise ValueError(f"{replaced_by} and {name} both replace the rate-distortion terms")
      terms, replaced_by = list(new_terms) + terms[len(base_terms):], name
    else:
      terms.extend(new_terms)
    hooks.extend(new_hooks)
  return Objective(terms, hooks)
