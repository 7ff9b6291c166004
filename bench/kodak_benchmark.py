#!/usr/bin/env python3
"""Kodak rate-distortion benchmark: classical codecs (and tfcae models) side by side.

  make benchmark            # = .venv/bin/python bench/kodak_benchmark.py
  .venv/bin/python bench/kodak_benchmark.py --codecs=jpeg,webp --model_dirs=runs/a,runs/b

Writes into --out_dir: <codec>.json per codec (and tfcae-models.json), rd_psnr.png,
rd_msssim.png, bdrate.json (every curve vs JPEG, PSNR and MS-SSIM-dB) and
kodak_table.md (per codec and quality: bpp, PSNR, MS-SSIM; then the BD table).
"""
import os
import time

from absl import flags

from tfcae import TfcaeError, cli

FLAGS = flags.FLAGS
flags.DEFINE_string("images", "../shared/data/kodak/*.png", "Image globs (comma-separated).")
flags.DEFINE_string("model_dirs", "", "Comma-separated tfcae model directories to include.")
flags.DEFINE_string("codecs", "jpeg,webp,jpeg2000,avif,heic", "Classical codecs to run.")
flags.DEFINE_string("out_dir", "docs/benchmark", "Where the JSON, plots and table go.")
flags.DEFINE_string("anchor", "jpeg", "Anchor curve for BD-rates.")
# Default 1: measured on the 2-core dev machine (4 Kodak images, all codecs, while
# training ran), 2 processes took 62.8 s against 59.7 s serially; x265 and
# OpenJPEG already use both cores, so a second process only adds contention.
flags.DEFINE_integer("jobs", 1, "Codecs swept in parallel processes (1: in this process).")
flags.DEFINE_bool("progress", True, "Progress bars on stderr.")
flags.DEFINE_bool("reuse", False, "Reuse <out_dir>/<codec>.json where it exists instead of "
                  "sweeping the codec again (e.g. when only adding tfcae models).")
flags.DEFINE_string("model_name", "tfcae", "Name (legend, JSON file) of the --model_dirs curve.")
flags.DEFINE_list("extra_results", [], "Further results JSON files (e.g. earlier tfcae curves) "
                  "to include in the plots and tables.")


def _sweep_to_file(codec, paths, out_path, progress):
  # Runs in a worker process; returns the path so the parent reads the JSON.
  from tfcae.evaluation import classical
  from tfcae.evaluation.results import write_results
  start = time.perf_counter()
  results = classical.sweep(codec, paths, None, progress=progress)
  write_results(out_path, results)
  return codec, out_path, time.perf_counter() - start


def _run_codecs(codecs, paths, out_dir):
  jobs = max(1, min(FLAGS.jobs, len(codecs)))
  outputs = {c: os.path.join(out_dir, f"{c}.json") for c in codecs}
  if FLAGS.reuse:
    kept = [c for c in codecs if os.path.exists(outputs[c])]
    if kept:
      print(f"reusing {', '.join(kept)}", flush=True)
    codecs = [c for c in codecs if c not in kept]
  # Slowest codecs (AV1/HEVC encoders) first so the two workers finish together.
  order = sorted(codecs, key=lambda c: c not in ("avif", "heic"))
  if jobs == 1:
    for c in order:
      _, _, seconds = _sweep_to_file(c, paths, outputs[c], FLAGS.progress)
      print(f"{c}: {seconds:.1f} s", flush=True)
    return outputs
  import concurrent.futures
  import multiprocessing
  ctx = multiprocessing.get_context("spawn")  # no forked TF/BLAS state
  with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
    futures = [pool.submit(_sweep_to_file, c, paths, outputs[c], False) for c in order]
    for future in concurrent.futures.as_completed(futures):
      c, _, seconds = future.result()
      print(f"{c}: {seconds:.1f} s", flush=True)
  return outputs


def _markdown(results_list, table):
  from tfcae.evaluation import bdrate
  from tfcae.objectives.metrics import ms_ssim_db
  lines = ["| codec | setting | bpp | PSNR [dB] | MS-SSIM | MS-SSIM [dB] |",
           "|---|---|---|---|---|---|"]
  for res in results_list:
    r = res["results"]
    for point, b, p, m in zip(res["points"], r["bpp"], r["psnr-rgb"], r["ms-ssim-rgb"]):
      lines.append(f"| {res['name']} | {point['label']} | {b:.4f} | {p:.3f} | {m:.5f} | "
                   f"{ms_ssim_db(m):.3f} |")
  _, bd_md = bdrate.format_table(table)
  return ("\n".join(lines) + "\n\nBD vs " + table["anchor"] + " (" + table["method"] +
          "; negative BD-rate = fewer bits at equal quality)\n\n" + bd_md + "\n")


def main():
  from tfcae.evaluation import bdrate, classical, plotting
  from tfcae.evaluation.results import read_results, write_results
  from tfcae.io.fileio import atomic_write_bytes, atomic_write_json, expand_images
  paths = expand_images(FLAGS.images)
  if not paths:
    raise TfcaeError(f"no images match {FLAGS.images!r}")
  codecs = [c.strip() for c in FLAGS.codecs.split(",") if c.strip()]
  for c in codecs:
    if c not in classical.CODECS:
      raise TfcaeError(f"unknown codec {c!r}; choose from {', '.join(classical.CODECS)}")
  out_dir = FLAGS.out_dir
  os.makedirs(out_dir, exist_ok=True)
  start = time.perf_counter()
  print(f"{len(paths)} images, codecs {', '.join(codecs)}, {FLAGS.jobs} job(s)", flush=True)
  outputs = _run_codecs(codecs, paths, out_dir)
  results_list = [read_results(outputs[c]) for c in codecs]

  model_dirs = [d.strip() for d in FLAGS.model_dirs.split(",") if d.strip()]
  if model_dirs:
    try:
      from tfcae.evaluation.rd import evaluate_model_dirs
    except ImportError as e:
      print(f"skipping --model_dirs: tfcae.evaluation.rd is not available ({e})", flush=True)
    else:
      models = evaluate_model_dirs(model_dirs, paths, name=FLAGS.model_name)
      write_results(os.path.join(out_dir, f"{models['name']}.json"), models)
      results_list.append(models)

  results_list.extend(read_results(path) for path in FLAGS.extra_results)
  plotting.plot_rd(results_list, "psnr", os.path.join(out_dir, "rd_psnr.png"),
                   title=f"Kodak ({len(paths)} images), PSNR")
  plotting.plot_rd(results_list, "ms-ssim", os.path.join(out_dir, "rd_msssim.png"),
                   title=f"Kodak ({len(paths)} images), MS-SSIM")
  names = [r["name"] for r in results_list]
  if FLAGS.anchor in names:
    table = bdrate.bd_table(results_list, FLAGS.anchor, "cubic")
    table["pchip"] = bdrate.bd_table(results_list, FLAGS.anchor, "pchip")["rows"]
    atomic_write_json(os.path.join(out_dir, "bdrate.json"), table)
    text, _ = bdrate.format_table(table)
    print(text)
  else:
    table = {"anchor": FLAGS.anchor, "method": "cubic", "rows": []}
    print(f"no BD-rates: anchor {FLAGS.anchor!r} not among {', '.join(names)}")
  atomic_write_bytes(os.path.join(out_dir, "kodak_table.md"),
                     _markdown(results_list, table).encode("utf-8"))
  print(f"wall time {time.perf_counter() - start:.1f} s; outputs in {out_dir}", flush=True)


if __name__ == "__main__":
  cli.run(main)
