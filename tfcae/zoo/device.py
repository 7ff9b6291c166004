"""Device encoders in zoo folders: the analysis transform and the rounding as float32 and
int8 TFLite flatbuffers beside the SavedModel, for a device that encodes and a server that
decodes (tfcae.deploy.hostcoding).

* `encoder.tflite` and `encoder_int8.tflite` (tfcae.deploy.tflite.export_tflite, the
  channel-reduced encoder when the model has dead filters; int8 calibrated on the
  repository's sample photographs, its GDNs in int8 but for the division), each with its
  `.json`, what `tfcae export` writes with the same flags (the same computation; tensor
  names can differ between processes, and quantization-aware fine-tuning is not
  bit-reproducible);
* the card's "device_encoders" block: per file its bytes and its Kodak bpp / PSNR through
  host coding (what `bin/compress --tflite` then `bin/decompress` give);
* the card's "device_latency" block: each flatbuffer's time and joules on kodim23 in every
  installed TFLite runtime at 1 and 2 threads, on the CPU it names (tfcae.deploy.tflite.
  measure_latency: a latency holds for the machine it was measured on).

The sparse families ship them with every model (tfcae.zoo.sparse); `tfcae zoo
--device_encoders --ladder=F --qualities=…` adds them to models already shipped, and
`--device_latency` measures them again on this machine.
"""
import os
from typing import Sequence

import numpy as np

from tfcae import TfcaeError
from tfcae.io import zoo_index
from tfcae.io.fileio import atomic_write_json
from tfcae.zoo import ladder as ladder_lib

__all__ = ["TFLITE_FILES", "CALIBRATION_IMAGES", "LATENCY_IMAGE", "write_device_encoders",
           "latency_block", "ship", "measure"]

# The device encoders a zoo model ships: file name -> bin/export --quantize.
TFLITE_FILES = {"encoder.tflite": "none", "encoder_int8.tflite": "int8"}
# Photographs the int8 encoder's activation ranges are calibrated on (shipped, not Kodak).
CALIBRATION_IMAGES = "data/sample/train/*.jpg"
# The image the cards' latencies are measured on (shipped; Kodak's kodim23, 768×512).
LATENCY_IMAGE = "data/sample/eval/kodim23.png"


def write_device_encoders(folder: str, name: str, images: Sequence[str], qat_steps: int = 0,
                          qat_images: str = "") -> dict:
  """Writes a model folder's device encoders and measures them.

  Args:
    folder: an exported model's folder (a zoo folder, or its staging copy).
    name: the model's zoo name (e.g. "factorized/5"), recorded instead of this machine's path.
    images: the images the Kodak figures are measured on.
    qat_steps: quantization-aware fine-tuning steps of the int8 encoder (its GDN pools run
      in int8, whose step a model with a wide pool range needs to learn: factorized/3 −1.7
      dB on Kodak calibrated only, −0.17 dB at equal bpp after 1,000 steps); 0: calibration
      only.
    qat_images: the fine-tuning's training images (a glob or folder), with `qat_steps`.

  Returns:
    The card's "device_encoders" block: file name -> quantize, bytes, reduced_encoder and
    "kodak" (images, mean bpp, mean PSNR through host coding).
  """
  from tfcae.deploy import hostcoding, tflite
  block = {}
  for filename, quantize in TFLITE_FILES.items():
    path = os.path.join(folder, filename)
    int8 = quantize == "int8"
    info = tflite.export_tflite(
        folder, path, quantize, os.path.join(ladder_lib.ROOT, CALIBRATION_IMAGES) if int8 else "",
        qat_steps=qat_steps if int8 else 0, qat_images=qat_images if int8 else "")
    info["model_dir"] = f"{zoo_index.PREFIX}{name}"  # not this machine's path
    info.pop("int8_reference", None)
    tflite.write_export_info(path, info)
    coded = hostcoding.host_coding_quality(path, folder, images)
    block[filename] = {"quantize": quantize, "bytes": info["bytes"],
                       "reduced_encoder": info["reduced_encoder"],
                       "kodak": {"images": len(coded),
                                 "bpp": float(np.mean([b for b, _ in coded])),
                                 "psnr-rgb": float(np.mean([p for _, p in coded]))}}
  return block


def latency_block(folder: str, threads: Sequence[int] = (1, 2), repeats: int = 15) -> dict:
  """The card's "device_latency" block: a model folder's flatbuffers on LATENCY_IMAGE.

  Args:
    folder: a model folder holding TFLITE_FILES.
    threads: interpreter thread counts.
    repeats: timed invokes per flatbuffer, runtime and thread count (median).

  Returns:
    {"image", "cpu", "repeats", "date", "power_source", "runs": [{"file", "runtime",
    "threads", "ms", "joules"}]}.
  """
  import datetime
  from tfcae.deploy import tflite
  from tfcae.deploy.hostcoding import pad_to_stride
  from tfcae.io.fileio import load_rgb_image
  from tfcae.serving import open_model
  image = load_rgb_image(os.path.join(ladder_lib.ROOT, LATENCY_IMAGE))
  padded = pad_to_stride(image, open_model(folder).stride)
  rows = tflite.measure_latency([(name, os.path.join(folder, name), padded)
                                 for name in TFLITE_FILES], threads, repeats)
  return {"image": f"{os.path.basename(LATENCY_IMAGE)} ({image.shape[1]}x{image.shape[0]})",
          "cpu": tflite.cpu_name(), "repeats": repeats,
          "date": datetime.date.today().isoformat(),
          "power_source": rows[0]["power_source"] if rows else None,
          "runs": [{"file": r["key"], "runtime": r["runtime"], "threads": r["threads"],
                    "ms": r["ms"], "joules": r["joules"]} for r in rows]}


def _write_card(folder: str, card: dict) -> dict:
  card = dict(card, bytes=ladder_lib.folder_bytes(folder))
  card.pop("path", None)
  atomic_write_json(os.path.join(folder, zoo_index.CARD), card)
  return zoo_index.card_at(folder)


def _shipped_folder(family: str, quality: int) -> str:
  if zoo_index.is_variable_rate(family):
    raise TfcaeError(f"{family}: device encoders of variable-rate models are not supported")
  return zoo_index.path(family, quality)


def measure(family: str, quality: int) -> dict:
  """Measures a shipped model's device encoders again on this machine (its card's
  "device_latency" block); returns the updated card. A one-line TfcaeError when the model
  ships no device encoders."""
  folder = _shipped_folder(family, quality)
  card = zoo_index.card_at(folder)
  if not card.get("device_encoders"):
    raise TfcaeError(f"{card['name']} ships no device encoders (tfcae zoo --device_encoders)")
  return _write_card(folder, dict(card, device_latency=latency_block(folder)))


def ship(family: str, quality: int, images: Sequence[str], qat_steps: int = 0,
         qat_images: str = "") -> dict:
  """Adds (or rewrites) the device encoders of a shipped zoo model and its card's block.

  Args:
    family: a zoo family with one model per quality (not a variable-rate one: its symbols
      depend on the quality).
    quality: the model's quality.
    images: the images the card's Kodak figures are measured on.
    qat_steps, qat_images: as write_device_encoders.

  Returns:
    The updated card (its "device_encoders" and "device_latency" blocks).

  Raises:
    TfcaeError: no such zoo model, or a variable-rate family.
  """
  folder = _shipped_folder(family, quality)
  card = zoo_index.card_at(folder)
  card["device_encoders"] = write_device_encoders(folder, card["name"], images, qat_steps,
                                                  qat_images)
  card["device_latency"] = latency_block(folder)
  return _write_card(folder, card)
