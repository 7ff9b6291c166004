"""Sparse-encoder accounting of a trained model: parameters, zeros, MACCs, memory.

  bin/analyze --model=runs/factorized_cpu21k_l0.01 [--output=analysis.json]
  bin/analyze --model=zoo:factorized/3
  bin/analyze --model=zoo:factorized-l11/5   # a sparse zoo model: cost and what it buys

Per layer and in total, for encoder and decoder: parameters, zero fraction, all-zero
filters / input channels, MACCs per pixel dense and after structured channel removal
(tfcae.deploy.reduction), memory dense / sparse (values + bitmap) / reduced. Conventions:
tfcae/analysis/accounting.py. For a zoo model, the last lines put the encoder's cost next to
the Kodak result on its card (and, for a sparse model, its dense sibling's).
"""
from absl import flags

from tfcae import cli
import tensorflow as tf  # noqa: F401  (before cli.run: see its docstring)
from tfcae import zoo
from tfcae.analysis import accounting
from tfcae.io.fileio import atomic_write_json
from tfcae.training.export import load_trained

__all__ = ["main"]

cli.define_model_flags()
flags.DEFINE_string("output", "", "Also write the full accounting as JSON here.")
FLAGS = flags.FLAGS


def main():
  model_dir = cli.model_dir_from_flags()
  report = accounting.analyze(load_trained(model_dir, for_compression=False))
  report["model_dir"] = model_dir
  print(accounting.format_report(report))
  card = zoo.card_at(model_dir)
  if card is not None:
    report["card"] = card
    print()
    print(accounting.format_tradeoff(report, card))
  if FLAGS.output:
    atomic_write_json(FLAGS.output, report)
    print(f"wrote {FLAGS.output}")
