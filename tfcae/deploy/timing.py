"""Wall-clock timing of calls: the one loop the evaluation, the codec tools and the benches
share, so that every latency in docs/ is measured the same way.

  timed(fn, *args)                   (result, seconds) of one call: the per-image encoding
                                     and decoding times of bin/evaluate and classical sweeps
  seconds_per_call(fn, repeats)      median (or fastest) of `repeats` timed calls, after
                                     `warmup` untimed ones (tracing, graph optimisation and
                                     allocation happen in the first calls)
  interleaved_seconds(fns, repeats)  the same for several functions whose calls alternate
                                     (f, g, f, g, …), so all of them see the same background
                                     load: the fair way to compare two encoders on a busy
                                     machine

Seconds come from time.perf_counter (monotonic, the highest resolution available).
"""
import statistics
import time

__all__ = ["STATISTICS", "timed", "seconds_per_call", "interleaved_seconds"]

# How repeated timings become one number: the median is robust to the odd slow call (a
# background job, a page fault); the minimum estimates the unloaded cost.
STATISTICS = {"median": statistics.median, "min": min}


def timed(fn, *args, **kwargs):
  """(fn(*args, **kwargs), seconds the call took)."""
  start = time.perf_counter()
  result = fn(*args, **kwargs)
  return result, time.perf_counter() - start


def interleaved_seconds(functions, repeats, warmup=1, statistic="median"):
  """Seconds per call of each of `functions` (called without arguments): `warmup` untimed
  calls of each (all of the first function's, then the next's), then `repeats` rounds
  that call every function once in turn; `statistic` ("median" or "min") of each one's
  `repeats` times. Returns a list of floats, in the order of `functions`."""
  if statistic not in STATISTICS:
    raise ValueError(f"unknown statistic {statistic!r}; choose one of {', '.join(STATISTICS)}")
  if repeats < 1:
    raise ValueError(f"repeats must be >= 1, got {repeats}")
  functions = list(functions)
  for fn in functions:
    for _ in range(warmup):
      fn()
  times = [[] for _ in functions]
  for _ in range(repeats):
    for fn, record in zip(functions, times):
      record.append(timed(fn)[1])
  return [float(STATISTICS[statistic](t)) for t in times]


def seconds_per_call(fn, repeats, warmup=1, statistic="median"):
  """Seconds per call of `fn` (no arguments): see interleaved_seconds."""
  return interleaved_seconds([fn], repeats, warmup, statistic)[0]
