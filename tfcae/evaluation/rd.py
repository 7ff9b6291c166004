"""Rate-distortion evaluation of exported models on image files (CompressAI JSON layout).

For every image: compress with the exported model, decompress the bytes, and measure
  bpp            8 · (file bytes) / pixels — the real rate, header included
  estimated_bpp  the entropy model's estimate for the same rounded latents
  psnr-rgb, ms-ssim-rgb on the 8-bit RGB reconstruction (tfcae.objectives.metrics)
  encoding_time, decoding_time  seconds per call (tfcae.deploy.timing), after one warm-up call
"""
from __future__ import annotations

import os
from typing import Any, Sequence

from tfcae.serving.codec import Codec
from tfcae.deploy.timing import timed
from tfcae.evaluation.results import make_results
from tfcae.io import bitstream
from tfcae.io.fileio import load_rgb_image
from tfcae.objectives import metrics

__all__ = ["evaluate_codec", "evaluate_model_dirs"]


def evaluate_codec(codec: Codec, image_paths: Sequence[str],
                   progress: bool = True) -> list[dict[str, Any]]:
  """Compresses and decompresses every image with one exported model and measures it.

  The first image is coded once before it is timed, so that the graph optimisation of
  the restored functions' first call is not counted.

  Args:
    codec: the exported model (tfcae.serving.codec.Codec).
    image_paths: image files to code, in order.
    progress: whether to show a tqdm progress bar named after the model directory.

  Returns:
    One record per image: {"image": file name, "bpp", "estimated_bpp", "header_bpp",
    "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"} (see the module
    docstring), in the order of `image_paths`.
  """
  records = []
  iterator = image_paths
  if progress:
    from tqdm import tqdm
    iterator = tqdm(image_paths, desc=os.path.basename(os.path.normpath(codec.model_dir)),
                    unit="img")
  warmed = False
  for path in iterator:
    image = load_rgb_image(path)
    if not warmed:  # the first call of each restored function pays graph optimisation
      codec.decompress(codec.compress(image))
      warmed = True
    data, encoding_time = timed(codec.compress, image)
    decoded, decoding_time = timed(codec.decompress, data)
    height, width = image.shape[:2]
    num_pixels = height * width
    records.append({
        "image": os.path.basename(path),
        "bpp": metrics.bpp(len(data), height, width),
        "estimated_bpp": codec.estimate_bits(image) / num_pixels,
        "header_bpp": 8. * bitstream.header_size(codec.num_strings, data[4]) / num_pixels,  # [4]: version
        "psnr-rgb": metrics.psnr(image, decoded),
        "ms-ssim-rgb": metrics.ms_ssim(image, decoded),
        "encoding_time": encoding_time,
        "decoding_time": decoding_time,
    })
  return records


def evaluate_model_dirs(model_dirs: Sequence[str], image_paths: Sequence[str],
                        name: str = "tfcae", description: str = "",
                        progress: bool = True) -> dict[str, Any]:
  """Evaluates each exported model directory as one operating point of a curve.

  Args:
    model_dirs: exported model directories, one operating point each.
    image_paths: the image files every model is evaluated on.
    name: the curve's name in the results.
    description: free text; default: the model directories and the number of images.
    progress: whether to show a progress bar per model.

  Returns:
    A results dict in CompressAI's layout (tfcae.evaluation.results.make_results), one
    operating point per model directory, labelled with it.

  Raises:
    ValueError: `image_paths` is empty.
  """
  if not image_paths:
    raise ValueError("no images to evaluate")
  points = []
  for model_dir in model_dirs:
    points.append((model_dir, evaluate_codec(Codec(model_dir), image_paths, progress)))
  description = description or (f"tfcae models {', '.join(model_dirs)} on "
                                f"{len(image_paths)} images")
  return make_results(name, description, points)
