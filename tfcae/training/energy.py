"""Energy and CO₂ of a block of work, in the units the green-AI literature reports.

`EnergyMeter` wraps codecarbon's `OfflineEmissionsTracker` (no network): kWh drawn by the
CPU and RAM while the block runs, and the CO₂ of that energy at a country's grid intensity.
Where RAPL counters are readable (Intel, /sys/class/powercap) codecarbon reads them; where
they are not (most VMs and containers), it estimates the CPU's power from its load and
TDP, and RAM's from its size: the summary says which (`power_source`). A machine where
codecarbon is missing or cannot measure still runs: one warning line, and the summary says
why nothing was measured.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Optional

__all__ = ["RAPL_COUNTER", "EnergyMeter", "power_source"]

RAPL_COUNTER = "/sys/class/powercap/intel-rapl:0/energy_uj"


def power_source() -> str:
  """What codecarbon's CPU figure rests on here: RAPL counters when readable, else its
  estimate from CPU load and the CPU model's TDP."""
  try:
    with open(RAPL_COUNTER, encoding="ascii") as f:
      f.read()
    return "RAPL counters"
  except OSError:
    return "estimate: CPU load x TDP, RAM by its size (codecarbon)"


class EnergyMeter:
  """Context manager: `with EnergyMeter("USA") as meter: ...; meter.summary()`.

  Args:
    country: ISO 3166-1 alpha-3 code whose grid carbon intensity converts kWh to CO₂.
    enabled: False measures nothing (the summary says so).
  """

  def __init__(self, country: str = "USA", enabled: bool = True):
    self.country = country
    self.enabled = enabled
    self._tracker = None
    self._start = None
    self._summary = {"measured": False, "reason": "not run"}

  def __enter__(self) -> "EnergyMeter":
    self._start = time.perf_counter()
    if not self.enabled:
      self._summary = {"measured": False, "reason": "disabled (--energy=off)"}
      return self
    try:
      # codecarbon announces itself on INFO and warns about concurrent trackers: quiet.
      logging.getLogger("codecarbon").setLevel(logging.ERROR)
      from codecarbon import OfflineEmissionsTracker
      self._tracker = OfflineEmissionsTracker(
          country_iso_code=self.country, save_to_file=False, log_level="error",
          measure_power_secs=15)
      self._tracker.start()
    except Exception as e:  # noqa: BLE001 (missing package, unreadable counters: all one)
      self._tracker = None
      self._summary = {"measured": False, "reason": _one_line(e)}
      print(f"warning: energy not measured ({self._summary['reason']})", file=sys.stderr,
            flush=True)
    return self

  def __exit__(self, *exc) -> None:
    seconds = time.perf_counter() - self._start
    if self._tracker is None:
      self._summary["seconds"] = round(seconds, 1)
      return
    try:
      co2_kg = self._tracker.stop()
      data = self._tracker.final_emissions_data
      self._summary = {
          "measured": True, "kwh": float(data.energy_consumed),
          "cpu_kwh": float(data.cpu_energy), "ram_kwh": float(data.ram_energy),
          "co2_kg": float(co2_kg or 0.), "country": self.country,
          "cpu_power_w": float(data.cpu_power), "ram_power_w": float(data.ram_power),
          "seconds": round(seconds, 1), "power_source": power_source(),
          "tool": f"codecarbon {_version()} (offline)"}
    except Exception as e:  # noqa: BLE001
      self._summary = {"measured": False, "reason": _one_line(e), "seconds": round(seconds, 1)}
      print(f"warning: energy not measured ({self._summary['reason']})", file=sys.stderr,
            flush=True)

  def summary(self) -> dict:
    """{"measured": True, "kwh", "co2_kg", "power_source", ...} or {"measured": False,
    "reason"}."""
    return dict(self._summary)

  def joules(self) -> Optional[float]:
    """The energy measured, in joules (None when nothing was measured)."""
    return self._summary["kwh"] * 3.6e6 if self._summary.get("measured") else None


def _one_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f"{error.__class__.__name__}: {text[0][:200]}" if text else error.__class__.__name__


def _version() -> str:
  from importlib import metadata
  try:
    return metadata.version("codecarbon")
  except metadata.PackageNotFoundError:
    return "?"
