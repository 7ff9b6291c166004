"""Rate-distortion evaluation of exported models on image files (CompressAI JSON layout).

For every image: compress with the exported model, decompress the bytes, and measure
  bpp            8 · (file bytes) / pixels — the real rate, header included
  estimated_bpp  the entropy model's estimate for the same rounded latents
  psnr-rgb, ms-ssim-rgb on the 8-bit RGB reconstruction (tfcae.objectives.metrics)
  encoding_time, decoding_time  seconds per call (tfcae.deploy.timing), after one warm-up call
"""
import os

from tfcae.deploy.codec import Codec
from tfcae.deploy.timing import timed
from tfcae.evaluation.results import make_results
from tfcae.io import bitstream
from tfcae.io.fileio import load_rgb_image
from tfcae.objectives import metrics

__all__ = ["evaluate_codec", "evaluate_model_dirs"]


def evaluate_codec(codec, image_paths, progress=True):
  """Per-image records for one exported model."""
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


def evaluate_model_dirs(model_dirs, image_paths, name="tfcae", description="", progress=True):
  """Evaluates each model directory (one operating point each) -> results dict."""
  if not image_paths:
    raise ValueError("no images to evaluate")
  points = []
  for model_dir in model_dirs:
    points.append((model_dir, evaluate_codec(Codec(model_dir), image_paths, progress)))
  description = description or (f"tfcae models {', '.join(model_dirs)} on "
                                f"{len(image_paths)} images")
  return make_results(name, description, points)
