"""The model zoo: pretrained rate ladders shipped in the repository.

Layout (CompressAI's zoo, as folders)::

  zoo/<family>/<quality>/         saved_model.pb, variables/   the exported SavedModel
                                  tfcae_export.json             architecture, fingerprint
                                  card.json                     the model card
                                  encoder.tflite, encoder_int8.tflite (+ .json)
                                                                sparse families only: the
                                                                reduced device encoders

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
`metric="ms-ssim"`). A sparse family (tfcae.zoo.sparse, e.g. "factorized-l11") is double
descent from some qualities of a ladder, at their λ: cheaper encoders for the same files'
decoder cost, with the encoder's cost on the card. The zoo folder is the repository's `zoo/` (an editable install, as `make install` does),
or $TFCAE_ZOO.
"""
from tfcae.io.zoo_index import (CARD, PREFIX, card, card_at, find, list, model_of,  # noqa: F401,A004
                                parse_spec, path, qualities, resolve, root)

__all__ = ["CARD", "PREFIX", "card", "card_at", "codec_of", "find", "list", "load", "model_of",
           "parse_spec", "path", "qualities", "resolve", "root"]


def codec_of(data, name="the file"):
  """A tfcae.deploy.codec.Codec of the zoo model that wrote a tfcae file (its bytes): what
  `codec.decompress_file` decodes with when no model is given. (Here, not in tfcae.deploy.codec:
  the zoo builds Codecs, so codec looking up the zoo would make the two import each
  other.)"""
  from tfcae.deploy.codec import Codec
  return Codec(model_of(data, name))


def load(family, quality, keras=False):
  """A zoo model: a tfcae.deploy.codec.Codec, or with keras=True the trainable Keras model
  (weights, coding tables and fingerprint of the SavedModel)."""
  folder = path(family, quality)
  if keras:
    from tfcae.training.export import restore_keras
    return restore_keras(folder)
  from tfcae.deploy.codec import Codec
  return Codec(folder)
