"""Rate-distortion plot of results files, with a BD-rate table against an anchor.

  bin/plot --results=jpeg.json,webp.json --metric=psnr --output=rd.png \\
      [--anchor=jpeg] [--bd_output=bd.json] [--bd_method=cubic|pchip]

BD-rates are computed for PSNR and for MS-SSIM in dB (Bjontegaard, VCEG-M33),
each curve against the curve whose `name` is --anchor.

  bin/plot --lambda_runs=runs/a,label=runs/b --output=lambda.png

draws the D-CO Lagrange multiplier trajectories of several runs instead.

  bin/plot --green=docs/benchmark/sparse_table1_zoo.json --output=green.png \\
      --results=docs/benchmark/compressai-bmshj2018-factorized.json,docs/benchmark/jpeg.json

draws the green trade-off: Kodak ΔPSNR at equal bpp against the dense zoo curve versus
encoder kMAC per pixel (log axis), one panel per dense warm start of a sparse Table I
(bench/sparse_table1.py), with --results as references (CompressAI models as points at
their encoder cost, classical codecs as lines).
"""
import os

from absl import flags

from tfcae import TfcaeError

__all__ = ["main"]

FLAGS = flags.FLAGS
flags.DEFINE_string("results", None, "Comma-separated results JSON files.")
flags.DEFINE_enum("metric", "psnr", ["psnr", "ms-ssim"], "Quality axis of the plot.")
flags.DEFINE_string("output", None, "PNG to write.")
flags.DEFINE_string("anchor", "jpeg", "Name of the anchor curve for BD-rates; empty: no table.")
flags.DEFINE_string("bd_output", None, "Also write the BD-rate table as JSON here.")
flags.DEFINE_enum("bd_method", "cubic", ["cubic", "pchip"],
                  "cubic: VCEG-M33 polynomial fit; pchip: piecewise cubic Hermite (VTM CTC).")
flags.DEFINE_string("green", None, "Green trade-off mode: a sparse Table I JSON "
                    "(bench/sparse_table1.py); --results are the reference codecs.")
flags.DEFINE_string("lambda_runs", None, "D-CO mode: comma-separated model_dirs whose "
                    "Lagrange multiplier trajectories (history.csv) are drawn in one PNG "
                    "(van Rozendaal et al., Fig. 3); label a run as label=dir.")


def plot_lambda_runs():
  from tfcae.evaluation import plotting
  runs = []
  for item in [p.strip() for p in FLAGS.lambda_runs.split(",") if p.strip()]:
    label, _, path = item.rpartition("=")
    try:
      steps, values = plotting.read_lambda_trajectory(path)
    except ValueError as e:
      raise TfcaeError(str(e)) from None
    runs.append((label or os.path.basename(os.path.normpath(path)), steps, values))
  try:
    plotting.plot_lambda_trajectories(runs, FLAGS.output)
  except ValueError as e:
    raise TfcaeError(str(e)) from None
  except OSError as e:
    raise TfcaeError(f"{FLAGS.output}: cannot write ({e.strerror or e})") from None
  print(f"wrote {FLAGS.output}")


def read_results_files(spec):
  from tfcae.evaluation.results import read_results
  results = []
  for path in [p.strip() for p in (spec or "").split(",") if p.strip()]:
    try:
      results.append(read_results(path))
    except OSError as e:
      raise TfcaeError(f"{path}: cannot read ({e.strerror or e})") from None
    except (ValueError, KeyError) as e:  # json.JSONDecodeError is a ValueError
      raise TfcaeError(f"{path}: not a valid results file ({e})") from None
  return results


def plot_green():
  import json
  from tfcae.evaluation import green, plotting
  try:
    with open(FLAGS.green, encoding="utf-8") as f:
      table = json.load(f)
  except OSError as e:
    raise TfcaeError(f"{FLAGS.green}: cannot read ({e.strerror or e})") from None
  except ValueError as e:
    raise TfcaeError(f"{FLAGS.green}: not JSON ({e})") from None
  try:
    panels = green.panels_of_table(table, read_results_files(FLAGS.results))
    plotting.plot_green(panels, FLAGS.output)
  except (KeyError, TypeError) as e:
    raise TfcaeError(f"{FLAGS.green}: not a sparse Table I (bench/sparse_table1.py): "
                     f"missing {e}") from None
  except ValueError as e:
    raise TfcaeError(str(e)) from None
  except OSError as e:
    raise TfcaeError(f"{FLAGS.output}: cannot write ({e.strerror or e})") from None
  print(f"wrote {FLAGS.output}")


def main():
  from tfcae.evaluation import bdrate, plotting
  from tfcae.io.fileio import atomic_write_json
  if (FLAGS.lambda_runs or FLAGS.green) and not FLAGS.output:
    raise TfcaeError("--output is required")
  if FLAGS.lambda_runs:
    return plot_lambda_runs()
  if FLAGS.green:
    return plot_green()
  if not FLAGS.results:
    raise TfcaeError("--results is required")
  if not FLAGS.output:
    raise TfcaeError("--output is required")
  results = read_results_files(FLAGS.results)
  try:
    plotting.plot_rd(results, FLAGS.metric, FLAGS.output)
  except ValueError as e:
    raise TfcaeError(str(e)) from None
  except OSError as e:
    raise TfcaeError(f"{FLAGS.output}: cannot write ({e.strerror or e})") from None
  print(f"wrote {FLAGS.output}")
  if not FLAGS.anchor:
    return
  try:
    table = bdrate.bd_table(results, FLAGS.anchor, FLAGS.bd_method)
  except ValueError as e:
    raise TfcaeError(str(e)) from None
  text, _ = bdrate.format_table(table)
  print(f"BD vs {FLAGS.anchor} ({FLAGS.bd_method}; negative rate = fewer bits):")
  print(text)
  for row in table["rows"]:
    for note in row.get("notes", []):
      print(f"  note: {row['name']}: {note}")
  if FLAGS.bd_output:
    atomic_write_json(FLAGS.bd_output, table)
    print(f"wrote {FLAGS.bd_output}")
