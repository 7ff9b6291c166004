#!/usr/bin/env python3
"""The kernel-switch experiment: files written with TensorFlow's oneDNN
kernels on, read with them off (tfcae.deploy.crossplatform), on Kodak.

  .venv/bin/python bench/cross_kernel.py --model_dir=runs/qs_hyperprior \
      --images='../shared/data/kodak/*.png' --output=docs/benchmark/cross_kernel.json
  # --as_version_1: strip the index check first (what every hyperprior file was before
  # format version 2): the "before" column

Prints one line per image (ok / refused / garbage / error / hang) and a summary; the JSON
holds the records.
"""
import json
import os
import tempfile
import time

from tfcae import cli  # first: it quiets TensorFlow's start-up
from absl import flags

from tfcae.deploy import crossplatform
from tfcae.io.fileio import expand_images

HERE = os.path.dirname(os.path.abspath(__file__))

flags.DEFINE_string("model_dir", None, "Exported model.")
flags.DEFINE_string("images", "../shared/data/kodak/*.png", "Images.")
flags.DEFINE_integer("write", 1, "TF_ENABLE_ONEDNN_OPTS of the writer.")
flags.DEFINE_integer("read", 0, "TF_ENABLE_ONEDNN_OPTS of the reader.")
flags.DEFINE_bool("as_version_1", False, "Strip the index check (format version 1).")
flags.DEFINE_integer("timeout", 300, "Seconds before a decode counts as a hang.")
flags.DEFINE_list("quality", None, "A variable-rate model's qualities: one check each.")
flags.DEFINE_string("output", None, "JSON of the records.")
flags.mark_flags_as_required(["model_dir"])
FLAGS = flags.FLAGS


def main():
  images = expand_images(FLAGS.images)
  runs = []
  for quality in FLAGS.quality or [None]:
    quality = None if quality is None else float(quality)
    with tempfile.TemporaryDirectory() as work:
      records = crossplatform.cross_check(
          FLAGS.model_dir, images, work, FLAGS.write, FLAGS.read, FLAGS.as_version_1,
          FLAGS.timeout, log=lambda line: print(line, flush=True), quality=quality)
    counts = {}
    for r in records:
      counts[r["status"]] = counts.get(r["status"], 0) + 1
    same = sum(r["bytes_equal"] for r in records)
    at = "" if quality is None else f" at quality {quality:g}"
    print(f"{FLAGS.model_dir}{at}: written with oneDNN={FLAGS.write}, read with {FLAGS.read}"
          f"{' as version 1' if FLAGS.as_version_1 else ''}: " +
          ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) +
          f" of {len(records)}; {same} of {len(records)} files byte-identical across writers")
    runs.append({"quality": quality, "counts": counts, "records": records})
  if FLAGS.output:
    single = runs[0] if len(runs) == 1 else {}
    with open(FLAGS.output, "w", encoding="utf-8") as f:
      json.dump({"date": time.strftime("%Y-%m-%d"), "model_dir": FLAGS.model_dir,
                 "write": FLAGS.write, "read": FLAGS.read,
                 "as_version_1": FLAGS.as_version_1,
                 **({"counts": single["counts"], "records": single["records"]} if single
                    else {"qualities": runs})}, f, indent=2)


if __name__ == "__main__":
  cli.run(main)
