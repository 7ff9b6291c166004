"""The model zoo: pretrained rate ladders shipped in the repository.

Layout (CompressAI's zoo, as folders)::

  zoo/<family>/<quality>/         saved_model.pb, variables/   the exported SavedModel
  zoo/<family>/                   (the same)                   a variable-rate family:
                                                               one model, every quality
                                  tfcae_export.json             architecture, fingerprint
                                  card.json                     the model card
                                  encoder.tflite, encoder_int8.tflite (+ .json)
                                                                the device encoders of the
                                                                sparse families and of some
                                                                models (tfcae.zoo.device)

The SavedModel carries the coding tables, so a file decodes the same wherever the
SavedModel is loaded; its variables are also the warm-start weights
(`tfcae.serving.exported.restore_keras`, `--init_from=zoo:factorized/3`), so no checkpoint
is shipped beside it.

  tfcae.zoo.list()                          every shipped model (cards)
  tfcae.zoo.load("factorized", quality=3)   a Codec (compress/decompress bytes)
  tfcae.zoo.load("factorized-msssim", 3)    the MS-SSIM-optimised ladder
  tfcae.zoo.load("meanscale-vbr")           one variable-rate model: every quality in
                                            [1, 8], and rate control (compress(image,
                                            quality=2.7 | max_bytes= | target_bpp= |
                                            target_psnr=))
  tfcae.zoo.load(..., keras=True)           the Keras model, restored from the SavedModel
  tfcae.serving.open_model("zoo:factorized/3")  the ExportedModel (as every --model flag)
  tfcae.zoo.find(fingerprint)               the zoo model that wrote a file
  tfcae.zoo.codec_of(data)                  its Codec, from the file's bytes (bin/decompress)

A family is a ladder: one architecture and one distortion at several λ (its folder name;
"factorized" is MSE-optimised, "factorized-msssim" MS-SSIM-optimised, as CompressAI's
`metric="ms-ssim"`). A sparse family (tfcae.zoo.sparse, e.g. "factorized-l11") is double
descent from some qualities of a ladder, at their λ: cheaper encoders for the same files'
decoder cost, with the encoder's cost on the card. The zoo folder is the repository's
`zoo/` (an editable install, as `make install` does), or $TFCAE_ZOO.
"""
from __future__ import annotations

from tfcae.io.zoo_index import (CARD, PREFIX, card, card_at, find, list, model_of,  # noqa: F401,A004
                                parse_spec, path, qualities, resolve, root)

__all__ = ["CARD", "PREFIX", "card", "card_at", "codec_of", "find", "list", "load", "model_of",
           "parse_spec", "path", "qualities", "resolve", "root"]


def codec_of(data: bytes, name: str = "the file"):
  """The Codec (tfcae.serving.Codec) of the zoo model that wrote a tfcae file.

  Args:
    data: the file's bytes (the whole file is checked first).
    name: the file's name, for the error.

  Returns:
    The Codec of the zoo model whose fingerprint the file carries.

  Raises:
    TfcaeError: a damaged file, or one no zoo model wrote.
  """
  from tfcae.serving.codec import Codec
  return Codec(model_of(data, name))


def load(family: str, quality: int | None = None, keras: bool = False):
  """A zoo model, as CompressAI's zoo functions (`bmshj2018_factorized(quality=3)`).

  Args:
    family: the ladder, e.g. "factorized", "factorized-msssim", "factorized-l11", or a
      variable-rate family ("meanscale-vbr"), one model whose Codec takes the quality (or
      a target: `load("meanscale-vbr").compress(image, max_bytes=50_000)`).
    quality: a ladder's quality (1 = lowest rate); not needed for a variable-rate family.
    keras: return the trainable Keras model instead (weights, coding tables and
      fingerprint of the SavedModel).

  Returns:
    A tfcae.serving.Codec (compress / decompress bytes), or the Keras CompressionModel.

  Raises:
    TfcaeError: no such model (the message lists those that exist).
  """
  from tfcae.serving import open_model
  from tfcae.serving.codec import Codec
  exported = open_model(path(family, quality))
  return exported.restore_keras() if keras else Codec(exported)
