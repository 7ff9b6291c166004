"""Rate-distortion evaluation of exported models on image files (CompressAI JSON layout).

For every image: compress with the exported model, decompress the bytes, and measure
  bpp            8 · (file bytes) / pixels — the real rate, header included
  estimated_bpp  the entropy model's estimate for the same rounded latents
  psnr-rgb, ms-ssim-rgb on the 8-bit RGB reconstruction (tfcae.objectives.metrics)
  encoding_time, decoding_time  seconds per call (tfcae.deploy.timing), after one warm-up call
  encoder_joules  with `energy`: encoding_time × the CPU power codecarbon measured over the
                 evaluation (offline; RAPL counters or its load × TDP estimate), the unit
                 of the green-AI literature
"""
from __future__ import annotations

import os
from typing import Any, Sequence

from tfcae import TfcaeError
from tfcae.serving.codec import Codec
from tfcae.training.energy import EnergyMeter
from tfcae.deploy.timing import timed
from tfcae.evaluation.results import make_results
from tfcae.io import bitstream
from tfcae.io.fileio import load_rgb_image
from tfcae.objectives import metrics

__all__ = ["evaluate_codec", "operating_points", "evaluate_model_dirs"]


def evaluate_codec(codec: Codec, image_paths: Sequence[str], progress: bool = True,
                   **target) -> list[dict[str, Any]]:
  """Compresses and decompresses every image with one exported model and measures it.

  The first image is coded once before it is timed, so that the graph optimisation of
  the restored functions' first call is not counted.

  Args:
    codec: the exported model (tfcae.serving.codec.Codec).
    image_paths: image files to code, in order.
    progress: whether to show a tqdm progress bar named after the model directory.
    **target: for a variable-rate model, quality= (every image at that quality) or
      target_bpp= (each image at the highest quality within that rate, as papers compare
      at equal rate; encoding_time then includes the rate control's codings).

  Returns:
    One record per image: {"image": file name, "bpp", "estimated_bpp", "header_bpp",
    "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"} (see the module
    docstring), and "quality" for a variable-rate model, in the order of `image_paths`.
  """
  records = []
  iterator = image_paths
  if progress:
    from tqdm import tqdm
    iterator = tqdm(image_paths, desc=os.path.basename(os.path.normpath(codec.model_dir)),
                    unit="img")
  warmed = False
  quality = target.get("quality")
  for path in iterator:
    image = load_rgb_image(path)
    if not warmed:  # the first call of each restored function pays graph optimisation
      codec.decompress(codec.compress(image, quality=quality or codec.rate_points))
      warmed = True
    if target.get("target_bpp") is not None:
      chosen, encoding_time = timed(codec.compress_to, image, target_bpp=target["target_bpp"])
      data, quality = chosen.data, chosen.quality
    else:
      data, encoding_time = timed(codec.compress, image, **target)
    decoded, decoding_time = timed(codec.decompress, data)
    height, width = image.shape[:2]
    num_pixels = height * width
    rate = {} if quality is None else {"quality": quality}
    records.append({
        "image": os.path.basename(path),
        "bpp": metrics.bpp(len(data), height, width),
        "estimated_bpp": codec.estimate_bits(image, **rate) / num_pixels,
        "header_bpp": 8. * bitstream.header_size(codec.num_strings, data[4]) / num_pixels,  # [4]: version
        "psnr-rgb": metrics.psnr(image, decoded),
        "ms-ssim-rgb": metrics.ms_ssim(image, decoded),
        "encoding_time": encoding_time,
        "decoding_time": decoding_time,
        **rate,
    })
  return records


def operating_points(codec: Codec, qualities: Sequence[float] | None = None,
                     target_bpps: Sequence[float] | None = None) -> list[dict[str, float]]:
  """The coding settings that make a model's points: {} for a model of one rate; for a
  variable-rate model one {"quality": q} per quality (default: its integer qualities
  1..K) or one {"target_bpp": b} per rate.

  Raises:
    TfcaeError: qualities or rates for a model of one rate, or both.
  """
  if qualities and target_bpps:
    raise TfcaeError("give qualities or target rates, not both")
  if not codec.rate_points:
    if qualities or target_bpps:
      raise TfcaeError(f"{codec.model_dir} codes at one rate: qualities and target rates "
                       "go with a variable-rate model")
    return [{}]
  if target_bpps:
    return [{"target_bpp": float(b)} for b in target_bpps]
  return [{"quality": float(q)} for q in (qualities or range(1, codec.rate_points + 1))]


def evaluate_model_dirs(model_dirs: Sequence[str], image_paths: Sequence[str],
                        name: str = "tfcae", description: str = "",
                        progress: bool = True, qualities: Sequence[float] | None = None,
                        target_bpps: Sequence[float] | None = None,
                        energy: bool = False, tile: int | None = None) -> dict[str, Any]:
  """Evaluates each exported model directory as one operating point of a curve (a
  variable-rate model as one point per quality or target rate: operating_points).

  Args:
    model_dirs: exported model directories, one operating point each.
    image_paths: the image files every model is evaluated on.
    name: the curve's name in the results.
    description: free text; default: the model directories and the number of images.
    progress: whether to show a progress bar per model.
    qualities, target_bpps: a variable-rate model's points (operating_points).
    energy: measure the CPU power (tfcae.training.energy.EnergyMeter) and give each image
      its encoder_joules; the results' "energy" holds what was measured.
    tile: the core tile the transforms run in (Codec; None: the export's default).

  Returns:
    A results dict in CompressAI's layout (tfcae.evaluation.results.make_results), one
    operating point per model directory (and quality or rate), labelled with it.

  Raises:
    ValueError: `image_paths` is empty.
    TfcaeError: qualities or rates for a model of one rate.
  """
  if not image_paths:
    raise ValueError("no images to evaluate")
  points = []
  with EnergyMeter(enabled=energy) as meter:
    for model_dir in model_dirs:
      codec = Codec(model_dir, tile)
      for setting in operating_points(codec, qualities, target_bpps):
        label = model_dir + "".join(
            f"@q{v:g}" if k == "quality" else f"@{v:g}bpp" for k, v in setting.items())
        points.append((label, evaluate_codec(codec, image_paths, progress, **setting)))
  measured = meter.summary()
  if measured.get("measured"):
    for _, records in points:
      for record in records:
        record["encoder_joules"] = record["encoding_time"] * measured["cpu_power_w"]
  description = description or (f"tfcae models {', '.join(model_dirs)} on "
                                f"{len(image_paths)} images")
  results = make_results(name, description, points)
  if energy:
    results["energy"] = measured
  return results
