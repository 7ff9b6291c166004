#!/usr/bin/env python3
"""A minimal client of an exported tfcae SavedModel: needs only TensorFlow, TFC, Pillow.

  python examples/serving_client.py runs/quickstart data/sample/eval/kodim23.png out.png

Compresses the image with the `compress` signature, writes the .tfcae file next to the
output, decodes it with `decompress` and prints the rate and the entropy model's estimate.
"""
import sys

import numpy as np
import tensorflow as tf
import tensorflow_compression  # noqa: F401  (registers the range-coding ops)
from PIL import Image


def main(model_dir, input_path, output_path):
  model = tf.saved_model.load(model_dir)
  image = np.asarray(Image.open(input_path).convert("RGB"))
  data = model.signatures["compress"](image=tf.constant(image))["bitstream"].numpy()
  with open(output_path + ".tfcae", "wb") as f:
    f.write(data)  # byte-for-byte what bin/compress writes
  decoded = model.signatures["decompress"](bitstream=tf.constant(data))["image"].numpy()
  Image.fromarray(decoded).save(output_path)
  bits = float(model.signatures["estimate_bits"](image=tf.constant(image))["bits"])
  pixels = image.shape[0] * image.shape[1]
  print(f"{len(data)} bytes, {8 * len(data) / pixels:.4f} bpp "
        f"(estimate {bits / pixels:.4f} bpp) -> {output_path}")


if __name__ == "__main__":
  if len(sys.argv) != 4:
    sys.exit(__doc__)
  main(*sys.argv[1:])
