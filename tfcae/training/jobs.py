"""Running training jobs side by side, each pinned to its own CPU core.

On a 2-core machine two single-threaded trainings get more done than one that spreads
over both (TensorFlow's intra-op scaling on 2 cores is well under 2×), and pinning gives
every job the same CPU, which an equal-wall-clock comparison needs (bench/recipe.py).
"""
import os
import shutil
import subprocess
import sys
import time

__all__ = ["run_pinned", "free_ports", "python"]


def run_pinned(jobs, parallel=2, log=print):
  """Runs jobs = [(name, argv, log_path, ready)] with at most `parallel` at once, each on
  core k (taskset -c k) when parallel > 1. `ready()` says whether a job may start (its
  inputs exist); jobs start in order among the ready ones. Returns {name: exit code}."""
  pending = list(jobs)
  running = {}  # core -> (name, Popen, log file)
  codes = {}
  pin = parallel > 1 and shutil.which("taskset") and len(os.sched_getaffinity(0)) >= parallel
  while pending or running:
    for core in range(parallel):
      if core in running:
        continue
      job = next((j for j in pending if j[3] is None or j[3]()), None)
      if job is None:
        break
      pending.remove(job)
      name, argv, log_path, _ = job
      os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
      out = open(log_path, "a", encoding="utf-8")
      cmd = (["taskset", "-c", str(core)] if pin else []) + list(argv)
      log(f"{time.strftime('%H:%M:%S')} start {name}" + (f" on core {core}" if pin else ""))
      running[core] = (name, subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT), out)
    if not running and pending:  # nothing can start: a job's inputs failed
      for name, *_ in pending:
        codes[name] = None
        log(f"skip {name}: what it starts from is missing")
      break
    time.sleep(2)
    for core, (name, proc, out) in list(running.items()):
      if proc.poll() is not None:
        out.close()
        codes[name] = proc.returncode
        log(f"{time.strftime('%H:%M:%S')} end {name} (exit {proc.returncode})")
        del running[core]
  return codes


def free_ports(count):
  """`count` TCP ports free on localhost now (for a multi-worker TF_CONFIG on one machine:
  tests/test_multi_worker.py, bench/scaling.py)."""
  import socket
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("localhost", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def python(script, *args):
  """argv running a repository script with this interpreter."""
  return [sys.executable, script, *args]
