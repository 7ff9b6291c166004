#!/usr/bin/env python3
"""Rate control of a variable-rate model on Kodak: does --max_bytes / --target_bpp /
--target_psnr meet its target, how close, and in how many seconds per image
(tfcae.serving.ratecontrol through Codec.compress_to, what bin/compress runs).

  .venv/bin/python bench/rate_control.py --model=zoo:meanscale-vbr \
      --images='../shared/data/kodak/*.png' --output=docs/benchmark/rate_control.json

For each image and target it records the file's size and quality, the codings it took and
the seconds. A size target is met when the file is at most the budget, and close when it
is within --tolerance below; a PSNR target is met when the decoded image reaches it, and
minimal when --psnr_check lower in quality does not.
"""
import json
import os
import time

from tfcae import cli  # first: it quiets TensorFlow's start-up
from absl import flags

from tfcae.io.fileio import expand_images, load_rgb_image
from tfcae.objectives import metrics
from tfcae.serving.codec import Codec

flags.DEFINE_string("model", "zoo:meanscale-vbr", "A variable-rate model (directory or zoo).")
flags.DEFINE_string("images", "../shared/data/kodak/*.png", "Images.")
flags.DEFINE_list("max_bytes", ["10000", "30000", "60000"], "Byte budgets.")
flags.DEFINE_list("target_bpp", ["0.25", "0.5", "1.0"], "Rates (bits per pixel).")
flags.DEFINE_list("target_psnr", ["30", "33"], "PSNR targets (dB).")
flags.DEFINE_float("tolerance", 0.03, "How far below a size target counts as close.")
flags.DEFINE_float("psnr_check", 0.01, "Quality step below a PSNR result that must miss.")
flags.DEFINE_string("output", None, "JSON of the records and the summary.")
FLAGS = flags.FLAGS


def main():
  codec = Codec(cli.resolve_model(FLAGS.model))
  images = expand_images(FLAGS.images)
  targets = ([("max_bytes", int(b)) for b in FLAGS.max_bytes] +
             [("target_bpp", float(b)) for b in FLAGS.target_bpp] +
             [("target_psnr", float(p)) for p in FLAGS.target_psnr])
  records = []
  codec.compress(load_rgb_image(images[0]), quality=1.)  # first call: graph optimisation
  for path in images:
    image = load_rgb_image(path)
    pixels = image.shape[0] * image.shape[1]
    for name, value in targets:
      start = time.perf_counter()
      try:
        result = codec.compress_to(image, **{name: value})
      except Exception as e:  # a target this image cannot meet: recorded, not fatal
        records.append({"image": os.path.basename(path), "target": name, "value": value,
                        "met": False, "error": str(e)})
        print(f"{os.path.basename(path)} {name}={value:g}: {e}", flush=True)
        continue
      seconds = time.perf_counter() - start
      record = {"image": os.path.basename(path), "target": name, "value": value,
                "quality": result.quality, "bytes": len(result.data),
                "bpp": 8. * len(result.data) / pixels, "codings": result.codings,
                "estimates": result.estimates, "seconds": seconds}
      if name == "target_psnr":
        record["psnr"] = result.psnr
        record["met"] = result.psnr >= value
        lower = result.quality - FLAGS.psnr_check
        record["minimal"] = result.quality == 1. or metrics.psnr(
            image, codec.decompress(codec.compress(image, quality=lower))) < value
      else:
        budget = value if name == "max_bytes" else int(value * pixels / 8.)
        record["met"] = len(result.data) <= budget
        record["below"] = (budget - len(result.data)) / budget
        record["close"] = record["met"] and record["below"] <= FLAGS.tolerance
      records.append(record)
      print(f"{record['image']} {name}={value:g}: q {result.quality:.4f}, "
            f"{len(result.data)} B, {record['seconds']:.2f} s", flush=True)
  summary = []
  for name, value in targets:
    rows = [r for r in records if r["target"] == name and r["value"] == value]
    done = [r for r in rows if "error" not in r]
    row = {"target": name, "value": value, "images": len(rows), "unmet": len(rows) - len(done),
           "met": sum(r["met"] for r in done),
           "seconds_per_image": sum(r["seconds"] for r in done) / max(len(done), 1),
           "codings_per_image": sum(r["codings"] for r in done) / max(len(done), 1)}
    if name == "target_psnr":
      row["minimal"] = sum(r["minimal"] for r in done)
    else:
      row["close"] = sum(r["close"] for r in done)
      row["max_below"] = max((r["below"] for r in done), default=None)
    summary.append(row)
    print(json.dumps(row), flush=True)
  if FLAGS.output:
    with open(FLAGS.output, "w", encoding="utf-8") as f:
      json.dump({"date": time.strftime("%Y-%m-%d"), "model": FLAGS.model,
                 "fingerprint": codec.fingerprint.hex(), "summary": summary,
                 "records": records}, f, indent=2)


if __name__ == "__main__":
  cli.run(main)
