"""tfcae.training.energy: kWh and CO₂ with codecarbon offline, and a run that goes on where
nothing can be measured (one warning line, the reason in the summary)."""
import os
import sys
import time

import pytest

from conftest import SAMPLE_EVAL
from tfcae.training.energy import EnergyMeter, power_source


def busy(seconds):
  end = time.perf_counter() + seconds
  while time.perf_counter() < end:
    sum(range(10000))


def test_a_block_of_work_has_energy_and_co2():
  pytest.importorskip("codecarbon")
  with EnergyMeter("FRA") as meter:
    busy(1.5)
  summary = meter.summary()
  assert summary["measured"], summary
  assert summary["kwh"] > 0 and summary["co2_kg"] > 0 and summary["cpu_power_w"] > 0
  assert summary["kwh"] == pytest.approx(summary["cpu_kwh"] + summary["ram_kwh"], rel=1e-6)
  assert summary["power_source"] == power_source() and summary["country"] == "FRA"
  assert meter.joules() == pytest.approx(summary["kwh"] * 3.6e6)


def test_without_codecarbon_the_work_runs_and_says_why(monkeypatch, capsys):
  monkeypatch.setitem(sys.modules, "codecarbon", None)
  with EnergyMeter() as meter:
    busy(0.1)
  summary = meter.summary()
  assert summary["measured"] is False and "codecarbon" in summary["reason"]
  assert meter.joules() is None
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("warning: energy not measured"), err


def test_disabled_measures_nothing_quietly(capsys):
  with EnergyMeter(enabled=False) as meter:
    pass
  assert meter.summary()["measured"] is False and "disabled" in meter.summary()["reason"]
  assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_evaluate_gives_encoder_joules_per_image(factorized_dir, monkeypatch):
  """Encoder joules = the image's encoding time × the CPU power measured over the run."""
  from tfcae.evaluation import rd

  class FixedPower:
    def __init__(self, enabled=True, **_):
      self.enabled = enabled

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      pass

    def summary(self):
      return ({"measured": True, "cpu_power_w": 12.5, "power_source": "test"} if self.enabled
              else {"measured": False, "reason": "disabled"})

  monkeypatch.setattr(rd, "EnergyMeter", FixedPower)
  image = os.path.join(SAMPLE_EVAL, "kodim23.png")
  results = rd.evaluate_model_dirs([factorized_dir], [image], progress=False, energy=True)
  (record,) = results["points"][0]["images"]
  assert record["encoder_joules"] == pytest.approx(record["encoding_time"] * 12.5)
  assert results["energy"]["cpu_power_w"] == 12.5
  plain = rd.evaluate_model_dirs([factorized_dir], [image], progress=False)
  assert "encoder_joules" not in plain["points"][0]["images"][0] and "energy" not in plain
