"""Train the MNIST autoencoder of Laakom et al. (784-128-64-n), optionally decorrelated.

The bottleneck decorrelation penalty is optional; writes weights and summary.json (test
RMSE) to --model_dir.

  bin/train_mnist --flagfile=configs/mnist_decorrelation.cfg [--any_flag=override ...]
"""
from absl import flags

from tfcae import cli
import tensorflow as tf  # before cli.run: see its docstring
from tfcae.training import mnist

__all__ = ["main"]

cli.define_flags_from_dataclass(mnist.MnistConfig)
flags.DEFINE_integer("threads", 0, "TensorFlow intra-op threads; 0: TensorFlow's default.")


def main():
  config = cli.dataclass_from_flags(mnist.MnistConfig)
  config.validate()
  if not config.model_dir:
    raise ValueError("--model_dir is required")
  if flags.FLAGS.threads:
    tf.config.threading.set_intra_op_parallelism_threads(flags.FLAGS.threads)
  _, summary = mnist.train_mnist(config)
  codes = summary["test_codes"]
  print(f"done: {config.model_dir}  validation RMSE {summary['validation_rmse']:.4f}  "
        f"test RMSE {summary['test_rmse']:.4f}  test Σ_(i≠j) C_ij² "
        f"{codes['offdiag_cov_sq']:.4g}  ({summary['train_seconds']:.0f} s)")
