"""Rate-distortion results in CompressAI's JSON layout, shared by every evaluator.

Layout (one file per codec or per family of models)::

  {
    "name": "jpeg" | "tfcae-factorized" | ...,
    "description": "...",
    "results": {                     # one entry per operating point (quality / model)
      "bpp": [...], "psnr-rgb": [...], "ms-ssim-rgb": [...],
      "encoding_time": [...], "decoding_time": [...],
      ...                            # optional extra keys, same length
    },
    "points": [                      # tfcae extension: per operating point, per image
      {"label": "q=75" | model_dir, "images": [{"image": "kodim01.png", "bpp": ..., ...}]}
    ]
  }

`results` holds means over the image set, exactly like CompressAI's `eval_model`
and `bench` output, so its plotting tools read our files and vice versa.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

import numpy as np

from tfcae.io.fileio import atomic_write_json

__all__ = ["CORE_METRICS", "make_results", "write_results", "read_results"]

# The metrics every evaluator reports, in CompressAI's spelling.
CORE_METRICS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time")


def make_results(name: str, description: str,
                 points: Iterable[tuple[Any, Sequence[dict[str, Any]]]]) -> dict[str, Any]:
  """Builds the results dict.

  Args:
    name: codec or model family name.
    description: free text (settings, data, date).
    points: list of (label, per_image_records); each record is a dict with at
      least `image` and the CORE_METRICS keys; extra numeric keys are averaged too.

  Returns:
    {"name", "description", "results": {metric: [mean per operating point]},
    "points": [{"label": str(label), "images": records}]} (the module's layout).

  Raises:
    ValueError: an operating point has no records, or a CORE_METRICS key is missing.
  """
  results = {}
  out_points = []
  for label, records in points:
    if not records:
      raise ValueError(f"operating point {label!r} has no images")
    keys = [k for k in records[0] if k != "image"]
    for k in keys:
      results.setdefault(k, []).append(float(np.mean([r[k] for r in records])))
    out_points.append({"label": str(label), "images": records})
  for k in CORE_METRICS:
    if k not in results:
      raise ValueError(f"missing metric {k!r}")
  return {"name": name, "description": description, "results": results, "points": out_points}


def write_results(path: str, results: dict[str, Any]) -> None:
  """Writes a results dict as JSON, atomically (a reader never sees half a file).

  Args:
    path: the JSON file to write.
    results: a dict as built by make_results.
  """
  atomic_write_json(path, results)


def read_results(path: str) -> dict[str, Any]:
  """Reads a results file (ours or CompressAI's).

  Args:
    path: a JSON file in the module's layout.

  Returns:
    The parsed dict.

  Raises:
    ValueError: the file has no `results.bpp`.
  """
  with open(path, encoding="utf-8") as f:
    data = json.load(f)
  if "results" not in data or "bpp" not in data["results"]:
    raise ValueError(f"{path}: not a results file (no results.bpp)")
  return data
