"""Preemption: SIGTERM during a step, an evaluation or a save stops every
process at one agreed step, saves it, and the same command resumes to the
model of a run that never stopped, bit for bit.

The signals come from ``fault_hooks`` (at a chosen point, for
determinism) or from outside (``kill -TERM`` at a random time).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import fault_hooks
import numpy as np
import pytest
from finished_run import (
  FLAGS,
  STEPS,
  TRAIN,
  _leaves,
  _logged_once,
  _same_final_model,
  _train,
)
from scripts import ROOT, run_processes, run_python

from flowjax_gen import checkpoint, runs
from flowjax_gen.training import preemption, reporting, workdir_lock

pytestmark = pytest.mark.xdist_group("faults")

WORKER = os.path.join(ROOT, "tests", "fault_worker.py")


def _preempted(workdir, where: str, step: int, monkeypatch) -> int:
  """Trains with a signal at ``where`` of ``step``; the step it stopped at."""
  with monkeypatch.context() as patches:
    fault_hooks.install(where, step, patch=patches.setattr)
    with pytest.raises(preemption.Preempted) as stopped:
      _train(workdir)
  assert str(stopped.value) == (
    f"preempted at step {stopped.value.step}; the same command resumes"
  )
  assert not (workdir / workdir_lock.LOCK_FILE).exists()
  checkpoint.Checkpointer(str(workdir)).verify(stopped.value.step)
  return stopped.value.step


def test_signals_mid_save_mid_evaluation_and_mid_step_lose_nothing(
  finished, tmp_path, monkeypatch
):
  """One run preempted three times, then finished by the same call: the
  finished run's model, metrics log and best checkpoint."""
  workdir = tmp_path / "run"
  # Two SIGTERMs while step 2 saves: step 3 (computed by then) is saved.
  assert _preempted(workdir, "save", 2, monkeypatch) == 3
  # During the evaluation at step 4: step 4 is saved, to be evaluated first
  # on resume.
  assert _preempted(workdir, "evaluation", 4, monkeypatch) == 4
  assert [r["step"] for r in reporting.read_metrics(workdir)] == [1, 2, 3, 4]
  # While step 5 computes: step 5 is saved.
  assert _preempted(workdir, "step", 5, monkeypatch) == 5
  result = _train(workdir)
  assert result["bits_per_dim"] == finished[1]["bits_per_dim"]
  _same_final_model(workdir, finished)
  _logged_once(workdir)
  # The evaluation redone after the preemption ranked step 4 as the
  # finished run's did.
  assert _best_steps(workdir) == _best_steps(finished[0])


def _best_steps(workdir) -> list[str]:
  return sorted(p for p in os.listdir(workdir / "best") if p.isdigit())


def _flags(workdir, steps: int = STEPS) -> list[str]:
  return [*FLAGS, f"--config.num_steps={steps}", f"--workdir={workdir}"]


def _env(**extra) -> dict:
  return dict(os.environ, PYTHONPATH=ROOT, **extra)


def _model(workdir) -> tuple[int, list[np.ndarray]]:
  _, state, step = runs.load_trained(str(workdir))
  return step, _leaves(state)


def _assert_same_model(workdir, reference) -> None:
  step, leaves = _model(workdir)
  want_step, want = _model(reference)
  assert step == want_step
  for got, expected in zip(leaves, want, strict=True):
    np.testing.assert_array_equal(got, expected)


@pytest.mark.slow
def test_sigterm_from_outside_and_a_second_job_on_the_workdir(tmp_path):
  """``kill -TERM`` at a random step of ``train.py``: status 75, one line,
  the agreed step saved; a second job started meanwhile is refused without
  writing; the same command resumes to the uninterrupted run's state."""
  steps = 60
  straight = run_python([TRAIN, *_flags(tmp_path / "straight", steps)])
  assert straight.returncode == 0, straight.stderr[-3000:]

  workdir = tmp_path / "run"
  first = subprocess.Popen(
    [sys.executable, WORKER, *_flags(workdir, steps)],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    env=_env(FLOWJAX_TEST_STEP_SECONDS="0.2"),
  )
  lock = workdir / workdir_lock.LOCK_FILE
  deadline = time.time() + 300
  while not (workdir / "metrics.jsonl").exists():
    assert first.poll() is None, first.communicate()[1][-3000:]
    assert time.time() < deadline
    time.sleep(0.05)
  holder = json.load(open(lock))
  assert holder["pid"] == first.pid

  second = run_python([TRAIN, *_flags(workdir, steps)])
  assert second.returncode == 1
  assert "Traceback" not in second.stderr
  last = second.stderr.strip().splitlines()[-1]
  assert last.startswith("error: WorkdirInUseError: workdir "), last
  assert f"pid {first.pid}" in last and "--take_over_workdir" in last
  assert first.poll() is None, "the first job ended before the test could act"

  time.sleep(np.random.default_rng().uniform(0.0, 3.0))
  first.send_signal(signal.SIGTERM)
  _, err = first.communicate(timeout=60)
  assert first.returncode == preemption.EXIT_PREEMPTED, err[-3000:]
  line = err.strip().splitlines()[-1]
  assert line.startswith("preempted at step ") and line.endswith(
    "; the same command resumes"
  ), line
  stopped = int(line.split()[3].rstrip(";"))
  assert 0 < stopped < steps
  checkpoint.Checkpointer(str(workdir)).verify(stopped)
  assert not lock.exists()

  resumed = run_python([TRAIN, *_flags(workdir, steps)])
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  _assert_same_model(workdir, tmp_path / "straight")
  assert _logged(workdir) == _logged(tmp_path / "straight")


def _logged(workdir) -> list[tuple[int, str]]:
  return [(r["step"], r["split"]) for r in reporting.read_metrics(workdir)]


def _two_processes(workdir, signal_at: str = "") -> list[tuple[int, str]]:
  """The fault worker as two processes (2 CPU devices each, gloo) on
  ``workdir``; ``(status, stderr)`` of each."""
  return run_processes(
    [
      WORKER,
      *_flags(workdir),
      "--config.eval_batch_size=4",
      "--num_cpu_devices=2",
    ],
    2,
    env=dict(os.environ, FLOWJAX_TEST_SIGNAL=signal_at),
  )


@pytest.mark.slow
def test_two_processes_agree_on_the_step_and_resume_bit_identically(tmp_path):
  """Only process 1 is signalled (during a save, an evaluation, a step);
  both stop at one step within one of the signal, save it together, and
  the same command resumes to the uninterrupted two-process run's state."""
  for status, err in _two_processes(tmp_path / "straight"):
    assert status == 0, err[-3000:]
  workdir = tmp_path / "run"
  for where, step in (("save", 2), ("evaluation", 4), ("step", 5)):
    results = _two_processes(workdir, f"{where}:{step}:1")
    for status, err in results:
      assert status == preemption.EXIT_PREEMPTED, (where, err[-3000:])
    line = results[0][1].strip().splitlines()[-1]
    assert line.startswith("preempted at step "), line
    stopped = int(line.split()[3].rstrip(";"))
    first_possible = step + 1 if where == "save" else step
    assert first_possible <= stopped <= first_possible + 1, (where, stopped)
    checkpoint.Checkpointer(str(workdir)).verify(stopped)
  for status, err in _two_processes(workdir):
    assert status == 0, err[-3000:]
  _assert_same_model(workdir, tmp_path / "straight")
  assert _logged(workdir) == _logged(tmp_path / "straight")
