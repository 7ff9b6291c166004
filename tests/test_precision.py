"""--precision: mixed-precision transforms train, the rate and the losses stay
float32, and the exported SavedModel codes in float32."""
import numpy as np
import pytest
import tensorflow as tf

from tfcae.serving.codec import Codec
from tfcae.training import loop as training

from conftest import sample_image, tiny_config


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_and_exports_float32(tmp_path, precision):
  summary = training.train(tiny_config(tmp_path / "run", precision=precision, epochs=2,
                                       steps_per_epoch=4))
  assert summary["steps"] == 8 and np.isfinite(summary["validation"]["loss"])
  assert tf.keras.mixed_precision.global_policy().name == "float32"  # not leaked
  codec = Codec(str(tmp_path / "run"))
  image = sample_image()
  decoded = codec.decompress(codec.compress(image))
  assert decoded.shape == image.shape and decoded.dtype == np.uint8
  # The export is the float32 model: its decoder gives what a float32 rebuild of the
  # final checkpoint gives, bit for bit.
  from tfcae.serving.exported import restore_keras
  model = restore_keras(str(tmp_path / "run"))
  assert all(v.dtype == tf.float32 for v in model.trainable_variables)
  assert model.analysis_transform.layers[0].compute_dtype == "float32"


def test_precision_choices_are_checked():
  with pytest.raises(ValueError, match="--precision"):
    tiny_config("/tmp/unused", precision="float64").validate()


@pytest.mark.parametrize("flags_line, lacks", [
    ("flags\t\t: fpu sse2 avx2 fma", True),                       # AVX2 only: emulated bf16
    ("flags\t\t: fpu avx2 avx512f avx512_bf16", False),           # Zen 4, Cooper Lake
    ("flags\t\t: fpu avx2 avx512f amx_bf16 amx_tile", False),     # Sapphire Rapids
    ("processor\t: 0", False)])                                   # no flags line: unknown
def test_cpu_without_native_bfloat16_is_detected(tmp_path, flags_line, lacks):
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text(f"processor\t: 0\n{flags_line}\n")
  assert training.cpu_lacks_bfloat16(str(cpuinfo)) is lacks
  assert training.cpu_lacks_bfloat16(str(tmp_path / "missing")) is False
