"""Peak memory and time of coding large images, tiled and whole (tfcae.models.tiling).

  taskset -c 0 .venv/bin/python bench/large_images.py --models=zoo:factorized/5 \\
      --sizes=1,6,24,100 --output=docs/benchmark/large_images_factorized.json   # ≈ 15 min

Each image is a mosaic of photographs (the Kodak images, landscape, repeated to fill a 3:2
frame of the given megapixels: real image statistics at any size), written once as PNG
under --out. Each arm is one `bin/compress` and one `bin/decompress` process, run one at a
time; peak RSS is the process's maximum resident set (os.wait4), time the seconds the tool
reports for coding (reading and writing the files excluded) and the process's wall time.
Arms: the coder's default (core tiles of tiling.DEFAULT_TILE above one window's pixels)
and, up to --whole_up_to megapixels, the whole image at once (--tile=0). Where both ran,
the files are compared (same bytes?) and the two decodings (largest pixel difference).
--max_pixels=0 lets the tools take images over Pillow's decompression-bomb limit. Pinned
to one core (taskset), a run times one-core coding while other work has the other core.
"""
import glob
import json
import os
import re
import subprocess
import sys
import time

from tfcae import cli  # first: it quiets TensorFlow's start-up
from absl import flags
import numpy as np

from tfcae.io.fileio import atomic_write_json, load_rgb_image, save_png

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_list("models", ["zoo:factorized/5"], "Models (zoo references or exported "
                  "model directories).")
flags.DEFINE_list("sizes", ["1", "6", "24", "100"], "Image sizes in megapixels.")
flags.DEFINE_string("images", "../shared/data/kodak/*.png", "The photographs of the mosaic "
                    "(default: Kodak; data/sample/eval/*.png where that is missing).")
flags.DEFINE_list("tiles", ["default", "0"], "Coders: 'default' (the tools' own tiling), "
                  "0 (the whole image at once, up to --whole_up_to), or a tile in pixels.")
flags.DEFINE_float("whole_up_to", 24., "Code the whole image at once up to this size "
                   "(megapixels) only: above it that needs more memory than this machine has.")
flags.DEFINE_string("out", "runs/large_images", "Scratch folder: images and files.")
flags.DEFINE_string("output", "docs/benchmark/large_images.json", "Results JSON.")
FLAGS = flags.FLAGS


def mosaic(paths, megapixels):
  """uint8 [H, W, 3], W:H = 3:2, H·W ≈ megapixels·10⁶, tiled with the photographs."""
  width = int(round((megapixels * 1e6 * 1.5) ** .5))
  height = int(round(width / 1.5))
  tiles = []
  for path in paths:
    image = load_rgb_image(path)
    tiles.append(image if image.shape[1] >= image.shape[0] else np.rot90(image))
  th, tw = min(t.shape[0] for t in tiles), min(t.shape[1] for t in tiles)
  out = np.empty((height, width, 3), np.uint8)
  k = 0
  for top in range(0, height, th):
    for left in range(0, width, tw):
      tile = tiles[k % len(tiles)]
      k += 1
      h, w = min(th, height - top), min(tw, width - left)
      out[top:top + h, left:left + w] = tile[:h, :w]
  return out


def tool(name, *flags_):
  """Runs bin/<name>; returns {"seconds" (reported), "wall", "peak_rss_mb"}."""
  args = [os.path.join(REPO, "bin", name), *flags_]
  start = time.perf_counter()
  process = subprocess.Popen([sys.executable] + args, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  _, _, usage = os.wait4(process.pid, 0)
  wall = time.perf_counter() - start
  out, err = process.stdout.read().decode(), process.stderr.read().decode()
  if usage is None or not out:
    raise RuntimeError(f"bin/{name} {' '.join(flags_)} failed: {err.strip()[-500:]}")
  seconds = float(re.findall(r"([0-9.]+) s[,)]", out)[-1])
  return {"seconds": seconds, "wall": round(wall, 2),
          "peak_rss_mb": round(usage.ru_maxrss / 1024., 1)}


def main():
  paths = sorted(glob.glob(FLAGS.images)) or sorted(
      glob.glob(os.path.join(REPO, "data", "sample", "eval", "*.png")))
  os.makedirs(FLAGS.out, exist_ok=True)
  rows = []
  for size in [float(s) for s in FLAGS.sizes]:
    png = os.path.join(FLAGS.out, f"mosaic_{size:g}mp.png")
    if not os.path.exists(png):
      save_png(png, mosaic(paths, size))
    for model in FLAGS.models:
      arms = [("default", []) if t == "default" else
              ("whole", ["--tile=0"]) if int(t) == 0 else (f"tile {int(t)}", [f"--tile={t}"])
              for t in FLAGS.tiles if t == "default" or int(t) or size <= FLAGS.whole_up_to]
      coded = {}
      for arm, extra in arms:
        stem = os.path.join(FLAGS.out, f"{model.rstrip('/').replace('/', '_').replace(':', '_')}"
                                       f"_{size:g}mp_{arm.replace(' ', '')}")
        row = {"model": model, "megapixels": size, "arm": arm}
        row["compress"] = tool("compress", f"--model={model}", f"--input={png}",
                               f"--output={stem}.tfcae", "--max_pixels=0", *extra)
        row["decompress"] = tool("decompress", f"--model={model}", f"--input={stem}.tfcae",
                                 f"--output={stem}.png", "--max_pixels=0", *extra)
        row["bytes"] = os.path.getsize(stem + ".tfcae")
        coded[arm] = stem
        rows.append(row)
        print(json.dumps(row), flush=True)
      if "whole" in coded:
        whole = load_rgb_image(coded["whole"] + ".png", max_pixels=0).astype(np.int16)
        with open(coded["whole"] + ".tfcae", "rb") as f:
          whole_file = f.read()
        for row in rows[-len(coded):]:
          if row["arm"] == "whole":
            continue
          with open(coded[row["arm"]] + ".tfcae", "rb") as f:
            row["same_file_as_whole"] = f.read() == whole_file
          row["max_pixel_difference_to_whole"] = int(np.abs(
              load_rgb_image(coded[row["arm"]] + ".png", max_pixels=0) - whole).max())
          print(f"  {model} {size:g} MP, {row['arm']}: the whole image's file: "
                f"{row['same_file_as_whole']}, decoded pixels within "
                f"±{row['max_pixel_difference_to_whole']}", flush=True)
  atomic_write_json(FLAGS.output, {"command": " ".join(sys.argv), "date": time.strftime(
      "%Y-%m-%d"), "rows": rows})
  print("| model | MP | coder | compress s | compress peak MB | decompress s | "
        "decompress peak MB | bytes | = whole |")
  print("|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    c, d = r["compress"], r["decompress"]
    print(f"| {r['model']} | {r['megapixels']:g} | {r['arm']} | {c['seconds']:.1f} | "
          f"{c['peak_rss_mb']:.0f} | {d['seconds']:.1f} | {d['peak_rss_mb']:.0f} | "
          f"{r['bytes']} | {_same(r)} |")


def _same(row):
  if "same_file_as_whole" not in row:
    return "—"
  return ("same file" if row["same_file_as_whole"] else "other file") + (
      f", ±{row['max_pixel_difference_to_whole']}")


if __name__ == "__main__":
  cli.run(main)
