"""plot_rd writes a real PNG with the curves drawn."""
import numpy as np
import pytest
from PIL import Image

from tfcae.evaluation import plotting


def _results(name, shift):
  bpp = [0.1, 0.25, 0.5, 1.0, 2.0]
  return {"name": name, "results": {"bpp": bpp, "psnr-rgb": [26 + shift, 29, 32, 35, 38],
                                    "ms-ssim-rgb": [0.9, 0.95, 0.97, 0.985, 0.993]}}


@pytest.mark.parametrize("metric", ["psnr", "ms-ssim"])
def test_plot_rd_writes_png(tmp_path, metric):
  out = tmp_path / "sub" / f"rd_{metric}.png"
  plotting.plot_rd([_results("jpeg", 0), _results("webp", 1)], metric, str(out))
  assert out.stat().st_size > 5000
  with Image.open(out) as im:
    assert im.format == "PNG"
    array = np.asarray(im.convert("RGB"))
  assert min(array.shape[:2]) > 300
  # Not blank: the curves and the axes put many distinct colours in the image.
  assert len(np.unique(array.reshape(-1, 3), axis=0)) > 20
  assert not list(tmp_path.glob("sub/.tmp-*"))  # the atomic write left nothing behind


def test_plot_rd_errors(tmp_path):
  with pytest.raises(ValueError, match="unknown metric"):
    plotting.plot_rd([_results("a", 0)], "ssim", str(tmp_path / "x.png"))
  with pytest.raises(ValueError, match="no results"):
    plotting.plot_rd([], "psnr", str(tmp_path / "x.png"))
  assert not (tmp_path / "x.png").exists()
