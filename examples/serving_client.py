#!/usr/bin/env python3
"""A minimal client of an exported tfcae SavedModel: needs only TensorFlow, TFC, Pillow.

  python examples/serving_client.py runs/quickstart data/sample/eval/kodim23.png out.png
  python examples/serving_client.py runs/zoo/meanscale-vbr photo.png out.png 2.7  # a quality

Compresses the image with the `compress` signature, writes the .tfcae file next to the
output, decodes it with `decompress` and prints the rate and the entropy model's estimate.
A variable-rate model's `compress` and `estimate_bits` also take the quality (a float in
[1, K]); its `decompress` reads the quality from the file.
"""
import sys

import numpy as np
import tensorflow as tf
import tensorflow_compression  # noqa: F401  (registers the range-coding ops)
from PIL import Image


def main(model_dir, input_path, output_path, quality=None):
  model = tf.saved_model.load(model_dir)
  image = np.asarray(Image.open(input_path).convert("RGB"))
  inputs = {"image": tf.constant(image)}
  if "quality" in model.signatures["compress"].structured_input_signature[1]:
    inputs["quality"] = tf.constant(float(quality or 1), tf.float32)  # variable rate
  data = model.signatures["compress"](**inputs)["bitstream"].numpy()
  with open(output_path + ".tfcae", "wb") as f:
    f.write(data)  # byte-for-byte what bin/compress writes
  decoded = model.signatures["decompress"](bitstream=tf.constant(data))["image"].numpy()
  Image.fromarray(decoded).save(output_path)
  bits = float(model.signatures["estimate_bits"](**inputs)["bits"])
  pixels = image.shape[0] * image.shape[1]
  print(f"{len(data)} bytes, {8 * len(data) / pixels:.4f} bpp "
        f"(estimate {bits / pixels:.4f} bpp) -> {output_path}")


if __name__ == "__main__":
  if len(sys.argv) not in (4, 5):
    sys.exit(__doc__)
  main(*sys.argv[1:])
