"""METHODS: the registry of training methods, and the loop that composes an objective.

A method is one file in tfcae/methods/ holding everything about it:

    @dataclasses.dataclass
    class DecorrelationSettings:               # its flags (their names are also config keys)
      decorrelation_weight: float = setting(0.0, "α of ...")

    @METHODS.register
    class DecorrelationMethod(Method):
      name = "decorrelation"
      settings = DecorrelationSettings         # its fields become TrainConfig fields
      def enabled(config): ...                 # is it switched on by these settings?
      def validate(config): ...                # ValueError for settings that cannot work
      def parts(config): return terms, hooks   # what it adds to the objective seam

`TrainConfig` (tfcae.training.config) is the core settings plus every registered
method's settings dataclass, so a setting has one name as a flag, in a flagfile and in
train_config.json; `build_objective` below is a loop over the methods, in registration
order (the imports of tfcae/methods/__init__.py). A method whose terms replace the
rate-distortion terms R + λ·D (D-CO, R-CO, the hinge) says so with
`replaces_rate_distortion`; at most one such method may be on. The MNIST study composes
its objective with the same loop, from the methods that apply to it (decorrelation).

A config is read by attribute only, so `config` below is any object with the settings'
fields: a TrainConfig, or the MNIST study's settings.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from tfcae.objectives.terms import LossTerm, Objective, TrainingHook
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
  def enabled(cls, config: Any) -> bool:
    """Whether these settings switch the method on.

    Args:
      config: the whole config.

    Returns:
      True when the method contributes to the objective.
    """
    raise NotImplementedError

  @classmethod
  def validate(cls, config: Any) -> None:
    """Checks the settings of this method; called by the config's validate() whether or
    not the method is on.

    Args:
      config: the whole config (a method's checks may involve the strategy, the
        distortion, ...).

    Raises:
      ValueError: settings of this method that cannot work.
    """

  @classmethod
  def parts(cls, config: Any) -> tuple[list[LossTerm], list[TrainingHook]]:
    """What the method contributes, for a config where it is enabled.

    Args:
      config: the whole config.

    Returns:
      (loss terms, training hooks).
    """
    raise NotImplementedError

  @classmethod
  def upgrade(cls, saved: dict[str, Any]) -> None:
    """Fills in, in place, the settings a saved train_config.json dict lacks whose
    current default differs from the value such a run was trained with, so that the run
    resumes as it was trained (default: nothing to fill in).

    Args:
      saved: the dict read from train_config.json.
    """


def settings_classes(names: Iterable[str] | None = None) -> tuple[type, ...]:
  """The settings dataclasses of methods.

  Args:
    names: method names (default: every registered method).

  Returns:
    Their `settings` dataclasses, in the order of `names` (default: registration order).

  Raises:
    ValueError: an unknown method name.
  """
  return tuple(METHODS.get(n).settings for n in (names or METHODS.names()))


def build_objective(config: Any, base_terms: Sequence[LossTerm],
                    names: Iterable[str] | None = None) -> Objective:
  """The objective of a config: the base terms with every enabled method's parts.

  Each enabled method's terms are added to `base_terms`, or replace them for a method
  that says so (`replaces_rate_distortion`), and its hooks are appended, in the order
  of the methods.

  Args:
    config: the whole config.
    base_terms: R + λ·D for the codecs, the cross-entropy for MNIST.
    names: the methods to consider, those whose settings the config has (default: every
      registered method, in registration order).

  Returns:
    Objective(terms, hooks).

  Raises:
    ValueError: an unknown method, two enabled methods that both replace the base
      terms, or invalid settings of a method.
  """
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
