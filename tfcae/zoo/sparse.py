"""Sparse zoo families: dense zoo models made cheap to encode, shipped with device encoders.

A sparse family (e.g. `factorized-l11`) takes some qualities of a dense family and runs
double descent on each (Gille et al., Algorithm 2; `configs/sparse_l11.cfg`), warm-started
from the dense model of that quality and at its λ. `publish` puts the result in the zoo
like any model (tfcae.zoo.ladder.publish: SavedModel, card, Kodak figures from real files)
and adds what a user of a cheap encoder needs:

* `encoder.tflite` and `encoder_int8.tflite`, the channel-reduced encoder's flatbuffers
  with their Kodak bpp / PSNR through host coding (tfcae.zoo.device);
* the card's "encoder" block: S, MACs per pixel before and after channel removal, weight
  bytes (dense, sparse, reduced), peak activation memory, the dense sibling and ΔPSNR at
  equal bpp against the dense family's curve (tfcae.evaluation.green).
"""
import dataclasses
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

from tfcae import TfcaeError, zoo
from tfcae.training import jobs
from tfcae.training.rundir import RunDir
from tfcae.zoo import device, ladder as ladder_lib

__all__ = ["SparseFamily", "LONG_SECOND_DESCENT", "SPARSE_FAMILIES", "run_dir",
           "train_command",
           "train", "publish", "publish_family"]


@dataclasses.dataclass(frozen=True)
class SparseFamily:
  """A sparse zoo family: double descent from each quality of a dense family.

  Attributes:
    name: the zoo family (its folder, zoo/<name>/<quality>).
    dense_family: the family each quality is warm-started from, at that quality's λ.
    flagfile: the double-descent recipe, relative to the repository.
    qualities: the dense qualities made sparse.
    flags: quality -> extra bin/train flags (e.g. the radius chosen for that rate).
  """
  name: str
  dense_family: str
  flagfile: str
  qualities: tuple
  flags: Dict[int, tuple] = dataclasses.field(default_factory=dict)


# The recipe of sparse_l11.cfg with a second descent twice as long (5,000 steps, ×0.1 after
# 80 % of it): at q5 it halves the loss at equal bpp of the 2,500-step one (docs/results.md
# "Sparse encoders at zoo scale").
LONG_SECOND_DESCENT = ("--epochs=12", "--lr_decay_at=0.667")
SPARSE_FAMILIES = {
    # ℓ1,1 over output filters; the radius per rate (a fraction of each layer's norm) is the
    # one that removes at least half of the encoder's MACs.
    "factorized-l11": SparseFamily(
        name="factorized-l11", dense_family="factorized", flagfile="configs/sparse_l11.cfg",
        qualities=(3, 5), flags={3: ("--sparsity_radius=0.1", *LONG_SECOND_DESCENT),
                                 5: ("--sparsity_radius=0.2", *LONG_SECOND_DESCENT)}),
}


def run_dir(out: str, family: SparseFamily, quality: int) -> str:
  """The run directory of a quality: out/<family>/<quality>.

  Args:
    out: the folder of the families' runs.
    family: the sparse family.
    quality: one of its qualities.

  Returns:
    The path.
  """
  return os.path.join(out, family.name, str(quality))


def train_command(family: SparseFamily, quality: int, out: str) -> List[str]:
  """bin/train's argv for one quality: the flagfile, the dense sibling's λ and weights.

  Args:
    family: the sparse family.
    quality: one of its qualities; the dense family's model of that quality must be in
      the zoo.
    out: the folder of the families' runs.

  Returns:
    The command (the Python interpreter, bin/train and its flags, the quality's own
    `flags` included).

  Raises:
    TfcaeError: the dense family has no model of that quality (tfcae.zoo.card).
  """
  card = zoo.card(family.dense_family, quality)
  return jobs.python(
      os.path.join(ladder_lib.ROOT, "bin", "train"),
      f"--flagfile={os.path.join(ladder_lib.ROOT, family.flagfile)}",
      f"--init_from={zoo.PREFIX}{family.dense_family}/{quality}", f"--lmbda={card['lmbda']}",
      *family.flags.get(quality, ()), f"--model_dir={run_dir(out, family, quality)}")


def train(family: SparseFamily, out: str, parallel: int = 2,
          qualities: Optional[Sequence[int]] = None,
          log: Callable[[str], Any] = print) -> Dict[int, int]:
  """Trains (or resumes) the family's qualities, `parallel` at a time, one core each;
  finished runs are skipped.

  Args:
    family: the sparse family.
    out: the folder of the families' runs.
    parallel: jobs at a time.
    qualities: the qualities to train (default: the family's).
    log: where progress lines go.

  Returns:
    {quality: exit code}.
  """
  todo = [q for q in sorted(qualities or family.qualities)
          if not RunDir(run_dir(out, family, q)).is_finished()]
  log(f"{family.name}: {len(todo)} of {len(qualities or family.qualities)} qualities to train")
  return jobs.run_pinned([(q, train_command(family, q, out),
                           os.path.join(run_dir(out, family, q), "train.log"), None)
                          for q in todo], parallel, log)


def _encoder_block(total: dict, family: SparseFamily, quality: int, kodak: dict) -> dict:
  """The card's "encoder" block of a published sparse model (total: the encoder's
  accounting, tfcae.analysis.accounting)."""
  from tfcae.evaluation import green
  dense = [c for c in zoo.list() if c["family"] == family.dense_family]
  sibling = zoo.card(family.dense_family, quality)
  delta = None  # needs a curve: two dense qualities at least
  if len(dense) >= 2:
    delta = green.delta_psnr_at_bpp(green.curve_of_cards(dense), kodak["bpp"], kodak["psnr-rgb"])
  return {
      "S": total["S"],
      "macs_per_pixel": total["maccs_per_pixel"],
      "macs_per_pixel_reduced": total["maccs_per_pixel_reduced"],
      "macs_reduction": total["macc_reduction"],
      "weight_bytes": {"dense": total["memory_dense_bytes"],
                       "sparse": total["memory_sparse_bytes"],
                       "reduced": total["memory_reduced_bytes"]},
      "peak_activation_bytes_per_pixel": {
          "dense": total["peak_activation_bytes_per_pixel"],
          "reduced": total["peak_activation_bytes_per_pixel_reduced"]},
      "dense_sibling": sibling["name"],
      "dense_sibling_kodak": {k: sibling["kodak"][k] for k in ("bpp", "psnr-rgb")},
      "delta_psnr_at_equal_bpp": delta,
  }


def publish(model_dir: str, family: SparseFamily, quality: int, images: Sequence[str],
            command: str = "", zoo_root: Optional[str] = None) -> dict:
  """Publishes a double-descent run as zoo/<family>/<quality> with its device encoders.

  Args:
    model_dir: the finished bin/train run.
    family: the sparse family it belongs to.
    quality: the dense quality it was warm-started from (and is published as).
    images: the images the card reports on (Kodak).
    command: the training command the card shows.
    zoo_root: the zoo folder (default: the repository's zoo/).

  Returns:
    The card, with its "path", its "encoder" block and its "device_encoders".

  Raises:
    TfcaeError: the run trained dense, or as tfcae.zoo.ladder.publish.
  """
  settings = RunDir(model_dir).read_config_dict()
  if settings.get("sparsity_constraint", "none") == "none":
    raise TfcaeError(f"{model_dir} trained dense: not a sparse model")

  def extend(staging, card, report):
    # Both descents: the rewind resets the optimizer's step count, which summary.json reports.
    card["training"]["steps"] = int(settings["epochs"]) * int(settings["steps_per_epoch"])
    card["encoder"] = _encoder_block(report["encoder"]["total"], family, quality,
                                     card["kodak"])
    card["macs_per_pixel"]["encoder_reduced"] = card["encoder"]["macs_per_pixel_reduced"]
    card["device_encoders"] = device.write_device_encoders(staging, card["name"], images)
    card["device_latency"] = device.latency_block(staging)

  # "model": the deprecated name of "architecture" in configs written before the rename.
  architecture = settings.get("architecture", settings.get("model"))
  return ladder_lib.publish(model_dir, architecture, quality, images, command, zoo_root,
                            family=family.name, extend=extend)


def publish_family(family: SparseFamily, out: str, images: Sequence[str],
                   zoo_root: Optional[str] = None, log: Callable[[str], Any] = print,
                   qualities: Optional[Sequence[int]] = None) -> List[dict]:
  """Publishes the family's finished runs under `out` (train's layout); unfinished ones
  are logged and skipped.

  Args:
    family: the sparse family.
    out: the folder of the families' runs.
    images: the images the cards report on (Kodak).
    zoo_root: the zoo folder (default: the repository's zoo/).
    log: where progress lines go.
    qualities: the qualities to publish (default: the family's).

  Returns:
    The published cards, by quality.

  Raises:
    TfcaeError: as publish.
  """
  cards = []
  for q in sorted(qualities or family.qualities):
    model_dir = run_dir(out, family, q)
    if not RunDir(model_dir).is_finished():
      log(f"{family.name}/{q}: not trained, not published")
      continue
    card = publish(model_dir, family, q, images,
                   ladder_lib.shown_command(train_command(family, q, out)), zoo_root)
    e = card["encoder"]
    delta = e["delta_psnr_at_equal_bpp"]
    log(f"published {card['name']}: {card['kodak']['bpp']:.3f} bpp, "
        f"{card['kodak']['psnr-rgb']:.2f} dB ("
        f"{'no dense curve' if delta is None else f'{delta:+.2f} dB at equal bpp'}), encoder {e['macs_per_pixel'] / 1e3:.1f} -> "
        f"{e['macs_per_pixel_reduced'] / 1e3:.1f} kMAC/px")
    cards.append(card)
  return cards
