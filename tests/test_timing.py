"""tfcae.deploy.timing: the one timing loop (warm-up, interleaving, median or fastest)."""
import pytest

from tfcae.deploy import timing


class Clock:
  """A fake perf_counter that advances by the durations the timed functions 'take'."""

  def __init__(self):
    self.now = 0.

  def __call__(self):
    return self.now


@pytest.fixture
def clock(monkeypatch):
  c = Clock()
  monkeypatch.setattr(timing.time, "perf_counter", c)
  return c


def sleeper(clock, durations, calls):
  """A function whose n-th call takes durations[n] seconds (and is logged in `calls`)."""
  def fn():
    clock.now += durations[len(calls)]
    calls.append(fn)
  return fn


def test_timed_returns_result_and_seconds(clock):
  def work(a, b=0):
    clock.now += 0.25
    return a + b
  assert timing.timed(work, 2, b=3) == (5, 0.25)


def test_seconds_per_call_warms_up_then_takes_the_median_or_the_fastest(clock):
  calls = []
  # warm-up 10 s (not counted), then 3, 1, 2
  fn = sleeper(clock, [10., 3., 1., 2.], calls)
  assert timing.seconds_per_call(fn, 3) == 2.
  assert len(calls) == 4
  calls.clear()
  fn = sleeper(clock, [3., 1., 2.], calls)
  assert timing.seconds_per_call(fn, 3, warmup=0, statistic="min") == 1.


def test_interleaved_calls_alternate_after_all_warm_ups(clock):
  order = []
  durations = {"f": iter([9., 9., 1., 2., 3., 4.]), "g": iter([9., 9., 10., 20., 30., 40.])}

  def make(name):
    def fn():
      clock.now += next(durations[name])
      order.append(name)
    return fn
  f, g = make("f"), make("g")
  assert timing.interleaved_seconds([f, g], 4, warmup=2) == [2.5, 25.]
  assert "".join(order) == "ffgg" + "fg" * 4


def test_errors():
  with pytest.raises(ValueError, match="unknown statistic"):
    timing.seconds_per_call(lambda: None, 3, statistic="mean")
  with pytest.raises(ValueError, match="repeats"):
    timing.seconds_per_call(lambda: None, 0)
