"""Variable-rate zoo families: one model for every rate (tfcae.models.vbr).

A variable-rate family is one training (`configs/zoo_meanscale_vbr.cfg`: every training
image coded at a rate point drawn at random) and one zoo folder, zoo/<family>/, whose
model codes at any quality in [1, K]. Its card holds the Kodak curve at every integer
quality (real files), the λ of each, and the training's cost; `tfcae.zoo.load(family)`
gives its Codec, which also meets size and quality targets (tfcae.serving.ratecontrol).
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import shutil
from typing import Any, Callable, Dict, Optional, Sequence

from tfcae import TfcaeError, zoo
from tfcae.io.fileio import atomic_write_json
from tfcae.training import jobs
from tfcae.training.rundir import RunDir
from tfcae.zoo import ladder as ladder_lib

__all__ = ["VariableRateFamily", "VARIABLE_RATE_FAMILIES", "CALIBRATION_DATA",
           "CALIBRATION_BATCH", "run_dir", "train_command", "train", "integer_dir",
           "convert_command", "publish", "publish_family", "card_rows"]

# The integer hyper-synthesis' activation steps are calibrated on crops of the training
# photographs, at every rate point in turn (4 crops each for K = 8).
CALIBRATION_DATA = "../shared/data/train"
CALIBRATION_BATCH = 32


@dataclasses.dataclass(frozen=True)
class VariableRateFamily:
  """A variable-rate zoo family.

  Attributes:
    name: the zoo family (its folder, zoo/<name>).
    architecture: the registered architecture (a variable-rate one).
    flagfile: the training recipe, relative to the repository.
    minutes: the training's time budget (--time_budget_minutes, resumable), over which
      the learning-rate schedule runs.
    stages: the bin/train flags of each stage, run in turn on the same run folder (each
      resumes the last); every stage but the last ends at its --epochs.
    cores: cores the training's threads are pinned to (its CPU time is this × its time).
  """
  name: str
  architecture: str
  flagfile: str
  minutes: float
  stages: tuple = ((),)
  cores: int = 2


VARIABLE_RATE_FAMILIES = {
    # At least the factorized ladder's CPU time (210 CPU-minutes: eight trainings) in one
    # training that covers its whole λ range. 128² crops first, then 256²: a hyperprior
    # trained on 128² crops alone sees its side information on 2×2 grids, mostly zero
    # padding, and mispredicts the Gaussians inside a whole photograph (the entropy
    # model's estimate 43 % above the real file on 512² crops of kodim01 at quality 8).
    "meanscale-vbr": VariableRateFamily(
        name="meanscale-vbr", architecture="meanscale-vbr",
        flagfile="configs/zoo_meanscale_vbr.cfg", minutes=225.,
        stages=(("--epochs=67",), ("--patch_size=256", "--batch_size=4")), cores=1),
}


def run_dir(out: str, family: VariableRateFamily) -> str:
  """The family's bin/train run folder under `out`."""
  return os.path.join(out, family.name)


def train_command(family: VariableRateFamily, out: str, stage: int = -1) -> list:
  """The bin/train argv of one stage of the family's training (default: the last)."""
  return jobs.python(os.path.join(ladder_lib.ROOT, "bin", "train"),
                     f"--flagfile={os.path.join(ladder_lib.ROOT, family.flagfile)}",
                     f"--time_budget_minutes={family.minutes:g}",
                     f"--model_dir={run_dir(out, family)}", *family.stages[stage])


def _trained(model_dir: str, family: VariableRateFamily) -> bool:
  """Whether the run has finished its last stage (its whole time budget)."""
  run = RunDir(model_dir)
  return run.is_finished() and (
      run.read_summary().get("train_seconds") or 0.) >= 60. * family.minutes


def train(family: VariableRateFamily, out: str, parallel: int = 1,
          log: Callable[[str], Any] = print) -> Dict[int, int]:
  """Trains (or resumes) the family's one model, stage by stage, unless it has finished.

  Args:
    family: the variable-rate family.
    out: the folder of the families' runs.
    parallel: unused (one training, on `family.cores` cores).
    log: where progress lines go.

  Returns:
    {stage: exit code} of the stages run ({} when already finished); a stage that fails
    stops the training there.
  """
  model_dir = run_dir(out, family)
  if _trained(model_dir, family):
    log(f"{family.name}: trained")
    return {}
  pin = ["taskset", "-c", "0"] if family.cores == 1 and shutil.which("taskset") else []
  codes = {}
  for stage in range(len(family.stages)):
    # A finished stage resumes, finds its epochs done and only exports again.
    codes.update(jobs.run_pinned([(stage, pin + train_command(family, out, stage),
                                   os.path.join(model_dir, "train.log"), None)], 1, log))
    if codes[stage] != 0:
      break
  return codes


def publish(model_dir: str, family: VariableRateFamily, images: Sequence[str],
            command: str = "", zoo_root: Optional[str] = None, progress: bool = False,
            training_run: Optional[str] = None,
            results: Optional[dict] = None) -> dict[str, Any]:
  """Copies a trained variable-rate model into the zoo, as zoo/<family>, with its card
  (the folder is assembled under a staging name and replaces the old one when complete).

  Args:
    model_dir: a finished and exported bin/train run of the family's architecture.
    family: the family.
    images: the images the card's curve is measured on (Kodak).
    command: the training command the card shows.
    zoo_root: the zoo folder (default: tfcae.zoo.root()).
    progress: show progress bars while evaluating.
    training_run: the bin/train run whose summary the card reports (default: model_dir;
      a converted model's is the run it was converted from).
    results: a `tfcae evaluate` results dict of this model on `images` at (at least)
      every integer quality, whose points the card takes instead of coding them again.

  Returns:
    The card, with its "path".

  Raises:
    TfcaeError: no exported model, or another architecture.
  """
  from tfcae.analysis import accounting
  from tfcae.evaluation import rd
  from tfcae.serving.codec import Codec
  from tfcae.serving.exported import ExportedModel
  run = RunDir(model_dir)
  if not run.exported().is_exported():
    raise TfcaeError(f"{model_dir}: no exported model to publish")
  info = run.exported().info
  if info["architecture"]["architecture"] != family.architecture:
    raise TfcaeError(f"{model_dir} is a {info['architecture']['architecture']} model, not "
                     f"{family.architecture}")
  summary = RunDir(training_run or model_dir).read_summary()
  settings = summary["settings"]
  target = os.path.join(zoo_root or zoo.root(), family.name)
  staging = target + ".tmp"
  shutil.rmtree(staging, ignore_errors=True)
  os.makedirs(staging)
  ladder_lib.reexport_into(run.path, staging)
  codec = Codec(staging)
  points = rd.operating_points(codec)
  curve = {"quality": [], "lmbda": [], "bpp": [], "psnr-rgb": [], "ms-ssim-rgb": []}
  k = codec.rate_points
  done = {}
  for point in (results or {}).get("points", []):
    records = point["images"]
    if records and "quality" in records[0] and len(records) == len(images):
      done[records[0]["quality"]] = records
  for setting in points:
    q = setting["quality"]
    records = done.get(q) or rd.evaluate_codec(codec, images, progress, **setting)
    curve["quality"].append(q)
    curve["lmbda"].append(settings["lmbda"] * (settings["lmbda_max"] / settings["lmbda"]) **
                          ((q - 1.) / (k - 1.)))
    for key in ("bpp", "psnr-rgb", "ms-ssim-rgb"):
      curve[key].append(float(sum(r[key] for r in records) / len(records)))
  report = accounting.analyze(ExportedModel(staging).restore_keras(for_compression=False))
  card = {
      "name": family.name, "family": family.name, "architecture": family.architecture,
      "rate_points": k, "config": info["architecture"], "fingerprint": info["fingerprint"],
      "lmbda": [settings["lmbda"], settings["lmbda_max"]], "distortion": settings["distortion"],
      "training": {
          "command": command, "data": ladder_lib.TRAIN_DATA, "steps": summary.get("steps"),
          "cpu_seconds": family.cores * (summary.get("train_seconds") or 0.),
          "cores": family.cores,
          "init_from": settings.get("init_from") or None,
          "patch_size": settings["patch_size"], "batch_size": settings["batch_size"],
          "tensorflow": summary.get("tensorflow")},
      "kodak": dict(curve, images=len(images)),
      "macs_per_pixel": {"encoder": report["encoder"]["total"]["maccs_per_pixel"],
                         "decoder": report["decoder"]["total"]["maccs_per_pixel"]},
      "date": datetime.date.today().isoformat(),
  }
  card["bytes"] = ladder_lib.folder_bytes(staging)
  atomic_write_json(os.path.join(staging, zoo.CARD), card)
  shutil.rmtree(target, ignore_errors=True)
  os.replace(staging, target)
  return dict(card, path=target)


def integer_dir(out: str, family: VariableRateFamily) -> str:
  """Where the trained model with its hyper-synthesis made integer is exported."""
  return run_dir(out, family) + "-integer"


def convert_command(family: VariableRateFamily, out: str) -> list:
  """The bin/convert_integer argv that makes the trained model's files cross-platform."""
  return jobs.python(os.path.join(ladder_lib.ROOT, "bin", "convert_integer"),
                     f"--model_dir={run_dir(out, family)}",
                     f"--output_dir={integer_dir(out, family)}",
                     f"--calibration_images={CALIBRATION_DATA}",
                     f"--batch_size={CALIBRATION_BATCH}")


def publish_family(family: VariableRateFamily, out: str, images: Sequence[str],
                   zoo_root: Optional[str] = None, log: Callable[[str], Any] = print,
                   qualities=None) -> list[dict[str, Any]]:
  """Publishes the family's run if it has finished: its hyper-synthesis made integer
  first (bin/convert_integer, so that its files decode on any platform), then publish.
  Returns [its card], or [] when the run has not finished."""
  if qualities:
    raise TfcaeError(f"{family.name} is one model: --qualities does not apply")
  model_dir = run_dir(out, family)
  if not _trained(model_dir, family):
    log(f"{family.name}: not trained, not published")
    return []
  converted = integer_dir(out, family)
  if not RunDir(converted).exported().is_exported():
    code = jobs.run_pinned([("convert", convert_command(family, out),
                             converted + ".log", None)], 1, log)["convert"]
    if code != 0:
      raise TfcaeError(f"converting {model_dir} failed; see {converted}.log")
    shutil.copy2(RunDir(model_dir).config_path, converted)
  convert = ladder_lib.shown_command(convert_command(family, out)).replace(
      "bin/train", "bin/convert_integer", 1)
  command = " && ".join([ladder_lib.shown_command(train_command(family, out, stage))
                         for stage in range(len(family.stages))] + [convert])
  card = publish(converted, family, images, command, zoo_root, training_run=model_dir)
  log(f"published {card['name']}: {card['kodak']['bpp'][0]:.3f}-{card['kodak']['bpp'][-1]:.3f}"
      f" bpp, {card['bytes'] / 1e6:.1f} MB")
  return [card]


def card_rows(card: dict[str, Any]) -> list[tuple]:
  """(quality, λ, bpp, PSNR, MS-SSIM) of each point of a variable-rate card's curve."""
  k = card["kodak"]
  return list(zip(k["quality"], k["lmbda"], k["bpp"], k["psnr-rgb"], k["ms-ssim-rgb"]))
