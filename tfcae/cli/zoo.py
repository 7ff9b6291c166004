"""The model zoo: list it, or train a rate ladder and publish it into zoo/ (`make zoo`).

  bin/zoo --list
  bin/zoo --refresh [--ladder=factorized-msssim]    # shipped models, today's serving graph
  bin/zoo --ladder=factorized --out=runs/zoo --images='../shared/data/kodak/*.png'
  bin/zoo --ladder=factorized-l11 --out=runs/zoo   # double descent from factorized/3 and /5
  bin/zoo --ladder=meanscale-vbr --out=runs/zoo    # one variable-rate model (zoo/meanscale-vbr)
  bin/zoo --device_encoders --ladder=factorized --qualities=3,5   # ship their TFLite encoders
      [--qat_steps=1000 --qat_images=../shared/data/train]
  bin/zoo --device_latency --ladder=factorized-l11    # their latency on this machine, for the cards

Training is resumable: run the same command again after an interruption. Each quality is
a bin/train run (two at a time, one core each; see tfcae/zoo/ladder.py); once all have
trained, each is evaluated on --images and copied with its card to zoo/<arch>/<quality>.
"""
import os

from absl import flags

from tfcae import cli
import tensorflow as tf  # noqa: F401  (before cli.run: see its docstring)
from tfcae import TfcaeError, zoo
from tfcae.io.fileio import expand_images
from tfcae.zoo import device, ladder, sparse, vbr

__all__ = ["main"]

flags.DEFINE_bool("list", False, "Print the shipped models and exit.")
FAMILIES = list(ladder.LADDERS) + list(sparse.SPARSE_FAMILIES) + list(
    vbr.VARIABLE_RATE_FAMILIES)
flags.DEFINE_enum("ladder", None, FAMILIES, "The ladder (or sparse family, tfcae/zoo/sparse.py, "
                  "or variable-rate family, tfcae/zoo/vbr.py) to train and publish.")
flags.DEFINE_string("out", "runs/zoo", "Training directories (one per quality).")
flags.DEFINE_integer("parallel", 2, "Trainings at once, each pinned to one core.")
flags.DEFINE_list("qualities", None, "Only these qualities (default: the whole ladder).")
flags.DEFINE_string("images", "../shared/data/kodak/*.png", "Images the cards report on.")
flags.DEFINE_bool("publish", True, "Copy the trained qualities into zoo/ with their cards.")
flags.DEFINE_bool("refresh", False, "Write the shipped models (of --ladder, or all) again "
                  "with today's serving graph, in place: same weights, tables, fingerprint "
                  "and files (checked on --refresh_image).")
flags.DEFINE_bool("device_encoders", False, "Write float32 and int8 TFLite encoders into "
                  "the shipped models of --ladder (--qualities, else all) and measure them "
                  "on --images for their cards (tfcae/zoo/device.py).")
flags.DEFINE_bool("device_latency", False, "Measure the device encoders of the shipped "
                  "models of --ladder (--qualities) again on this machine, for their cards.")
flags.DEFINE_integer("qat_steps", 1000, "--device_encoders: quantization-aware fine-tuning "
                     "steps of the int8 encoder (tfcae export --qat_steps).", lower_bound=0)
flags.DEFINE_string("qat_images", "../shared/data/train", "--device_encoders: the "
                    "fine-tuning's training images (the zoo's training set).")
flags.DEFINE_string("refresh_image", os.path.join(ladder.ROOT, "data/sample/eval/kodim23.png"),
                    "The image --refresh codes with the old and the new SavedModel.")
FLAGS = flags.FLAGS


def _images():
  images = expand_images(FLAGS.images)
  if not images:
    raise TfcaeError(f"no images found for {FLAGS.images!r}")
  return images


def main():
  if FLAGS.list:
    print(ladder.card_table(zoo.list()))
    return
  if FLAGS.refresh:
    for card in zoo.list():
      if FLAGS.ladder in (None, card["family"]):
        fresh = ladder.refresh(card["path"], FLAGS.refresh_image)
        print(f"refreshed {fresh['name']}: {fresh['bytes'] / 1e6:.2f} MB")
    return
  if not FLAGS.ladder:
    raise TfcaeError("give --ladder (one of " + ", ".join(FAMILIES) + ") or --list")
  qualities = [int(q) for q in FLAGS.qualities] if FLAGS.qualities else None
  if FLAGS.device_encoders or FLAGS.device_latency:
    todo = qualities or zoo.qualities(FLAGS.ladder)
    cards = [device.ship(FLAGS.ladder, q, _images(), FLAGS.qat_steps, FLAGS.qat_images)
             if FLAGS.device_encoders else device.measure(FLAGS.ladder, q) for q in todo]
    print(ladder.card_table(cards))
    return
  if FLAGS.ladder in vbr.VARIABLE_RATE_FAMILIES:
    spec = vbr.VARIABLE_RATE_FAMILIES[FLAGS.ladder]
    codes = vbr.train(spec, FLAGS.out)
    publish = vbr.publish_family
  elif FLAGS.ladder in sparse.SPARSE_FAMILIES:
    spec = sparse.SPARSE_FAMILIES[FLAGS.ladder]
    codes = sparse.train(spec, FLAGS.out, FLAGS.parallel, qualities)
    publish = sparse.publish_family
  else:
    spec = ladder.for_this_cpu(ladder.LADDERS[FLAGS.ladder])
    if spec is not ladder.LADDERS[FLAGS.ladder]:
      print("this CPU has no AVX512-BF16 or AMX: the anchors train in float32 (bf16 would run "
            "emulated, ≈ 11x slower); the cards will say so", flush=True)
    codes = ladder.train(spec, FLAGS.out, FLAGS.parallel, qualities)
    publish = ladder.publish_ladder
  failed = [q for q, code in codes.items() if code != 0]
  if failed:
    raise TfcaeError(f"training failed for qualities {failed}; see "
                     f"{FLAGS.out}/{spec.name}/<quality>/train.log and re-run to resume")
  if FLAGS.publish:
    cards = publish(spec, FLAGS.out, _images(), qualities=qualities)
    print(ladder.card_table(cards))
