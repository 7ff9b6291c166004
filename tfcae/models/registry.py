"""ARCHITECTURES: the registry of codec architectures (CompressionModel sub-classes).

Each architecture class registers itself with a decorator that also declares the
settings it is built from:

    @ARCHITECTURES.register(settings=("num_filters", "latent_channels", "gdn"))
    class FactorizedModel(CompressionModel):
      architecture = "factorized"   # the registry name: --architecture=factorized, get_config()

`settings` names the constructor arguments the architecture takes from the training
settings (the tfcae.training.config.TrainConfig fields of the same names), in the order its
`get_config()` lists them. TrainConfig.architecture_config() builds the architecture config
from exactly these, so a new architecture needs no edit of the flags; how a setting's
value enters the config (0 meaning num_filters, listed only when not the default) is a
property of the setting, declared on its TrainConfig field.

A module of its own (not tfcae/models/__init__.py, not base.py) so that a model module can
import it without importing its siblings.
"""
from tfcae.registry import Registry

__all__ = ["ARCHITECTURES"]

ARCHITECTURES = Registry("architecture", attribute="architecture")
