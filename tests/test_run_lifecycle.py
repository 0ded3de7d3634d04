"""A run's life beyond one uninterrupted job: extended by raising
``num_steps``, stopped by a full disk in one line and resumed, and the
scripts' refusals in one line each."""

from __future__ import annotations

import contextlib
import glob
import io
import os
import subprocess
import sys

import pytest
from finished_run import STEPS, TRAIN, _config, _copy, _train
from scripts import ROOT, run_python

from flowjax_gen import checkpoint
from flowjax_gen.training import reporting
from flowjax_gen.training.state import learning_rate_schedule

pytestmark = pytest.mark.xdist_group("faults")

EVALUATE = os.path.join(ROOT, "experiments", "evaluate.py")
LATENT = os.path.join(ROOT, "experiments", "latent_arithmetic.py")
WORKER = os.path.join(ROOT, "tests", "fault_worker.py")


def test_raising_num_steps_extends_a_run_and_keeps_every_step(
  finished, tmp_path
):
  workdir = _copy(finished, tmp_path)
  before = reporting.read_metrics(workdir)
  steps = STEPS + 2
  result = _train(workdir, num_steps=steps)
  records = reporting.read_metrics(workdir)
  assert records[: len(before)] == before
  train = [r for r in records if r["split"] == "train"]
  assert [r["step"] for r in train] == list(range(1, steps + 1))
  assert [r["step"] for r in records if r["split"] == "test"] == [
    4,
    STEPS,
    steps,
  ]
  # The steps past the old end follow the schedule over the new length.
  config = _config()
  schedule = learning_rate_schedule(
    learning_rate=config["learning_rate"],
    warmup_steps=config["warmup_steps"],
    num_steps=steps,
    decay=config["decay"],
  )
  for record in train[STEPS:]:
    assert record["learning_rate"] == pytest.approx(
      float(schedule(record["step"] - 1)), rel=1e-6
    )
  assert result["checkpoint_step"] == steps
  reader = checkpoint.Checkpointer(str(workdir))
  reader.verify(STEPS)
  reader.verify(steps)
  assert checkpoint.check_or_write_config(
    str(workdir), _config(num_steps=steps), write=False
  )
  # Shortening below the newest checkpoint is refused with a way that
  # deletes nothing.
  with pytest.raises(ValueError, match="--resume_step=S") as refused:
    _train(workdir, num_steps=STEPS)
  assert "nothing is deleted" in str(refused.value)


@contextlib.contextmanager
def _small_disk(folder, size: str):
  """A tmpfs of ``size`` mounted at ``folder``: yields ``True``, or
  ``False`` where mounting is refused (not root, or not allowed in this
  container)."""
  os.makedirs(folder)
  mounted = subprocess.run(
    ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
    capture_output=True,
    check=False,
  )
  try:
    yield mounted.returncode == 0
  finally:
    if mounted.returncode == 0:
      subprocess.run(["umount", "-l", str(folder)], check=False)


def _console_lines(stderr: str) -> list[str]:
  """What a reader sees on the console, the progress bar's redraws left
  out."""
  lines = stderr.replace("\r", "\n").splitlines()
  return [
    line for line in lines if line.strip() and not line.startswith("train:")
  ]


@pytest.mark.slow
def test_a_disk_that_fills_during_a_save_ends_in_one_line_and_resumes(
  tmp_path,
):
  """On a 1 MB tmpfs the run's checkpoints fill the disk; where no tmpfs
  can be mounted, the save of step 12 fails with ENOSPC instead."""
  steps = 40
  config = os.path.join(ROOT, "experiments", "configs", "glow_digits.py")
  flags = [
    f"--config={config}:smoke",
    f"--config.num_steps={steps}",
    "--config.checkpoint_every=1",
    "--config.eval_every=1000",
  ]
  disk = tmp_path / "disk"
  with _small_disk(disk, "1000k") as mounted:
    if mounted:
      full = run_python([TRAIN, *flags, f"--workdir={disk / 'run'}"])
    else:
      full = run_python(
        [WORKER, *flags, f"--workdir={disk / 'run'}"],
        env=dict(os.environ, FLOWJAX_TEST_DISK_FULL_AT="12"),
      )
    assert full.returncode == 1
    lines = _console_lines(full.stderr)
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: StorageError: saving checkpoint step ")
    assert "No space left on device" in lines[0]
    saved = sorted(
      int(d) for d in os.listdir(disk / "run" / "checkpoints") if d.isdigit()
    )
    assert saved and saved[-1] < steps
    moved = tmp_path / "bigger"
    subprocess.run(["cp", "-a", str(disk / "run"), str(moved)], check=True)
  # On a disk with room, the same command resumes after the newest good
  # step and the torn save's temporary folder is gone.
  resumed = run_python([TRAIN, *flags, f"--workdir={moved}"])
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert not glob.glob(str(moved / "checkpoints" / "*tmp*"))
  logged = [r["step"] for r in reporting.read_metrics(moved)]
  assert logged == [*range(1, steps + 1), steps]


def test_a_traceback_the_disk_refuses_still_leaves_the_error_line(
  monkeypatch,
):
  """``/dev/full`` answers every write with ENOSPC, as a full disk."""
  import failures  # noqa: PLC0415 -- experiments/, on the path in conftest

  console = io.StringIO()
  monkeypatch.setattr(sys, "stderr", console)
  try:
    raise OSError(28, "No space left on device")
  except OSError as error:
    assert failures.report(error, "/dev/full") == 1
  err = console.getvalue().strip().splitlines()
  assert len(err) == 1
  assert err[0].startswith("error: OSError: [Errno 28] No space left")
  assert "traceback could not be written to /dev/full" in err[0]
  # Whatever is printed after the line goes to the log, not the console.
  print("shutting down", file=sys.stderr)
  assert "shutting down" not in console.getvalue()
  stream = failures._TolerantStream("/dev/full")
  stream.write("x" * 100_000)  # larger than the buffer: written, and fails
  stream.flush()
  assert stream.failed
  stream.close()


@pytest.mark.parametrize(
  "script, arguments, message",
  [
    (EVALUATE, ["--workdir={empty}"], "holds no config.json"),
    (
      LATENT,
      ["vectors", "--store={empty}", "--output={empty}/v.npz"],
      "no encoding store",
    ),
  ],
)
def test_evaluate_and_latent_arithmetic_refuse_in_one_line(
  script, arguments, message, tmp_path
):
  empty = tmp_path / "empty"
  os.makedirs(empty)
  result = run_python([script, *(a.format(empty=empty) for a in arguments)])
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ValueError: "), lines
  assert message in lines[0]
  log = lines[0].rsplit("(traceback: ", 1)[1].rstrip(")")
  assert "Traceback" in open(log).read()
