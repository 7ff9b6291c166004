"""tfcae.training.energy: kWh and CO₂ with codecarbon offline, and a run that goes on where
nothing can be measured (one warning line, the reason in the summary)."""
import sys
import time

import pytest

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
