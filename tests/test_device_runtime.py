"""The TFLite runtime a device encoder runs on: LiteRT (ai-edge-litert) when installed, the
interpreter bundled in TensorFlow otherwise, chosen by $TFCAE_TFLITE_RUNTIME or the tools'
--tflite_runtime. Both ways are tested: with LiteRT the shipped encoders give TensorFlow's
symbols (float32 equal but for rounding ties, int8 within ±1) and their files decode by
fingerprint; without it, "auto" falls back and "litert" is a one-line error."""
import os
import sys

import numpy as np
import pytest

from conftest import REPO, SAMPLE_EVAL
from tfcae import TfcaeError
from tfcae.deploy import tflite
from tfcae.deploy.hostcoding import HostCoder, pad_to_stride
from tfcae.io.fileio import load_rgb_image
from tfcae.serving import open_model
from tfcae.serving.codec import decompress_file

FOLDER = os.path.join(REPO, "zoo", "factorized-l11", "3")
ENCODERS = {"float32": os.path.join(FOLDER, "encoder.tflite"),
            "int8": os.path.join(FOLDER, "encoder_int8.tflite")}


@pytest.fixture(scope="module")
def padded():
  image = load_rgb_image(os.path.join(SAMPLE_EVAL, "kodim23.png"))[:192, :256]
  return pad_to_stride(image, 16)


@pytest.fixture
def without_litert(monkeypatch):
  """An environment where `import ai_edge_litert` fails."""
  monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
  monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
  monkeypatch.delenv(tflite.RUNTIME_VARIABLE, raising=False)


def test_without_litert_auto_falls_back_and_litert_is_refused(without_litert, padded):
  encoder = tflite.TFLiteEncoder(ENCODERS["float32"])
  assert encoder.runtime.startswith("TensorFlow Lite")
  assert encoder.symbols(padded).shape == (1, 12, 16, 128)
  with pytest.raises(TfcaeError) as error:
    tflite.TFLiteEncoder(ENCODERS["float32"], runtime="litert")
  assert "ai-edge-litert" in str(error.value) and "\n" not in str(error.value)


def test_the_runtime_is_chosen_by_the_environment(monkeypatch):
  monkeypatch.setenv(tflite.RUNTIME_VARIABLE, "tensorflow")
  assert tflite.TFLiteEncoder(ENCODERS["int8"]).runtime.startswith("TensorFlow Lite")
  monkeypatch.setenv(tflite.RUNTIME_VARIABLE, "tpu")
  with pytest.raises(TfcaeError, match="unknown TFLite runtime 'tpu'"):
    tflite.TFLiteEncoder(ENCODERS["int8"])


def test_litert_runs_the_shipped_encoders_as_tensorflow_does(monkeypatch, padded, tmp_path):
  pytest.importorskip("ai_edge_litert.interpreter")
  monkeypatch.delenv(tflite.RUNTIME_VARIABLE, raising=False)
  for precision, path in ENCODERS.items():
    litert = tflite.TFLiteEncoder(path)  # auto: LiteRT, since it is installed
    assert litert.runtime.startswith("LiteRT"), litert.runtime
    reference = tflite.TFLiteEncoder(path, runtime="tensorflow").symbols(padded)
    got = litert.symbols(padded)
    difference = np.abs(got.astype(np.int64) - reference)
    assert difference.max() <= 1, precision
    # float32: the same kernels' arithmetic but for ties; int8: two XNNPACK versions.
    assert np.mean(difference == 0) >= (0.999 if precision == "float32" else 0.98), precision
  # The file a LiteRT encoder's symbols make decodes by its fingerprint (a zoo model).
  exported = open_model(FOLDER)
  image = padded[:190, :250]
  data = HostCoder(tflite.TFLiteEncoder(ENCODERS["int8"]), exported).compress(image)
  (tmp_path / "a.tfcae").write_bytes(data)
  stats = decompress_file(None, str(tmp_path / "a.tfcae"), str(tmp_path / "a.png"))
  assert (stats["height"], stats["width"]) == (190, 250)
