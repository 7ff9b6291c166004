"""Training a zoo rate ladder and publishing it into zoo/ (`make zoo`).

A ladder is one recipe (a flagfile) at several λ. The cheap route trains an anchor
quality from scratch and fine-tunes the others in a chain outwards from it, each from its
neighbour on the anchor's side (neighbouring λ differ by ≈ 2×, so the transforms differ
little and the rate moves within minutes; every step of the chain starts from a model
that has already trained for all the steps before it; `sources` may name another source),
two jobs at a time, each pinned to one core (tfcae.training.jobs), the job with the longest
chain waiting on it first. Every job is a plain `bin/train` run with --time_budget_minutes, so
the ladder's CPU time is fixed in advance and re-running the command resumes unfinished
jobs and skips finished ones.

An anchor may train in two stages (`polish_minutes` > 0): a first run with `anchor_flags`
(e.g. --precision=mixed_bfloat16 at a constant peak learning rate: ≈ 2× the steps on a CPU
with bf16 kernels) and, warm-started from it, a float32 run of the last minutes with
`polish_flags` (the lower learning rate of the schedule's last phase): the precision that
the last, small steps need (docs/results.md, "bf16 with a float32 polish").

`publish` copies a trained model's SavedModel into zoo/<family>/<quality>/ with its
train_config.json and a card.json: training command, data, steps, CPU time, Kodak bpp /
PSNR / MS-SSIM from real files, encoder and decoder MACs per pixel, fingerprint, size.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
from typing import Any, Callable, Iterable, Sequence

from tfcae import TfcaeError, zoo
from tfcae.io.fileio import atomic_write_json
from tfcae.training import jobs
from tfcae.serving.exported import (ASSETS_DIR, SAVED_MODEL_FINGERPRINT_FILE, VARIABLES_DIR,
                                    ExportedModel)
from tfcae.training.rundir import CONFIG_FILE, RunDir

__all__ = ["ROOT", "TRAIN_DATA", "Ladder", "LADDERS", "for_this_cpu", "run_dir", "train_command",
           "train", "folder_bytes", "reexport_into", "shown_command", "publish", "publish_ladder",
           "refresh", "card_table"]

# tfcae/zoo/ladder.py -> the repository
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Files of a zoo folder that a re-export keeps as they are (TFLite encoders and their info).
DEVICE_ENCODER_SUFFIXES = (".tflite", ".tflite.json")
TRAIN_DATA = "BSDS500 train+val+test (500 photographs, ../shared/data/train; the last 10 % " \
             "by name validate)"


@dataclasses.dataclass(frozen=True)
class Ladder:
  """One zoo family's rate ladder: a recipe at several λ, and how its runs are scheduled.

  Each field is described beside it. The time budgets are per run, on one core; an
  anchor's `anchor_minutes` include its polish stage when it has one.
  """

  name: str                    # the zoo family: its folder, zoo/<name>/<quality>
  architecture: str            # the model's architecture (export info)
  flagfile: str                # the recipe, relative to the repository
  lambdas: dict                # quality -> λ (MSE on 0..255)
  anchors: tuple               # qualities trained from scratch
  anchor_minutes: float        # training time of an anchor, on one core
  finetune_minutes: float      # training time of a fine-tuned quality, on one core
  finetune_flags: tuple = ()   # bin/train flags of the fine-tunes (e.g. a lower peak lr)
  anchor_flags: tuple = ()     # flags of an anchor's (first-stage) run
  polish_minutes: float = 0.   # > 0: an anchor's last minutes, a run of its own
  polish_flags: tuple = ()     # that run's flags (it warm-starts from the first stage)
  sources: tuple = ()          # (quality, source) pairs that override the neighbour rule

  def source(self, quality: int) -> int | None:
    """The quality a quality is fine-tuned from.

    Args:
      quality: a key of `lambdas`.

    Returns:
      As `sources` says, else its neighbour towards the nearest anchor (the lower
      anchor on a tie); None for an anchor.
    """
    if quality in self.anchors:
      return None
    override = dict(self.sources).get(quality)
    if override is not None:
      return override
    anchor = min(self.anchors, key=lambda a: (abs(a - quality), a))
    ladder = sorted(self.lambdas)
    i = ladder.index(quality)
    return ladder[i - 1] if anchor < quality else ladder[i + 1]

  def hops(self, quality: int) -> int:
    """Fine-tunes between a quality and its anchor (0 for an anchor)."""
    source = self.source(quality)
    return 0 if source is None else 1 + self.hops(source)

  def height(self, quality: int) -> int:
    """The longest chain of fine-tunes that waits for this quality (0: none)."""
    return max((1 + self.height(q) for q in self.lambdas if self.source(q) == quality),
               default=0)

  def cpu_minutes(self) -> float:
    """The CPU-minutes of the whole ladder (the sum of its runs' time budgets)."""
    n = len(self.lambdas)
    return len(self.anchors) * self.anchor_minutes + (
        n - len(self.anchors)) * self.finetune_minutes


# λ of CompressAI's MSE zoo (its λ multiplies the MSE on 0..1 times 255², i.e. ours).
LADDERS = {
    "factorized": Ladder(
        name="factorized", architecture="factorized", flagfile="configs/zoo_factorized.cfg",
        # CompressAI's q1-q7 λ with one more below (0.0009): at 0.0018 these CPU-trained
        # models end at ≈ 0.17 bpp, and the ladder is to span ≈ 0.1-1.5 bpp.
        lambdas={1: 0.0009, 2: 0.0018, 3: 0.0035, 4: 0.0067, 5: 0.0130, 6: 0.0250,
                 7: 0.0483, 8: 0.0932},
        # Two anchors, q2 and q5, side by side: each trains 36 min in bf16 at the constant
        # peak, then 9 min in float32 at 5e-5 (+0.37 dB at equal time at q5, docs/
        # results.md "bf16 with a float32 polish"). The high rates are fine-tuned, not
        # anchored: a bf16 q8 from scratch ended 0.35 dB below a float32 chain (bf16's
        # 8-bit mantissa is noise where the MSE is small; docs/results.md "The 2026-12-06
        # ladder"). Six fine-tunes in a chain outwards, q5 -> q6 -> q7 -> q8 the longest
        # (q8 straight from q6 ended 0.14 dB lower): three rounds of two, 210 CPU-minutes,
        # ≈ 1 h 50 min of the machine.
        anchors=(2, 5), anchor_minutes=45., finetune_minutes=20.,
        anchor_flags=("--precision=mixed_bfloat16", "--lr_schedule=constant"),
        polish_minutes=9.,
        polish_flags=("--learning_rate=5e-5", "--lr_warmup=0", "--lr_schedule=constant"),
        # Fine-tunes end at the ×0.1 rate (the flagfile's step at 80 %): at a constant 1e-4
        # they ended with a brightness bias of up to 2.6 levels (λ = 0.025: −0.6 dB; with
        # the step: +0.96 dB, docs/results.md "The 2026-12-06 ladder").
        finetune_flags=("--learning_rate=1e-4", "--lr_warmup=0", "--lr_schedule=step")),
    # MS-SSIM-optimised (λ·(1 − MS-SSIM) + bpp, CompressAI's ms-ssim λ for its qualities
    # 1-6). N = 64: 3.1 MB per model keeps the zoo under its 80 MB budget, and at 176²
    # crops (5-scale MS-SSIM needs ≥ 176) the narrow model gets the steps. Two anchors
    # train side by side, so both cores are busy from the start.
    "factorized-msssim": Ladder(
        name="factorized-msssim", architecture="factorized",
        flagfile="configs/zoo_factorized_msssim.cfg",
        lambdas={1: 2.40, 2: 4.58, 3: 8.73, 4: 16.64, 5: 31.73, 6: 60.50},
        anchors=(2, 5), anchor_minutes=50., finetune_minutes=25.,
        finetune_flags=("--learning_rate=1e-4", "--lr_warmup=0", "--lr_schedule=constant")),
}


def for_this_cpu(ladder: Ladder, lacks_bfloat16: bool | None = None) -> Ladder:
  """The ladder as this CPU should train it.

  Without AVX512-BF16 or AMX, oneDNN emulates bfloat16 and a bf16 anchor stage runs ≈ 11×
  slower than float32 (docs/results.md, "Throughput on a CPU without AVX-512"): its
  anchors then train in float32 for the whole anchor_minutes, with the flagfile's own
  schedule (one run, no polish).

  Args:
    ladder: the ladder.
    lacks_bfloat16: whether this CPU lacks native bfloat16 (None: ask
      tfcae.training.loop.cpu_lacks_bfloat16).

  Returns:
    `ladder` itself, or a copy without the bf16 anchor flags and the polish stage.
  """
  if "--precision=mixed_bfloat16" not in ladder.anchor_flags:
    return ladder
  if lacks_bfloat16 is None:
    from tfcae.training.loop import cpu_lacks_bfloat16
    lacks_bfloat16 = cpu_lacks_bfloat16()
  if not lacks_bfloat16:
    return ladder
  return dataclasses.replace(ladder, anchor_flags=tuple(
      f for f in ladder.anchor_flags if f not in ("--precision=mixed_bfloat16",
                                                  "--lr_schedule=constant")),
      polish_minutes=0., polish_flags=())


def run_dir(out: str, ladder: Ladder, quality: int) -> str:
  """The run directory of a quality: out/<family>/<quality>.

  Args:
    out: the folder of the ladders' runs.
    ladder: the ladder.
    quality: a key of its `lambdas`.

  Returns:
    The path.
  """
  return os.path.join(out, ladder.name, str(quality))


def first_stage_dir(out: str, ladder: Ladder, quality: int) -> str:
  """The first stage of a two-stage anchor (polish_minutes > 0): run_dir + "-stage1"."""
  return run_dir(out, ladder, quality) + "-stage1"


def _two_stage(ladder, quality):
  return ladder.source(quality) is None and ladder.polish_minutes > 0


def train_command(ladder: Ladder, quality: int, out: str,
                  first_stage: bool = False) -> list[str]:
  """bin/train's argv for a quality.

  Args:
    ladder: the ladder.
    quality: a key of its `lambdas`.
    out: the folder of the ladders' runs.
    first_stage: a two-stage anchor's first run (else its polish run, or the quality's
      only run).

  Returns:
    The command (the Python interpreter, bin/train and its flags: the flagfile, λ, the
    model directory, the time budget, and --init_from for a fine-tune or a polish).
  """
  model_dir = first_stage_dir(out, ladder, quality) if first_stage else run_dir(
      out, ladder, quality)
  args = [f"--flagfile={os.path.join(ROOT, ladder.flagfile)}",
          f"--lmbda={ladder.lambdas[quality]}", f"--model_dir={model_dir}"]
  source = ladder.source(quality)
  if _two_stage(ladder, quality) and not first_stage:
    args += [f"--time_budget_minutes={ladder.polish_minutes}",
             f"--init_from={first_stage_dir(out, ladder, quality)}", *ladder.polish_flags]
  elif source is None:
    minutes = ladder.anchor_minutes - ladder.polish_minutes
    args += [f"--time_budget_minutes={minutes:g}", *ladder.anchor_flags]
  else:
    args += [f"--time_budget_minutes={ladder.finetune_minutes}",
             f"--init_from={run_dir(out, ladder, source)}", *ladder.finetune_flags]
  return jobs.python(os.path.join(ROOT, "bin", "train"), *args)


def _done(model_dir):
  return RunDir(model_dir).is_finished()


def train(ladder: Ladder, out: str, parallel: int = 2,
          qualities: Iterable[int] | None = None,
          log: Callable[[str], Any] = print) -> dict[Any, int]:
  """Trains (or resumes) the ladder's qualities; finished runs are skipped.

  Args:
    ladder: the ladder.
    out: the folder of the ladders' runs.
    parallel: jobs at a time, each pinned to one core.
    qualities: the qualities to train (default: all); a fine-tune waits for its source.
    log: where progress lines go.

  Returns:
    {job: exit code}: the job is the quality, or "<quality>-stage1" for an anchor's
    first stage.
  """
  qualities = sorted(qualities or ladder.lambdas)
  # A job starts once the one it is fine-tuned from is done; among the ready ones, the one
  # with the longest chain waiting on it first (list scheduling by critical path: the
  # ladder ends when its longest chain does).
  order = sorted(qualities, key=lambda q: (-ladder.height(q), ladder.hops(q), q))
  todo = [q for q in order if not _done(run_dir(out, ladder, q))]
  work = []
  for q in todo:
    model_dir = run_dir(out, ladder, q)
    source = ladder.source(q)
    ready = None if source is None else (
        lambda d=run_dir(out, ladder, source): _done(d))
    if _two_stage(ladder, q):
      first = first_stage_dir(out, ladder, q)
      if not _done(first):
        work.append((f"{q}-stage1", train_command(ladder, q, out, first_stage=True),
                     os.path.join(first, "train.log"), None))
      ready = lambda d=first: _done(d)  # noqa: E731
    work.append((q, train_command(ladder, q, out), os.path.join(model_dir, "train.log"),
                 ready))
  log(f"{ladder.name}: {len(todo)} of {len(qualities)} qualities to train "
      f"({ladder.cpu_minutes():.0f} CPU-minutes for the whole ladder, {parallel} at a time)")
  return jobs.run_pinned(work, parallel, log)


def _relative(path):
  """A path inside the repository as the repository-relative path the commands use."""
  if path and os.path.isabs(path) and path.startswith(ROOT + os.sep):
    return os.path.relpath(path, ROOT)
  return path


def folder_bytes(path: str) -> int:
  """Bytes of every file under `path` but its card (a zoo folder's size, as its card counts
  it)."""
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs
             if not (d == path and f == zoo.CARD))


def reexport_into(model_dir: str, folder: str) -> None:
  """A zoo folder's SavedModel, export info and training config, from a run or a zoo
  folder, with the current serving graph (export.reexport); not TF's fingerprint.pb nor
  the empty assets/ a SavedModel gets, which nothing here reads."""
  from tfcae.serving.export import reexport
  reexport(model_dir, folder)
  shutil.copy2(os.path.join(model_dir, CONFIG_FILE), folder)
  for extra in (SAVED_MODEL_FINGERPRINT_FILE, ASSETS_DIR):
    extra = os.path.join(folder, extra)
    if os.path.isfile(extra):
      os.remove(extra)
    elif os.path.isdir(extra) and not os.listdir(extra):
      os.rmdir(extra)


def publish(model_dir: str, architecture: str, quality: int, images: Sequence[str],
            command: str = "", zoo_root: str | None = None, progress: bool = False,
            family: str | None = None, earlier_stages: Sequence[str] = (),
            extend: Callable[[str, dict, dict], None] | None = None) -> dict[str, Any]:
  """Copies an exported model into the zoo, as zoo/<family>/<quality>, with its card.

  The folder is assembled under a staging name and replaces the old one only when
  complete.

  Args:
    model_dir: a finished and exported bin/train run.
    architecture: the architecture it must be.
    quality: the quality it is published as.
    images: the images the card reports on (Kodak).
    command: the training command the card shows.
    zoo_root: the zoo folder (default: tfcae.zoo.root()).
    progress: show a progress bar while evaluating.
    family: the zoo family (default: the architecture), e.g. "factorized-msssim".
    earlier_stages: run folders it was warm-started through from scratch (a two-stage
      anchor's first run): their steps and time count in the card's.
    extend: extend(staging, card, report) adds files to the staging folder and entries
      to the card (report: the model's accounting) before the card is written and the
      folder replaces the old one (tfcae.zoo.sparse).

  Returns:
    The card, with its "path".

  Raises:
    TfcaeError: the run has no exported model, or is of another architecture.
  """
  family = family or architecture
  from tfcae.analysis import accounting
  from tfcae.serving.codec import Codec
  from tfcae.evaluation import rd as evaluation
  run = RunDir(model_dir)
  if not run.exported().is_exported():
    raise TfcaeError(f"{model_dir}: no exported model to publish")
  info = run.exported().info
  if info["architecture"]["architecture"] != architecture:
    raise TfcaeError(f"{model_dir} is a {info['architecture']['architecture']} model, not "
                     f"{architecture}")
  summary = run.read_summary()
  target = os.path.join(zoo_root or zoo.root(), family, str(int(quality)))
  staging = target + ".tmp"
  shutil.rmtree(staging, ignore_errors=True)
  os.makedirs(staging)
  # The SavedModel only (its variables are the weights); no checkpoints, logs or slots.
  # Written again with the current serving graph (same weights, tables and fingerprint),
  # so every zoo model has the bounded decoder, whichever version of the code trained it.
  reexport_into(run.path, staging)
  records = evaluation.evaluate_codec(Codec(staging), images, progress=progress)
  mean = lambda k: float(sum(r[k] for r in records) / len(records))
  report = accounting.analyze(ExportedModel(staging).restore_keras(for_compression=False))
  settings = summary["settings"]
  # train_seconds counts a run's time across resumes only under a time budget; a run of a
  # fixed step count reports its last process's time.
  steps = summary.get("steps")
  seconds = summary.get("train_seconds") or summary.get("train_seconds_this_run")
  init_from = _relative(settings.get("init_from")) or None
  for stage in earlier_stages:
    earlier = RunDir(stage).read_summary()
    steps, seconds = steps + earlier["steps"], seconds + earlier["train_seconds"]
    init_from = _relative(earlier["settings"].get("init_from")) or None
  card = {
      "name": f"{family}/{int(quality)}", "family": family, "architecture": architecture,
      "quality": int(quality), "config": info["architecture"],
      "fingerprint": info["fingerprint"], "lmbda": settings["lmbda"],
      "distortion": settings["distortion"],
      "training": {
          "command": command, "data": TRAIN_DATA, "steps": steps,
          "cpu_seconds": seconds, "cores": 1, "init_from": init_from,
          "patch_size": settings["patch_size"], "batch_size": settings["batch_size"],
          "tensorflow": summary.get("tensorflow")},
      "kodak": {"images": len(records), "bpp": mean("bpp"), "psnr-rgb": mean("psnr-rgb"),
                "ms-ssim-rgb": mean("ms-ssim-rgb")},
      "macs_per_pixel": {"encoder": report["encoder"]["total"]["maccs_per_pixel"],
                         "decoder": report["decoder"]["total"]["maccs_per_pixel"]},
      "date": datetime.date.today().isoformat(),
  }
  if extend is not None:
    extend(staging, card, report)
  card["bytes"] = folder_bytes(staging)
  atomic_write_json(os.path.join(staging, zoo.CARD), card)
  shutil.rmtree(target, ignore_errors=True)
  os.replace(staging, target)
  return dict(card, path=target)


def shown_command(argv: Sequence[str]) -> str:
  """A bin/train argv as the command a card shows.

  Args:
    argv: a command as train_command returns it (interpreter, script, flags).

  Returns:
    "bin/train <flags>", with repository paths made relative.
  """
  return " ".join(["bin/train"] + [a.replace(ROOT + os.sep, "") for a in argv[2:]])


def publish_ladder(ladder: Ladder, out: str, images: Sequence[str], zoo_root: str | None = None,
                   log: Callable[[str], Any] = print,
                   qualities: Iterable[int] | None = None) -> list[dict[str, Any]]:
  """Publishes the ladder's finished runs (publish); unfinished ones are logged, skipped.

  Args:
    ladder: the ladder.
    out: the folder of the ladders' runs.
    images: the images the cards report on (Kodak).
    zoo_root: the zoo folder (default: tfcae.zoo.root()).
    log: where progress lines go.
    qualities: the qualities to publish (default: all).

  Returns:
    The published cards, by quality.

  Raises:
    TfcaeError: as publish.
  """
  cards = []
  for q in sorted(qualities or ladder.lambdas):
    model_dir = run_dir(out, ladder, q)
    if not _done(model_dir):
      log(f"{ladder.name}/{q}: not trained, not published")
      continue
    command, earlier = shown_command(train_command(ladder, q, out)), ()
    if _two_stage(ladder, q):
      command = f"{shown_command(train_command(ladder, q, out, first_stage=True))} && {command}"
      earlier = (first_stage_dir(out, ladder, q),)
    card = publish(model_dir, ladder.architecture, q, images, command, zoo_root,
                   family=ladder.name, earlier_stages=earlier)
    log(f"published {card['name']}: {card['kodak']['bpp']:.3f} bpp, "
        f"{card['kodak']['psnr-rgb']:.2f} dB, {card['bytes'] / 1e6:.1f} MB")
    cards.append(card)
  return cards


def _same_values(old, new):
  """Whether two SavedModels' variables hold the same tensors under the same keys (the
  checkpoint's own copy of the object graph, which the loader does not read, aside)."""
  import numpy as np
  import tensorflow as tf
  graph = "_CHECKPOINTABLE_OBJECT_GRAPH"
  readers = [tf.train.load_checkpoint(os.path.join(p, VARIABLES_DIR, "variables"))
             for p in (old, new)]
  keys = [set(r.get_variable_to_shape_map()) - {graph} for r in readers]
  return keys[0] == keys[1] and all(
      np.array_equal(readers[0].get_tensor(k), readers[1].get_tensor(k)) for k in keys[0])


def refresh(path: str, image: str) -> dict[str, Any]:
  """Writes a published model again with the current serving graph (export.reexport), in
  place, after checking that the new SavedModel codes `image` to the same bytes as the
  old one and decodes them to the same pixels.

  The old variable files are kept when they hold the same values (re-saving them changes
  only TF's stored object graph), so a refresh adds no weight blobs to the repository's
  history; the device encoders (tfcae.zoo.sparse) are kept as they are.

  Args:
    path: the zoo model's folder.
    image: an image file to check the coding on.

  Returns:
    The updated card (its "bytes" and "exported" date).

  Raises:
    TfcaeError: the re-exported model codes the image differently (the old folder is
      kept).
  """
  import numpy as np
  import tensorflow as tf
  import tensorflow_compression  # noqa: F401  (registers the range-coding ops)
  from tfcae.io.fileio import load_rgb_image
  pixels = tf.constant(load_rgb_image(image))
  old = tf.saved_model.load(path)
  staging = path.rstrip(os.sep) + ".tmp"
  shutil.rmtree(staging, ignore_errors=True)
  reexport_into(path, staging)
  if _same_values(path, staging):
    for name in os.listdir(os.path.join(path, VARIABLES_DIR)):
      shutil.copy2(os.path.join(path, VARIABLES_DIR, name), os.path.join(staging, VARIABLES_DIR))
  for name in os.listdir(path):  # device encoders (tfcae.zoo.device) are not re-exported
    if name.endswith(DEVICE_ENCODER_SUFFIXES):
      shutil.copy2(os.path.join(path, name), staging)
  new = tf.saved_model.load(staging)
  with open(os.path.join(path, zoo.CARD), encoding="utf-8") as f:
    card = json.load(f)
  # A variable-rate model codes at a quality: a non-integer one, between rate points.
  inputs = (pixels,) + ((tf.constant(1.5),) if card.get("rate_points") else ())
  data = old.compress(*inputs).numpy()
  if new.compress(*inputs).numpy() != data or not np.array_equal(
      new.decompress(data).numpy(), old.decompress(data).numpy()):
    shutil.rmtree(staging)
    raise TfcaeError(f"{path}: the re-exported model codes {image} differently; kept the old")
  card["bytes"] = folder_bytes(staging)  # as publish counts: all but the card
  card["exported"] = datetime.date.today().isoformat()
  atomic_write_json(os.path.join(staging, zoo.CARD), card)
  backup = path.rstrip(os.sep) + ".old"
  os.replace(path, backup)
  os.replace(staging, path)
  shutil.rmtree(backup)
  return card


def card_table(cards: Iterable[dict[str, Any]]) -> str:
  """The README's zoo table.

  Args:
    cards: zoo cards (tfcae.zoo.list()).

  Returns:
    A markdown table, one row per card; a sparse model's encoder cost is its reduced
    encoder's (tfcae.zoo.sparse).
  """
  lines = ["| model | λ | steps | CPU min | Kodak bpp | PSNR (dB) | MS-SSIM | enc / dec "
           "kMAC/px | MB | fingerprint |", "|---|---|---|---|---|---|---|---|---|---|"]
  for c in cards:
    t, k, m = c["training"], c["kodak"], c["macs_per_pixel"]
    if c.get("rate_points"):  # a variable-rate model: its range, quality 1 to K
      lines.append(f"| {c['name']} (q 1-{c['rate_points']}) | {c['lmbda'][0]}-{c['lmbda'][1]} | "
                   f"{t['steps']} | {(t['cpu_seconds'] or 0) / 60:.0f} | "
                   f"{k['bpp'][0]:.3f}-{k['bpp'][-1]:.3f} | "
                   f"{k['psnr-rgb'][0]:.2f}-{k['psnr-rgb'][-1]:.2f} | "
                   f"{k['ms-ssim-rgb'][0]:.4f}-{k['ms-ssim-rgb'][-1]:.4f} | "
                   f"{m['encoder'] / 1e3:.1f} / {m['decoder'] / 1e3:.1f} | "
                   f"{c['bytes'] / 1e6:.1f} | `{c['fingerprint']}` |")
      continue
    lines.append(f"| {c['name']} | {c['lmbda']} | {t['steps']} | "
                 f"{(t['cpu_seconds'] or 0) / 60:.0f} | {k['bpp']:.3f} | {k['psnr-rgb']:.2f} | "
                 f"{k['ms-ssim-rgb']:.4f} | {m.get('encoder_reduced', m['encoder']) / 1e3:.1f} / "
                 f"{m['decoder'] / 1e3:.1f} | "
                 f"{c['bytes'] / 1e6:.1f} | `{c['fingerprint']}` |")
  return "\n".join(lines)
