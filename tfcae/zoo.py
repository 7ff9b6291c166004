"""The model zoo: pretrained rate ladders shipped in the repository (issue 14).

Layout (CompressAI's zoo, as folders)::

  zoo/<family>/<quality>/         saved_model.pb, variables/   the exported SavedModel
                                  tfcae_export.json             architecture, fingerprint
                                  card.json                     the model card

The SavedModel carries the coding tables, so a file decodes the same wherever the
SavedModel is loaded; its variables are also the warm-start weights (`restore_keras`,
`--init_from=zoo:factorized/3`), so no checkpoint is shipped beside it.

  tfcae.zoo.list()                          every shipped model (cards)
  tfcae.zoo.load("factorized", quality=3)   a Codec (compress/decompress bytes)
  tfcae.zoo.load("factorized-msssim", 3)    the MS-SSIM-optimised ladder
  tfcae.zoo.load(..., keras=True)           the Keras model, restored from the SavedModel
  tfcae.zoo.find(fingerprint)               the zoo model that wrote a file
  tfcae.zoo.codec_of(data)                  its Codec, from the file's bytes (bin/decompress)

A family is a ladder: one architecture and one distortion at several λ (its folder name;
"factorized" is MSE-optimised, "factorized-msssim" MS-SSIM-optimised, as CompressAI's
`metric="ms-ssim"`). The zoo folder is the repository's `zoo/` (an editable install, as `make install` does),
or $TFCAE_ZOO.
"""
import json
import os

from tfcae import TfcaeError, bitstream
from tfcae.rundir import ZOO_PREFIX as PREFIX

CARD = "card.json"


def root():
  return os.environ.get("TFCAE_ZOO") or os.path.join(
      os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo")


def _read_card(path):
  with open(os.path.join(path, CARD), encoding="utf-8") as f:
    card = json.load(f)
  card["path"] = path
  # The family is the folder (cards written before families existed lack the key).
  card.setdefault("family", os.path.basename(os.path.dirname(path)))
  return card


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
    for quality in os.listdir(folder):
      path = os.path.join(folder, quality)
      if quality.isdigit() and os.path.isfile(os.path.join(path, CARD)):
        cards.append(_read_card(path))
  return sorted(cards, key=lambda c: (c["family"], int(c["quality"])))


def _available():
  qualities = {}
  for card in list():
    qualities.setdefault(card["family"], []).append(str(card["quality"]))
  return "; ".join(f"{a} {','.join(q)}" for a, q in qualities.items()) or "none"


def path(family, quality):
  """The folder of one zoo model; a one-line TfcaeError listing what exists otherwise."""
  try:
    quality = int(quality)
  except (TypeError, ValueError):
    raise TfcaeError(f"zoo quality must be an integer, got {quality!r}; available: "
                     f"{_available()}") from None
  folder = os.path.join(root(), str(family), str(quality))
  if not os.path.isfile(os.path.join(folder, CARD)):
    raise TfcaeError(f"no zoo model {family}/{quality}; available: {_available()}")
  return folder


def qualities(family):
  """The shipped qualities of a family; a one-line TfcaeError if there are none."""
  found = [c["quality"] for c in list() if c["family"] == family]
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
  fingerprint = bitstream.parse(data).fingerprint
  folder = find(fingerprint)
  if folder is None:
    raise TfcaeError(f"{name} was written by model {fingerprint.hex()}, which is not in "
                     "the zoo; give --model_dir")
  return folder


def codec_of(data, name="the file"):
  """A tfcae.codec.Codec of the zoo model that wrote a tfcae file (its bytes): what
  `codec.decompress_file` decodes with when no model is given. (Here, not in tfcae.codec:
  the zoo builds Codecs, so codec looking up the zoo would make the two import each
  other.)"""
  from tfcae.codec import Codec
  return Codec(model_of(data, name))


def load(family, quality, keras=False):
  """A zoo model: a tfcae.codec.Codec, or with keras=True the trainable Keras model
  (weights, coding tables and fingerprint of the SavedModel)."""
  folder = path(family, quality)
  if keras:
    from tfcae.export import restore_keras
    return restore_keras(folder)
  from tfcae.codec import Codec
  return Codec(folder)
