"""Fault injection: a run survives broken checkpoints, torn logs, storage it
cannot write and bad data, and says what happened.

Most tests start from a copy of one small finished glow_digits run (6
steps, checkpoints at 2, 4 and 6, an evaluation at 4), break something and
run the same command again.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import warnings

import numpy as np
import pytest
from finished_run import (
  EVALUATE,
  FLAGS,
  STEPS,
  TRAIN,
  _config,
  _copy,
  _leaves,
  _logged_once,
  _same_final_model,
  _train,
)
from scripts import run_python

from flowjax_gen import checkpoint, data, runs
from flowjax_gen.training import loop, reporting

# One xdist worker runs them all, so the finished run they copy is trained
# once, not once per worker.
pytestmark = pytest.mark.xdist_group("faults")


def _step_dir(workdir, step: int, kind: str = "checkpoints") -> str:
  return os.path.join(workdir, kind, str(step))


def _corrupt_dir(workdir, step: int) -> str:
  return os.path.join(workdir, "checkpoints", "corrupt", f"step_{step}")


def _flip_bytes(workdir, step: int, count: int = 8) -> None:
  """Inverts ``count`` bytes in the middle of the largest array-data file
  of a step, leaving every file's size and every index intact."""
  files = glob.glob(
    os.path.join(_step_dir(workdir, step), "state", "**", "d", "*"),
    recursive=True,
  )
  path = max(files, key=os.path.getsize)
  with open(path, "r+b") as f:
    f.seek(os.path.getsize(path) // 2)
    original = f.read(count)
    f.seek(os.path.getsize(path) // 2)
    f.write(bytes(b ^ 0xFF for b in original))


def _truncate(workdir, step: int) -> None:
  """Cuts every file of a step's ``state`` to a third: unreadable."""
  for root, _, files in os.walk(
    os.path.join(_step_dir(workdir, step), "state")
  ):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 3)


def _stop_before_final_save(workdir) -> None:
  """What a run killed after logging its last step, before its final
  checkpoint, leaves behind."""
  shutil.rmtree(_step_dir(workdir, STEPS))
  os.remove(os.path.join(workdir, "final_metrics.json"))


def test_flipped_bytes_in_newest_array_data_are_caught(finished, tmp_path):
  workdir = _copy(finished, tmp_path)
  _flip_bytes(workdir, STEPS)
  with pytest.warns(
    UserWarning,
    match=f"checkpoint step {STEPS} could not be read .*differ from their "
    "checksums",
  ):
    result = _train(workdir)
  assert os.path.isdir(_corrupt_dir(workdir, STEPS))
  # Retrained from step 4: the model of the run that never broke.
  assert result["bits_per_dim"] == finished[1]["bits_per_dim"]
  _same_final_model(workdir, finished)


def test_unreadable_newest_mid_run_is_moved_aside_and_reruns_do_not_loop(
  finished, tmp_path
):
  workdir = _copy(finished, tmp_path)
  _stop_before_final_save(workdir)
  _truncate(workdir, 4)
  with pytest.warns(UserWarning, match="checkpoint step 4 could not be read"):
    _train(workdir)
  assert os.path.isdir(_corrupt_dir(workdir, 4))
  reader = checkpoint.Checkpointer(str(workdir))
  for step in (2, 4, STEPS):
    reader.verify(step)
  reader.close()
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    again = _train(workdir)
  assert not [w for w in caught if "could not be read" in str(w.message)]
  assert again["bits_per_dim"] == finished[1]["bits_per_dim"]
  _logged_once(workdir)
  _same_final_model(workdir, finished)


def test_unreadable_final_step_is_refused_then_saved_again(finished, tmp_path):
  workdir = _copy(finished, tmp_path)
  _truncate(workdir, STEPS)
  with (
    pytest.warns(UserWarning, match=f"step {STEPS} could not be read"),
    pytest.raises(
      ValueError,
      match=f"newest readable checkpoint is step 4, but final_metrics.json "
      f"reports step {STEPS}",
    ),
  ):
    runs.load_trained(str(workdir))
  result = _train(workdir)
  assert result["checkpoint_step"] == STEPS
  assert os.path.isdir(_corrupt_dir(workdir, STEPS))
  checkpoint.Checkpointer(str(workdir)).verify(STEPS)
  _same_final_model(workdir, finished)


@pytest.mark.slow
def test_evaluate_refuses_an_unreadable_final_step_then_reads_the_new_one(
  finished, tmp_path
):
  workdir = _copy(finished, tmp_path)
  _truncate(workdir, STEPS)
  refused = run_python([EVALUATE, f"--workdir={workdir}"])
  assert refused.returncode != 0
  assert "newest readable checkpoint is step 4" in refused.stderr
  _train(workdir)
  report = run_python([EVALUATE, f"--workdir={workdir}"])
  assert report.returncode == 0, report.stderr[-3000:]
  assert f"latest checkpoint, step {STEPS})" in report.stdout
  evaluation = json.load(open(workdir / "evaluation.json"))
  assert evaluation["checkpoint_step"] == STEPS


def test_wrong_iterator_state_falls_back_to_an_older_step(finished, tmp_path):
  workdir = _copy(finished, tmp_path)
  # Valid JSON, checksums to match, a position past the end of an epoch.
  path = os.path.join(_step_dir(workdir, STEPS), "meta", "metadata")
  meta = json.load(open(path))
  meta["data"]["step_in_epoch"] = 10**6
  with open(path, "w") as f:
    json.dump(meta, f)
  checkpoint._write_checksums(_step_dir(workdir, STEPS))
  with pytest.warns(
    UserWarning,
    match=f"checkpoint step {STEPS} could not be read .*iterator state out "
    "of range",
  ):
    result = _train(workdir)
  assert os.path.isdir(_corrupt_dir(workdir, STEPS))
  assert result["bits_per_dim"] == finished[1]["bits_per_dim"]


def test_torn_last_metrics_line_is_dropped_and_the_run_finishes(
  finished, tmp_path
):
  workdir = _copy(finished, tmp_path)
  _stop_before_final_save(workdir)
  with open(workdir / "metrics.jsonl", "a") as f:
    f.write('{"step": 6, "split": "te')
  with pytest.warns(UserWarning, match="torn last line"):
    _train(workdir)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # the log is whole again
    _logged_once(workdir)


def test_read_metrics_tolerates_a_torn_last_line(tmp_path):
  with open(tmp_path / "metrics.jsonl", "w") as f:
    f.write('{"step": 1, "split": "train", "loss": 2.0}\n{"step": 2, "sp')
  with pytest.warns(UserWarning, match=r"torn last line \(line 2"):
    records = reporting.read_metrics(str(tmp_path))
  assert records == [{"step": 1, "split": "train", "loss": 2.0}]


def test_resume_after_a_kill_logs_each_step_once(finished, tmp_path):
  workdir = _copy(finished, tmp_path)
  _stop_before_final_save(workdir)  # steps 5 and 6 were logged, then killed
  result = _train(workdir)
  assert result["bits_per_dim"] == finished[1]["bits_per_dim"]
  _logged_once(workdir)


def _writable(folder) -> bool:
  try:
    with open(os.path.join(folder, ".probe"), "w"):
      pass
  except OSError:
    return False
  os.remove(os.path.join(folder, ".probe"))
  return True


@contextlib.contextmanager
def _read_only(folder):
  """``folder`` made unwritable: by its mode, or for root (whom modes do
  not stop) with the immutable attribute."""
  os.chmod(folder, 0o555)
  immutable = False
  if _writable(folder):
    result = subprocess.run(
      ["chattr", "+i", str(folder)], capture_output=True, check=False
    )
    immutable = result.returncode == 0
  try:
    if _writable(folder):
      pytest.skip("this machine cannot make a folder read-only")
    yield
  finally:
    if immutable:
      subprocess.run(["chattr", "-i", str(folder)], check=True)
    os.chmod(folder, 0o755)


def test_unwritable_checkpoints_folder_fails_before_step_1(tmp_path):
  workdir = tmp_path / "run"
  os.makedirs(workdir / "checkpoints")
  with (
    _read_only(workdir / "checkpoints"),
    pytest.raises(
      checkpoint.StorageError,
      match=r"cannot write to .*/run/checkpoints: \[Errno",
    ),
  ):
    loop.train_and_evaluate(_config(), str(workdir))
  assert not (workdir / "metrics.jsonl").exists()


def test_train_prints_one_line_for_an_unwritable_checkpoints_folder(tmp_path):
  workdir = tmp_path / "run"
  os.makedirs(workdir / "checkpoints")
  with _read_only(workdir / "checkpoints"):
    # The timeout is far below the minutes an orbax barrier used to hang.
    result = run_python([TRAIN, *FLAGS, f"--workdir={workdir}"], timeout=120)
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: StorageError: cannot write to "), last
  assert f"{workdir}/checkpoints" in last
  assert "StorageError" in open(workdir / "train.log").read()


def test_failed_save_stops_the_run_at_the_next_step(tmp_path, monkeypatch):
  # Skip the probe so the first save meets the unwritable folder.
  monkeypatch.setattr(checkpoint, "check_writable", lambda workdir: None)
  workdir = tmp_path / "run"
  os.makedirs(workdir / "checkpoints")
  with (
    _read_only(workdir / "checkpoints"),
    pytest.raises(
      checkpoint.StorageError,
      match=r"saving checkpoint step 2 to .*/run/checkpoints/2 failed: "
      r"PermissionError: \[Errno",
    ),
  ):
    loop.train_and_evaluate(_config(num_steps=20), str(workdir))
  steps = [r["step"] for r in reporting.read_metrics(str(workdir))]
  assert max(steps) == 2


def _digits_npz(path, *, train_bad=(), test_bad=()) -> str:
  """The digits as a float ``.npz`` with NaN/inf in the given examples."""
  arrays = {}
  for split, bad in (("train", train_bad), ("test", test_bad)):
    source = data.load("digits", split)
    images = source["image"][..., 0].astype(np.float32)
    for count, index in enumerate(bad):
      images[index, 3, 4] = np.nan if count % 2 == 0 else np.inf
    arrays[f"x_{split}"], arrays[f"y_{split}"] = images, source["label"]
  np.savez(path, **arrays)
  return str(path)


def test_nan_in_training_images_is_refused_before_step_1(tmp_path):
  # The smoke config trains on the first 32 examples: 3 of them are bad.
  path = _digits_npz(tmp_path / "digits.npz", train_bad=(5, 17, 20, 900))
  workdir = tmp_path / "run"
  with pytest.raises(
    data.BadDataError,
    match=rf"train split of npz file {path}: 3 of 32 examples are bad \(3 "
    r"with NaN/inf values\), the first at index 5",
  ):
    loop.train_and_evaluate(
      _config(dataset="npz", data_path=path), str(workdir)
    )
  assert not (workdir / "metrics.jsonl").exists()


def test_nan_only_in_test_images_is_refused(tmp_path):
  path = _digits_npz(tmp_path / "digits.npz", test_bad=(7,))
  with pytest.raises(
    data.BadDataError,
    match=r"test split of npz file .*: 1 of 16 examples are bad .*index 7",
  ):
    loop.train_and_evaluate(
      _config(dataset="npz", data_path=path), str(tmp_path / "run")
    )


def test_bad_examples_can_be_dropped_instead(tmp_path):
  path = _digits_npz(tmp_path / "digits.npz", train_bad=(5, 17, 20))
  with pytest.warns(
    UserWarning,
    match=r"train split of npz file .*: dropped 3 of 32 examples",
  ):
    result = loop.train_and_evaluate(
      _config(dataset="npz", data_path=path, drop_bad_examples=True),
      str(tmp_path / "run"),
    )
  assert np.isfinite(result["bits_per_dim"])
  assert result["skipped_updates"] == 0


def test_all_checkpoints_unreadable_is_one_clear_error(finished, tmp_path):
  workdir = _copy(finished, tmp_path)
  for step in (2, 4, STEPS):
    _truncate(workdir, step)
  with (
    pytest.warns(UserWarning),
    pytest.raises(checkpoint.CheckpointError) as caught,
  ):
    loop.train_and_evaluate(_config(), str(workdir))
  message = str(caught.value)
  assert message.startswith("no checkpoint could be read in ")
  assert "\n" not in message
  assert all(f"step {step}: " in message for step in (2, 4, STEPS))
  # Nothing is moved when there is nothing to fall back to.
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4", "6"]


@pytest.mark.slow
def test_train_prints_one_line_when_no_checkpoint_can_be_read(
  finished, tmp_path
):
  workdir = _copy(finished, tmp_path)
  for step in (2, 4, STEPS):
    _truncate(workdir, step)
  result = run_python([TRAIN, *FLAGS, f"--workdir={workdir}"], timeout=300)
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  assert len(result.stderr.splitlines()) < 30, result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: CheckpointError: no checkpoint could be read")
  assert "CheckpointError" in open(workdir / "train.log").read()


def _data_position(workdir, step: int) -> dict:
  """The data iterator's position saved with checkpoint ``step``."""
  run, state, _ = runs.load_trained(str(workdir))
  reader = checkpoint.Checkpointer(
    str(workdir), best_metric=run.task.best_metric
  )
  _, _, meta = reader.restore(state, step)
  return meta["data"]


def test_roll_back_to_an_older_step_trains_the_same_steps_again(
  finished, tmp_path
):
  workdir = _copy(finished, tmp_path)
  with pytest.warns(
    UserWarning, match=r"moved steps \[4, 6\] to .*rolled_back"
  ):
    loop.train_and_evaluate(_config(), str(workdir), resume_step=2)
  # Nothing else changed: the same steps on the same data, bit for bit.
  _same_final_model(workdir, finished)
  _logged_once(workdir)
  rolled_back = os.path.join(workdir, "checkpoints", "rolled_back")
  assert sorted(os.listdir(rolled_back)) == ["step_4", "step_6"]
  (entry,) = map(json.loads, open(workdir / loop.ROLLBACKS_FILE))
  assert entry["resumed_from_step"] == 2 and entry["skipped_batches"] == 0
  assert [(r["step"], r["split"]) for r in entry["dropped_records"]] == [
    (3, "train"),
    (4, "train"),
    (4, "test"),
    (5, "train"),
    (6, "train"),
    (6, "test"),
  ]


def test_skipped_batches_move_the_data_on_past_a_spike(finished, tmp_path):
  workdir = _copy(finished, tmp_path)
  with pytest.warns(UserWarning, match="moved steps"):
    loop.train_and_evaluate(
      _config(), str(workdir), resume_step=2, skip_batches=2
    )
  _logged_once(workdir)
  # Two batches discarded after step 2: step 4 stands where the data of
  # the run that never skipped stood at step 6.
  assert _data_position(workdir, 4) == _data_position(finished[0], 6)
  _, state, _ = runs.load_trained(str(workdir))
  differ = [
    not np.array_equal(got, want)
    for got, want in zip(_leaves(state.ema_params), finished[2], strict=True)
  ]
  assert any(differ)  # other batches, other params
  (entry,) = map(json.loads, open(workdir / loop.ROLLBACKS_FILE))
  assert entry["skipped_batches"] == 2


def test_roll_back_refuses_a_missing_step_and_a_fresh_run(finished, tmp_path):
  workdir = _copy(finished, tmp_path)
  with pytest.raises(
    ValueError, match=r"no checkpoint at step 5; have \[6, 4, 2\]"
  ):
    loop.train_and_evaluate(_config(), str(workdir), resume_step=5)
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4", "6"]
  assert not os.path.exists(workdir / loop.ROLLBACKS_FILE)
  with pytest.raises(ValueError, match="skip_batches"):
    loop.train_and_evaluate(_config(), str(workdir), skip_batches=-1)
  with pytest.raises(ValueError, match="holds no checkpoint to resume from"):
    loop.train_and_evaluate(_config(), str(tmp_path / "fresh"), skip_batches=1)
