"""The command line: `tfcae <command> [--flags]` and bin/<command>, one start-up and one
error policy for every tool (also bench/*.py, through `run`).

Every tool prints `error: <one line>` on stderr and exits 1 for a user error (bad input,
bad file, wrong model), never a traceback; `--debug` re-raises to show one. Each command
is a module of this package (flags and `main`), imported only when that command runs:
absl flags are global, so two commands' modules cannot share a process.
"""
import ast
import dataclasses
import importlib.util
import os
import sys

from absl import app, flags

from tfcae import TfcaeError

# Quiet TensorFlow's C++ start-up chatter unless the user asked for it: before anything
# imports TensorFlow (absl and tfcae's __init__ do not), which is why tools import this
# module first.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__all__ = ["COMMANDS", "define_flags_from_dataclass", "dataclass_from_flags",
           "define_model_flags", "model_dir_from_flags", "resolve_model", "resolve_models",
           "is_variable_rate",
           "check_output",
           "define_max_pixels_flag", "define_tile_flag", "fail", "run", "run_command", "main"]

# One module of this package per command (bin/<command> runs the same).
COMMANDS = ("train", "compress", "decompress", "evaluate", "export", "analyze", "zoo", "plot",
            "compare", "prepare_data", "convert_integer", "train_mnist", "bench")

flags.DEFINE_bool("debug", False, "Show full tracebacks instead of one-line errors.")


def define_flags_from_dataclass(cls, skip=(), flag_values=flags.FLAGS):
  """Defines one absl flag per dataclass field (name, type, default, help, choices), and
  an alias for each old name in the class's `RENAMED` ({old: new}, if it has one)."""
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
  for old, new in getattr(cls, "RENAMED", {}).items():
    if new not in skip:
      flags.DEFINE_alias(old, new, **kw)


def dataclass_from_flags(cls, flag_values=flags.FLAGS):
  """The dataclass of the parsed flags; a one-line warning on stderr per old flag name used
  (the alias has already set the new one)."""
  for old, new in getattr(cls, "RENAMED", {}).items():
    if old in flag_values and flag_values[old].present:
      print(f"warning: --{old} is deprecated, use --{new}", file=sys.stderr)
  values = flag_values.flag_values_dict()
  return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})


# --- model references ------------------------------------------------------------------
def define_model_flags(what="an exported model (bin/train output)"):
  """--model (a directory or zoo:<family>/<quality>), --model_dir, and --quality (with
  --model=<family>)."""
  flags.DEFINE_string("model", None, f"The model: a directory of {what}, or a zoo model "
                      "zoo:<family>/<quality> (tfcae.zoo.list(); docs/zoo.md), or a "
                      "zoo family with --quality.")
  flags.DEFINE_string("model_dir", None, f"Directory of {what} (as --model=DIR).")
  flags.DEFINE_float("quality", None, "With --model=<family>: the zoo model's quality "
                     "(1 = lowest rate); for a variable-rate model (e.g. --model="
                     "meanscale-vbr, or its --model_dir), the quality it codes at, any "
                     "number in [1, K] (2.7 is valid).")


def resolve_model(reference, quality=None):
  """The directory of a model reference: a directory, `zoo:<family>/<quality>`, or (with
  `quality`) a zoo family. A one-line TfcaeError listing the zoo for one that names
  nothing."""
  from tfcae.io import zoo_index
  spec = zoo_index.parse_spec(reference)
  if spec is not None:
    if quality is not None:
      raise TfcaeError(f"--quality goes with --model=<family>, not --model={reference}")
    return zoo_index.path(*spec)
  if quality is not None or zoo_index.is_variable_rate(reference):
    return zoo_index.path(reference, quality)
  if os.path.isdir(reference):
    return reference
  # Neither a folder nor a zoo name: say what the zoo holds (qualities() raises the list).
  if reference in {card["family"] for card in zoo_index.list()}:
    raise TfcaeError(f"--model={reference} is a zoo family: add --quality, or give "
                     f"--model=zoo:{reference}/<quality> (qualities "
                     f"{','.join(str(q) for q in zoo_index.qualities(reference))})")
  try:
    zoo_index.qualities(reference)
  except TfcaeError as e:
    raise TfcaeError(f"--model={reference}: no such model directory, and {e}") from None
  raise TfcaeError(f"--model={reference}: no such model directory")


def resolve_models(references, qualities=None):
  """The directories of several model references (resolve_model); a zoo family alone
  stands for its whole ladder, or for `qualities` of it (then it must be the only one)."""
  from tfcae.io import zoo_index
  if qualities:
    if len(references) != 1:
      raise TfcaeError("--quality goes with one zoo family: --model=<family> --quality=1,2")
    return [resolve_model(references[0], q) for q in qualities]
  dirs = []
  for reference in references:
    family = (zoo_index.parse_spec(reference) is None and not os.path.isdir(reference) and
              reference in {card["family"] for card in zoo_index.list()})
    dirs += ([zoo_index.path(reference, q) for q in zoo_index.qualities(reference)] if family
             else [resolve_model(reference)])
  return dirs


def model_dir_from_flags(required=True):
  """The model directory of --model (a reference: resolve_model) or --model_dir (None if
  neither is given and not `required`); a one-line TfcaeError for a bad combination or a
  reference that names nothing."""
  from tfcae.io import zoo_index
  f = flags.FLAGS
  if f.model is not None and f.model_dir:
    raise TfcaeError("give either --model or --model_dir, not both")
  if f.model is not None:
    if zoo_index.parse_spec(f.model) is not None or os.path.isdir(f.model):
      folder = resolve_model(f.model)  # --quality: a variable-rate model's coding quality
      if f.quality is not None and not is_variable_rate(folder):
        raise TfcaeError(f"--quality goes with --model=<family>, not --model={f.model}")
      return folder
    return resolve_model(f.model, f.quality)
  if f.model_dir:
    folder = zoo_index.resolve(f.model_dir)
    if f.quality is not None and not is_variable_rate(folder):
      raise TfcaeError("--quality goes with a zoo family (--model=<family> --quality=<q>) "
                       "or a variable-rate model")
    return folder
  if f.quality is not None:
    raise TfcaeError("--quality goes with a zoo family: --model=<family> --quality=<q>")
  if required:
    raise TfcaeError("give --model=DIR or --model=zoo:<family>/<quality> (or --model_dir)")
  return None


def is_variable_rate(reference) -> bool:
  """Whether a model reference (resolve_model) names one variable-rate model; False for
  one that names no model."""
  from tfcae.serving import open_model
  try:
    return open_model(resolve_model(reference)).rate_points is not None
  except TfcaeError:
    return False


def coding_quality_from_flags(folder):
  """--quality when the model in `folder` is variable-rate (the quality it codes at),
  else None (--quality then picked the zoo model)."""
  return flags.FLAGS.quality if is_variable_rate(folder) else None


# --- outputs ---------------------------------------------------------------------------
def check_output(input_path, output_path, suffixes, what, flag="--output"):
  """Refuses (one-line TfcaeError) an output that would destroy the input or that names a
  format the tool does not write; call it before writing anything.

  Args:
    input_path: the file the tool reads, or the model directory it reads (then the
      directory and the existing files inside it are refused too).
    output_path: the file the tool is to write.
    suffixes: the extensions the tool writes (".tfcae"); the first one is the hint.
    what: what the tool writes, for the message ("compress writes .tfcae files").
    flag: the output's flag, for the message.
  """
  real_in, real_out = os.path.realpath(input_path), os.path.realpath(output_path)
  same = real_in == real_out or (os.path.exists(input_path) and os.path.exists(output_path)
                                 and os.path.samefile(input_path, output_path))
  if same:
    raise TfcaeError(f"{flag}={output_path} is the input {input_path}: refusing to "
                     "overwrite it")
  if os.path.isdir(input_path) and os.path.lexists(output_path) and (
      real_out.startswith(os.path.join(real_in, ""))):
    raise TfcaeError(f"{flag}={output_path} is a file of the model {input_path}: refusing "
                     "to overwrite it")
  if os.path.isdir(output_path):
    raise TfcaeError(f"{flag}={output_path} is a directory; give a file name")
  stem, ext = os.path.splitext(output_path)
  if not ext or ext.lower() not in suffixes:
    hint = f"{output_path if not ext else stem}{suffixes[0]}"
    found = f"not {ext}" if ext else "and the name has no extension"
    raise TfcaeError(f"{flag}={output_path}: {what}, {found} (e.g. {flag}={hint})")


def define_max_pixels_flag(what):
  from tfcae.io.fileio import DEFAULT_MAX_PIXELS
  flags.DEFINE_integer("max_pixels", DEFAULT_MAX_PIXELS,
                       f"Refuse {what} of more pixels than this (default: Pillow's "
                       "decompression-bomb limit, PIL.Image.MAX_IMAGE_PIXELS); 0: no limit.",
                       lower_bound=0)


def define_tile_flag():
  from tfcae.models.tiling import AUTO_ABOVE_PIXELS, DEFAULT_TILE
  flags.DEFINE_integer("tile", None, "Run the transforms in core tiles of this many pixels "
                       "(with halos of their receptive field; the same file): memory bounded "
                       f"by the tile, not the image. Default: tiles of {DEFAULT_TILE} for "
                       f"images of more than {AUTO_ABOVE_PIXELS} pixels; 0: the whole "
                       "image at once.", lower_bound=0)


# --- running ---------------------------------------------------------------------------
def fail(message, code=1):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(code)


def run(main, argv=None):
  """absl.app.run with tfcae's error policy: `main()` takes no arguments (all options are
  flags); argv defaults to sys.argv.

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

  app.run(wrapped, argv=argv)


def summary(command):
  """The first line of a command module's docstring, read without importing it (that
  would import TensorFlow)."""
  spec = importlib.util.find_spec(f"{__name__}.{command}")
  with open(spec.origin, encoding="utf-8") as f:
    doc = ast.get_docstring(ast.parse(f.read())) or ""
  return doc.splitlines()[0] if doc else ""


def usage():
  lines = ["usage: tfcae <command> [--flags]    (tfcae <command> --help: its flags)", "",
           "commands:"]
  lines += [f"  {name:16s}{summary(name)}" for name in COMMANDS]
  return "\n".join(lines)


def run_command(command, args):
  """Runs one command as `tfcae <command> args...` (bin/<command> calls this too, so both
  give the same output, help included)."""
  if command not in COMMANDS:
    fail(f"unknown command {command!r}; commands: {', '.join(COMMANDS)}")
  module = importlib.import_module(f"{__name__}.{command}")  # defines its flags
  # absl's --help prints __main__'s docstring and the flags it files under sys.argv[0]:
  # file the command's flags (and the shared ones it defined here) under its name.
  prog = f"tfcae {command}"
  sys.argv = [prog, *args]
  sys.modules["__main__"].__doc__ = module.__doc__
  for name in (module.__name__, __name__):
    for flag in flags.FLAGS.get_flags_for_module(name):
      flags.FLAGS.register_flag_by_module(prog, flag)
  run(module.main, sys.argv)


def main(argv=None):
  """The `tfcae` console script: `tfcae <command> [--flags]`."""
  argv = sys.argv[1:] if argv is None else argv
  if not argv or argv[0] in ("-h", "--help", "-help", "help"):
    print(usage())
    sys.exit(0 if argv else 1)
  run_command(argv[0], argv[1:])
