"""Shared plumbing of the command-line tools in bin/ (kept thin: parse, call, report).

Every tool prints `error: <one line>` on stderr and exits 1 for a user error (bad input,
bad file, wrong model), never a traceback; `--debug` re-raises to show one.
"""
import dataclasses
import os
import sys

# Quiet TensorFlow's C++ start-up chatter unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from tfcae import TfcaeError  # noqa: E402

__all__ = ["define_flags_from_dataclass", "dataclass_from_flags", "define_model_flags",
           "model_dir_from_flags", "define_max_pixels_flag", "fail", "run"]

flags.DEFINE_bool("debug", False, "Show full tracebacks instead of one-line errors.")


def define_flags_from_dataclass(cls, skip=(), flag_values=flags.FLAGS):
  """Defines one absl flag per dataclass field (name, type, default, help, choices)."""
  kw = {"flag_values": flag_values}
  for f in dataclasses.fields(cls):
    if f.name in skip:
      continue
    help_text = f.metadata.get("help", f.name)
    choices = f.metadata.get("choices")
    if choices:
      flags.DEFINE_enum(f.name, f.default, list(choices), help_text, **kw)
    elif f.type in (bool, "bool"):
      flags.DEFINE_bool(f.name, f.default, help_text, **kw)
    elif f.type in (int, "int"):
      flags.DEFINE_integer(f.name, f.default, help_text, **kw)
    elif f.type in (float, "float"):
      flags.DEFINE_float(f.name, f.default, help_text, **kw)
    else:
      flags.DEFINE_string(f.name, f.default, help_text, **kw)


def dataclass_from_flags(cls, flag_values=flags.FLAGS):
  values = flag_values.flag_values_dict()
  return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})


def define_model_flags(what="an exported model (bin/train output)"):
  """--model_dir, or a zoo model by --model and --quality (tfcae.zoo)."""
  flags.DEFINE_string("model_dir", None, f"Directory of {what}.")
  flags.DEFINE_string("model", None, "A zoo model's family (tfcae.zoo.list(): factorized, "
                      "factorized-msssim; README 'Model zoo'), with --quality, instead of "
                      "--model_dir.")
  flags.DEFINE_integer("quality", None, "The zoo model's quality (1 = lowest rate).")


def model_dir_from_flags(required=True):
  """The model directory --model_dir or --model/--quality name (None if neither is given
  and not `required`); a one-line TfcaeError for a bad combination or an unknown model."""
  from tfcae import zoo
  f = flags.FLAGS
  if f.model is not None or f.quality is not None:
    if f.model_dir:
      raise TfcaeError("give either --model_dir or --model/--quality, not both")
    if f.model is None or f.quality is None:
      raise TfcaeError("--model and --quality go together")
    return zoo.path(f.model, f.quality)
  if f.model_dir:
    return zoo.resolve(f.model_dir)
  if required:
    raise TfcaeError("give --model_dir, or a zoo model with --model and --quality")
  return None


def define_max_pixels_flag(what):
  from tfcae.io.fileio import DEFAULT_MAX_PIXELS
  flags.DEFINE_integer("max_pixels", DEFAULT_MAX_PIXELS,
                       f"Refuse {what} of more pixels than this (default: Pillow's "
                       "decompression-bomb limit, PIL.Image.MAX_IMAGE_PIXELS); 0: no limit.",
                       lower_bound=0)


def fail(message, code=1):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(code)


def run(main):
  """absl.app.run with tfcae's error policy.

  Tools that use TensorFlow must import it at module level, before calling this: when
  TensorFlow is first imported inside absl's app.run, TFC's GDN layers fail to build
  ("initial_value could not be lifted out of a tf.function").
  """

  def wrapped(argv):
    if not flags.FLAGS.debug:
      # absl defaults to INFO under app.run; TFC's offset-heuristic warning fires on every
      # validation trace and is expected here.
      from absl import logging
      logging.set_verbosity(logging.ERROR)
    if len(argv) > 1:
      fail(f"unexpected arguments: {' '.join(argv[1:])} (all options are --flags)")
    try:
      result = main()
    except (TfcaeError, ValueError, FileNotFoundError, PermissionError, IsADirectoryError) as e:
      if flags.FLAGS.debug:
        raise
      fail(str(e).splitlines()[0] if str(e) else e.__class__.__name__)
    except OSError as e:  # the environment: a full disk, a read-only or failing file system
      if flags.FLAGS.debug:
        raise
      where = f"{e.filename}: " if getattr(e, "filename", None) else ""
      reason = e.strerror or (str(e).splitlines()[0] if str(e) else e.__class__.__name__)
      fail(f"{where}{reason}")
    except KeyboardInterrupt:
      fail("interrupted", 130)
    return result

  app.run(wrapped)
