"""Checkpoints: keep-N, corruption fallback, loud failure, config guard."""

from __future__ import annotations

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from flowjax_gen import checkpoint


def _state(value):
  return {
    "params": {"w": jnp.full((3, 2), float(value))},
    "step": jnp.asarray(value, jnp.int32),
  }


def _save_steps(workdir, steps, **kwargs):
  saver = checkpoint.Checkpointer(workdir, **kwargs)
  for step in steps:
    saver.save(
      step,
      _state(step),
      {"data": {"epoch": 0, "step": step}},
      metrics={"bits_per_dim": 10.0 - abs(step - 2)},
    )
  saver.close()


def _corrupt(step_dir):
  for root, _, files in os.walk(step_dir):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "r+b") as f:
        f.truncate(max(os.path.getsize(path) // 3, 1))
        f.seek(0)
        f.write(b"\x00garbage")


def test_keeps_latest_n_and_best_and_round_trips(tmp_path):
  _save_steps(str(tmp_path), [1, 2, 3, 4], keep=2, best_metric="bits_per_dim")
  reader = checkpoint.Checkpointer(
    str(tmp_path), keep=2, best_metric="bits_per_dim"
  )
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3", "4"]
  step, state, meta = reader.restore(_state(0))
  assert step == 4 and meta == {"data": {"epoch": 0, "step": 4}}
  np.testing.assert_array_equal(state["params"]["w"], np.full((3, 2), 4.0))
  best_step, best_state, _ = reader.restore(_state(0), best=True)
  assert best_step == 4  # the lowest bits/dim: 10 - |4 - 2| = 8
  assert int(best_state["step"]) == 4
  reader.close()


def test_corrupted_latest_falls_back_to_previous_with_warning(tmp_path):
  _save_steps(str(tmp_path), [1, 2, 3], keep=3)
  _corrupt(tmp_path / "checkpoints" / "3")
  reader = checkpoint.Checkpointer(str(tmp_path), keep=3)
  with pytest.warns(UserWarning, match="step 3 could not be read"):
    step, state, _ = reader.restore(_state(0))
  assert step == 2
  np.testing.assert_array_equal(state["params"]["w"], np.full((3, 2), 2.0))
  reader.close()


def test_no_readable_checkpoint_fails_loudly(tmp_path):
  _save_steps(str(tmp_path), [1, 2], keep=2)
  for step in ("1", "2"):
    _corrupt(tmp_path / "checkpoints" / step)
  reader = checkpoint.Checkpointer(str(tmp_path), keep=2)
  with (
    pytest.warns(UserWarning),
    pytest.raises(RuntimeError, match="no checkpoint could be read"),
  ):
    reader.restore(_state(0))
  reader.close()


def test_empty_workdir_restores_nothing(tmp_path):
  reader = checkpoint.Checkpointer(str(tmp_path))
  assert reader.restore(_state(0)) is None
  reader.close()


def test_config_guard(tmp_path):
  workdir = str(tmp_path / "run")
  assert checkpoint.check_or_write_config(workdir, {"a": 1, "b": [1]}) is False
  assert checkpoint.check_or_write_config(workdir, {"a": 1, "b": [1]}) is True
  with pytest.raises(checkpoint.ConfigMismatchError, match=r"\['b'\]"):
    checkpoint.check_or_write_config(workdir, {"a": 1, "b": [2]})
  os.makedirs(os.path.join(workdir, "checkpoints", "5"))
  assert (
    checkpoint.check_or_write_config(
      workdir, {"a": 1, "b": [2]}, overwrite=True
    )
    is False
  )
  assert not os.path.exists(os.path.join(workdir, "checkpoints"))


def _meta_file(workdir, step):
  return os.path.join(workdir, "checkpoints", str(step), "meta", "metadata")


def test_every_step_carries_checksums_that_catch_a_flipped_byte(tmp_path):
  _save_steps(str(tmp_path), [1, 2], keep=2)
  reader = checkpoint.Checkpointer(str(tmp_path), keep=2)
  reader.verify(1)
  reader.verify(2)
  with open(_meta_file(tmp_path, 2), "r+b") as f:
    f.seek(2)
    f.write(b"X")
  with pytest.raises(checkpoint.CheckpointError, match="differ from their"):
    reader.verify(2)
  with pytest.warns(UserWarning, match="step 2 could not be read"):
    step, _, _ = reader.restore(_state(0))
  assert step == 1
  assert reader.latest_step() == 2  # checksums written; content not re-read
  reader.close()


def test_step_saved_before_checksums_existed_loads_unverified(tmp_path):
  _save_steps(str(tmp_path), [1, 2], keep=2)
  # What an earlier release wrote: no checksum file, no marker in meta.
  os.remove(tmp_path / "checkpoints" / "2" / checkpoint.CHECKSUM_FILE)
  with open(_meta_file(tmp_path, 2), "w") as f:
    json.dump({"data": {"epoch": 0, "step": 2}}, f)
  reader = checkpoint.Checkpointer(str(tmp_path), keep=2)
  with pytest.warns(UserWarning, match="step 2 has no checksums"):
    step, state, meta = reader.restore(_state(0))
  assert step == 2 and meta == {"data": {"epoch": 0, "step": 2}}
  np.testing.assert_array_equal(state["params"]["w"], np.full((3, 2), 2.0))
  assert reader.latest_step() == 2
  reader.close()


def test_step_that_lost_its_checksums_counts_as_unreadable(tmp_path):
  # A run stopped between a completed save and writing its checksums.
  _save_steps(str(tmp_path), [1, 2], keep=2)
  os.remove(tmp_path / "checkpoints" / "2" / checkpoint.CHECKSUM_FILE)
  reader = checkpoint.Checkpointer(str(tmp_path), keep=2)
  assert reader.latest_step() == 1
  with pytest.warns(UserWarning, match="step 2 could not be read .*no "):
    step, _, _ = reader.restore(_state(0))
  assert step == 1
  reader.close()


def test_a_step_the_check_refuses_falls_back_and_is_set_aside(tmp_path):
  _save_steps(str(tmp_path), [1, 2, 3], keep=3, best_metric="bits_per_dim")
  reader = checkpoint.Checkpointer(
    str(tmp_path), keep=3, best_metric="bits_per_dim"
  )

  def check(step, state, meta):
    if step == 3:
      raise ValueError("bad data position")

  with pytest.warns(UserWarning, match="step 3 could not be read .*bad data"):
    step, _, _ = reader.restore(_state(0), check=check)
  assert step == 2
  with pytest.warns(UserWarning, match="moved steps"):
    moved = reader.set_aside_newer(step)
  assert moved == [
    str(tmp_path / "checkpoints" / "corrupt" / "step_3"),
    str(tmp_path / "best" / "superseded" / "step_3"),
  ]
  # The step can be saved again, and is the newest.
  reader.save(3, _state(3), {"data": {}}, metrics={"bits_per_dim": 1.0})
  reader.wait()
  assert reader.restore(_state(0))[0] == 3
  assert reader.restore(_state(0), best=True)[0] == 3
  reader.close()


def test_unwritable_checkpoint_folder_is_found_before_any_save(tmp_path):
  # A file where the folder should be: unwritable for root as well.
  (tmp_path / "checkpoints").write_text("not a folder")
  with pytest.raises(
    checkpoint.StorageError, match=r"cannot write to .*checkpoints: \[Errno"
  ):
    checkpoint.check_writable(str(tmp_path))
  checkpoint.check_writable(str(tmp_path / "fresh"))
  assert os.listdir(tmp_path / "fresh") == []  # made, probed, left empty
