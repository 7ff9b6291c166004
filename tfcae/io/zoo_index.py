"""The zoo's folder on disk: model cards, their paths, and lookup by name or fingerprint.

Standard library only (plus the file header parser), so that every stage can resolve a
`zoo:<family>/<quality>` name (training warm-starts from one) without importing the
codec; the zoo API that builds Codecs from these folders is tfcae.zoo.
"""
import json
import os

from tfcae import TfcaeError
from tfcae.io import bitstream

__all__ = ["CARD", "PREFIX", "card", "card_at", "find", "is_variable_rate", "list", "model_of",
           "model_with",
           "parse_spec", "path", "qualities", "resolve", "root"]

PREFIX = "zoo:"  # --model=zoo:<family>/<quality>, --init_from=zoo:<family>/<quality>
# A variable-rate family is one model for every quality: its folder holds the model
# (zoo:meanscale-vbr), and the quality is the one it codes at, not a folder.

CARD = "card.json"


def root():
  # tfcae/io/zoo_index.py -> the repository (an editable install, as `make install` does).
  repository = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  return os.environ.get("TFCAE_ZOO") or os.path.join(repository, "zoo")


def _read_card(path):
  with open(os.path.join(path, CARD), encoding="utf-8") as f:
    card = json.load(f)
  card["path"] = path
  # The family is the folder (cards written before families existed lack the key).
  card.setdefault("family", os.path.basename(os.path.dirname(path)))
  return card


def is_variable_rate(family):
  """Whether a zoo family is one variable-rate model (its folder holds the model)."""
  return os.path.isfile(os.path.join(root(), str(family), CARD))


def card_at(folder):
  """The card of the zoo folder `folder`, or None when it is not one (e.g. a run)."""
  if not os.path.isfile(os.path.join(folder, CARD)):
    return None
  return _read_card(folder)


def list():  # noqa: A001  (the zoo API's name, as CompressAI's models list)
  """Cards of every shipped model, sorted by family then quality."""
  base = root()
  cards = []
  if not os.path.isdir(base):
    return cards
  for family in sorted(os.listdir(base)):
    folder = os.path.join(base, family)
    if not os.path.isdir(folder):
      continue
    if is_variable_rate(family):
      cards.append(_read_card(folder))
      continue
    for quality in os.listdir(folder):
      path = os.path.join(folder, quality)
      if quality.isdigit() and os.path.isfile(os.path.join(path, CARD)):
        cards.append(_read_card(path))
  return sorted(cards, key=lambda c: (c["family"], int(c.get("quality") or 0)))


def _available():
  qualities = {}
  for card in list():
    rates = card.get("rate_points")
    qualities.setdefault(card["family"], []).append(
        f"(variable rate, qualities 1-{rates})" if rates else str(card["quality"]))
  return "; ".join(f"{a} {','.join(q)}" for a, q in qualities.items()) or "none"


def path(family, quality=None):
  """The folder of one zoo model (a variable-rate family's whatever the quality); a
  one-line TfcaeError listing what exists otherwise."""
  if is_variable_rate(family):
    return os.path.join(root(), str(family))
  try:
    number = float(quality)
    if not number.is_integer():
      raise ValueError(quality)
    quality = int(number)
  except (TypeError, ValueError):
    raise TfcaeError(f"zoo quality must be an integer, got {quality!r}; available: "
                     f"{_available()}") from None
  folder = os.path.join(root(), str(family), str(quality))
  if not os.path.isfile(os.path.join(folder, CARD)):
    raise TfcaeError(f"no zoo model {family}/{quality}; available: {_available()}")
  return folder


def qualities(family):
  """The shipped qualities of a family; a one-line TfcaeError if there are none."""
  found = [c.get("quality") for c in list() if c["family"] == family]
  if not found:
    raise TfcaeError(f"no zoo model {family}; available: {_available()}")
  return found


def card(family, quality):
  return _read_card(path(family, quality))


def parse_spec(spec):
  """'zoo:factorized/3' -> ('factorized', '3'); None if spec is not a zoo name."""
  if not spec.startswith(PREFIX):
    return None
  name, _, quality = spec[len(PREFIX):].partition("/")
  if name and not quality and is_variable_rate(name):
    return name, None
  if not name or not quality:
    raise TfcaeError(f"{spec!r}: expected zoo:<family>/<quality>; available: "
                     f"{_available()}")
  return name, quality


def resolve(spec):
  """A model directory or a 'zoo:<family>/<quality>' name -> a model directory."""
  parsed = parse_spec(spec)
  return path(*parsed) if parsed else spec


def find(fingerprint):
  """The folder of the zoo model with this fingerprint (bytes or hex), else None."""
  if isinstance(fingerprint, (bytes, bytearray)):
    fingerprint = bytes(fingerprint).hex()
  for c in list():
    if c.get("fingerprint") == fingerprint:
      return c["path"]
  return None


def model_of(data, name="the file"):
  """The folder of the zoo model that wrote a tfcae file (its bytes), by the fingerprint in
  its header (the whole file is checked first); a one-line TfcaeError if the zoo has none.
  """
  return model_with(bitstream.parse(data).fingerprint, name)


def model_with(fingerprint, name="the file"):
  """The folder of the zoo model with this fingerprint (bytes); a one-line TfcaeError
  naming `name` (what carries the fingerprint) when the zoo has none."""
  folder = find(fingerprint)
  if folder is None:
    raise TfcaeError(f"{name} was written by model {bytes(fingerprint).hex()}, which is not "
                     "in the zoo; give --model")
  return folder
