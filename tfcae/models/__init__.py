"""Model zoo: one Keras model class per architecture, each registered by its decorator in
`ARCHITECTURES` (tfcae/models/registry.py; CompressionModel.architecture is the name).

Importing this package imports every architecture module, which is what fills the
registry; the import order below is the registry's order (the `--architecture` flag lists
it).
"""
from tfcae.models.base import CompressionModel, edge_pad
from tfcae.models.factorized import FactorizedModel
from tfcae.models.hyperprior import HyperpriorModel, MeanScaleHyperpriorModel
from tfcae.models.caep import CaepModel  # noqa: I100 (after the above: registry order)
from tfcae.models.vbr import VariableRateMeanScaleModel  # noqa: I100 (registry order)
from tfcae.models.registry import ARCHITECTURES

__all__ = ["ARCHITECTURES", "CaepModel", "CompressionModel", "FactorizedModel",
           "HyperpriorModel", "MeanScaleHyperpriorModel", "MODELS",
           "VariableRateMeanScaleModel", "build_model", "edge_pad"]

# MODELS: another name of the registry (a mapping, name -> class).
MODELS = ARCHITECTURES


def build_model(config, objective=None):
  """Builds a model from its architecture config (CompressionModel.get_config())."""
  config = dict(config)
  cls = ARCHITECTURES.get(config.pop("architecture"))
  return cls(objective=objective, **config)
