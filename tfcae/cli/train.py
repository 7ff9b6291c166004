"""Train a compressive autoencoder; resumable; exports a SavedModel to --model_dir.

  bin/train --flagfile=configs/quickstart.cfg [--any_flag=override ...]
"""
from tfcae import cli
import tensorflow as tf  # noqa: F401  (before cli.run: see its docstring)
from tfcae.training import loop as training
from tfcae.training.config import TrainConfig

__all__ = ["main"]

cli.define_flags_from_dataclass(TrainConfig)


def main():
  config = cli.dataclass_from_flags(TrainConfig)
  config.validate()
  training.configure_devices(config.num_cpu_devices)
  summary = training.train(config)
  val = summary["validation"]
  print(f"done: {config.model_dir}  validation bpp {val.get('bpp', float('nan')):.4f}  "
        + "  ".join(f"{k} {v:.4f}" for k, v in val.items() if k not in ("bpp", "loss")))
