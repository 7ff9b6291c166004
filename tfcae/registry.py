"""Registry: one table per extension point, filled by a decorator at each class.

Why: without it, an architecture or a classical codec would be named in several places (a
dict of classes, a flag's choices, an if-ladder of settings, a string if-ladder of
codecs), and each new one would have to be added to all of them. With a registry, the
class is the one place: its decorator enters it under its name, and everything else --
the `--architecture` flag's choices, the lookup by name, the list in an error message -- reads
the registry.

    CODEC_REGISTRY = Registry("codec", attribute="name")

    @CODEC_REGISTRY.register                      # the name is Jpeg.name
    class Jpeg(ClassicalCodec): ...

    @ARCHITECTURES.register(settings=("num_filters", "latent_channels", "caep_blocks"))
    class CaepModel(CompressionModel): ...        # a keyword becomes a class attribute

    CODEC_REGISTRY.get("jpeg")                    # the class; unknown -> one-line error
    CODEC_REGISTRY.names()                        # in registration order

A registry is a read-only mapping (name -> class), so `name in registry`, `registry[name]`,
`sorted(registry)` work as on a dict. It imports nothing but the standard library, so
every layer of the package -- the models, the flags, the evaluation -- can use it; a
registry lives with its members' base layer (e.g. `tfcae.models.registry`), and code that
must not import that layer yet reads its names through `LazyNames`.
"""
from __future__ import annotations

import collections.abc
import dataclasses
from typing import Any, Callable, Iterator, Sequence, TypeVar

__all__ = ["LazyNames", "Registry", "setting"]

_C = TypeVar("_C", bound=type)


def setting(default: Any, help_text: str, choices: Sequence[Any] | None = None,
            architecture: str | None = None) -> Any:
  """A dataclass field that is also a command-line flag of the same name.

  The training settings, the methods' settings and the MNIST study's declare their fields
  with it, so a tool turns any of them into absl flags the same way (tfcae.cli).

  Args:
    default: the field's default value (an immutable one: it is shared).
    help_text: the flag's help text.
    choices: the allowed values (checked by the config's validate()), or None.
    architecture: for an architecture setting, how it enters the architecture config
      (tfcae.training.config: VALUE, FILTERS, SWITCH); None for any other setting.

  Returns:
    A dataclasses.field with that default, and the rest in its metadata ("help",
    "choices", "architecture").
  """
  return dataclasses.field(default=default, metadata={
      "help": help_text, "choices": choices, "architecture": architecture})


class Registry(collections.abc.Mapping):
  """Names to classes of one kind (an extension point).

  Args:
    kind: what the members are ("architecture", "codec"), for error messages.
    attribute: the class attribute holding a member's name, used when `register` is not
      given one (so the name is stated once, in the class).
    error: the exception a failed `get` raises (the layer's user-facing error type).
  """

  def __init__(self, kind: str, attribute: str = "name",
               error: type[Exception] = ValueError):
    self.kind = kind
    self.attribute = attribute
    self.error = error
    self._members = {}

  def register(self, name: str | type | None = None,
               **attributes: Any) -> type | Callable[[_C], _C]:
    """Class decorator: enters the class under `name` (default: its `attribute`).

    Usable bare (`@registry.register`) or called (`@registry.register("name",
    key=value)`). Each keyword is set as a class attribute first, so what a registry
    needs to know about a member is declared at the class, in one line above it.

    Args:
      name: the member's name (default: the class's `attribute`); used bare, this is
        the class itself.
      **attributes: class attributes to set on the class before it is entered.

    Returns:
      Used bare, the class; called, a decorator that enters its class and returns it.

    Raises:
      TypeError: the class has no name (none given and no `attribute`).
      ValueError: the name is already registered by another class (two classes would
        silently shadow each other).
    """
    if isinstance(name, type):  # bare @registry.register
      return self._add(name, None, attributes)
    return lambda cls: self._add(cls, name, attributes)

  def _add(self, cls, name, attributes):
    for key, value in attributes.items():
      setattr(cls, key, value)
    name = getattr(cls, self.attribute, None) if name is None else name
    if not isinstance(name, str) or not name:
      raise TypeError(f"{cls.__name__}: a {self.kind} needs a name (register(name) or a "
                      f"{self.attribute!r} class attribute)")
    if name in self._members and self._members[name] is not cls:
      raise ValueError(f"{self.kind} {name!r} is registered twice: by "
                       f"{self._members[name].__qualname__} and {cls.__qualname__}")
    self._members[name] = cls
    return cls

  def get(self, name: str) -> type:
    """The class registered as `name`.

    (Unlike a dict's `get` there is no default: an unknown name is always a mistake.)

    Args:
      name: a registered name.

    Returns:
      The class.

    Raises:
      `error` (the registry's error type): an unknown name; the message names the
        available ones.
    """
    try:
      return self._members[name]
    except (KeyError, TypeError):
      raise self.error(f"unknown {self.kind} {name!r}; available: "
                       f"{', '.join(self._members)}") from None

  def unregister(self, name):
    """Removes a member (a plug-in unloaded, a test's own class); unknown names are an
    error, as in `get`."""
    self.get(name)
    del self._members[name]

  def names(self) -> tuple[str, ...]:
    """The registered names, in registration order (the order of imports)."""
    return tuple(self._members)

  def __getitem__(self, name: str) -> type:
    return self._members[name]

  def __iter__(self) -> Iterator[str]:
    return iter(self._members)

  def __len__(self) -> int:
    return len(self._members)

  def __repr__(self) -> str:
    return f"Registry({self.kind!r}: {', '.join(self._members)})"


class LazyNames(collections.abc.Sequence):
  """The names of a registry that `load()` returns, looked up on first use.

  Why: a registry is filled by importing its members, and some members import heavy
  libraries (the architectures import TensorFlow and TFC). A module that need not load
  them to be imported (tfcae.training.config, whose fields become flags) holds this view
  instead, e.g. as a flag's choices; the members are imported only when the names are
  first read.

  Args:
    load: a function that imports the members and returns their registry.
  """

  def __init__(self, load: Callable[[], Registry]):
    self._load = load

  def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
    return self._load().names()[index]

  def __len__(self) -> int:
    return len(self._load().names())

  def __repr__(self) -> str:
    return repr(tuple(self))
