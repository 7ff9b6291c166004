"""Model zoo: one Keras model class per architecture (CompressAI-style registry)."""
from tfcae.models.base import CompressionModel, edge_pad
from tfcae.models.caep import CaepModel
from tfcae.models.factorized import FactorizedModel
from tfcae.models.hyperprior import HyperpriorModel, MeanScaleHyperpriorModel

__all__ = ["CaepModel", "CompressionModel", "FactorizedModel", "HyperpriorModel",
           "MeanScaleHyperpriorModel", "MODELS",
           "build_model", "edge_pad"]

MODELS = {cls.architecture: cls for cls in (FactorizedModel, HyperpriorModel,
                                             MeanScaleHyperpriorModel, CaepModel)}


def build_model(config, objective=None):
  """Builds a model from its architecture config (CompressionModel.get_config())."""
  config = dict(config)
  name = config.pop("architecture")
  if name not in MODELS:
    raise ValueError(f"unknown architecture {name!r}; available: {', '.join(sorted(MODELS))}")
  return MODELS[name](objective=objective, **config)
