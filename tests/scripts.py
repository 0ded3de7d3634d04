"""Runs the repository's scripts in fresh Python processes for the tests
(each gets its own JAX runtime: device counts, distributed init, kill -9)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(args, *, env=None, timeout=600) -> subprocess.CompletedProcess:
  """``python *args`` with the repository root on ``PYTHONPATH``; output
  captured as text, never raises on a non-zero exit."""
  env = dict(os.environ if env is None else env)
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  return subprocess.run(
    [sys.executable, *args],
    capture_output=True,
    text=True,
    env=env,
    timeout=timeout,
    check=False,
  )


def free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def run_processes(
  args, count: int, *, env=None, timeout=600
) -> list[tuple[int, str]]:
  """``python *args`` as ``count`` processes of one ``jax.distributed`` run
  on loopback (gloo), each with ``--process_id``; ``(status, stderr)`` of
  each, never raising on a non-zero exit.

  Each process compiles its own programs: with a shared persistent cache
  one process may load what the other is still compiling, and the two then
  wait on each other's collectives.
  """
  env = dict(os.environ if env is None else env)
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  port = free_port()
  workers = [
    subprocess.Popen(
      [
        sys.executable,
        *args,
        f"--coordinator_address=127.0.0.1:{port}",
        f"--num_processes={count}",
        f"--process_id={i}",
      ],
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
      env=env,
    )
    for i in range(count)
  ]
  errors = [worker.communicate(timeout=timeout)[1] for worker in workers]
  return [(w.returncode, e) for w, e in zip(workers, errors, strict=True)]


def kill_after_checkpoint(
  args, workdir, step: int, timeout: float = 300
) -> None:
  """Runs ``python *args`` and kills it with SIGKILL once ``workdir`` holds
  checkpoint ``step``.

  The run reads the compilation cache but writes nothing to it: killed
  mid-write, it would leave a torn entry.
  """
  env = dict(
    os.environ,
    PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="1e9",
  )
  process = subprocess.Popen(
    [sys.executable, *args],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
    env=env,
  )
  deadline = time.time() + timeout
  while not os.path.exists(os.path.join(workdir, "checkpoints", str(step))):
    assert process.poll() is None, "run ended before it could be killed"
    assert time.time() < deadline, f"no checkpoint {step} in {timeout} s"
    time.sleep(0.01)
  process.send_signal(signal.SIGKILL)
  assert process.wait() == -signal.SIGKILL
