"""One job per workdir: the lock refuses a live holder, takes over a dead
one on this host and an expired or released one from another host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from flowjax_gen import checkpoint
from flowjax_gen.training import workdir_lock
from flowjax_gen.training.workdir_lock import WorkdirInUseError, WorkdirLock


def _write_lock(workdir, **holder) -> str:
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, workdir_lock.LOCK_FILE)
  with open(path, "w") as f:
    json.dump({"locked_at": time.time(), **holder}, f)
  return path


def _this_host() -> str:
  return WorkdirLock(".")._me["host"]


@pytest.fixture
def live_process():
  """A process of this host that is alive for the test."""
  process = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(60)"]
  )
  yield process
  process.kill()
  process.wait()


def test_a_live_job_on_this_host_is_refused_with_its_holder(
  tmp_path, live_process
):
  path = _write_lock(
    tmp_path,
    host=_this_host(),
    pid=live_process.pid,
    process_start=workdir_lock._process_start(live_process.pid),
  )
  with pytest.raises(WorkdirInUseError) as refused:
    WorkdirLock(str(tmp_path)).acquire()
  message = str(refused.value)
  assert f"pid {live_process.pid}" in message and _this_host() in message
  assert "--take_over_workdir" in message
  # Refused without touching it; take_over does not apply on this host,
  # where liveness is known.
  assert json.load(open(path))["pid"] == live_process.pid
  with pytest.raises(WorkdirInUseError):
    WorkdirLock(str(tmp_path), take_over=True).acquire()


def test_a_lock_whose_process_ended_is_taken_over(tmp_path):
  ended = subprocess.Popen([sys.executable, "-c", "pass"])
  ended.wait()
  _write_lock(tmp_path, host=_this_host(), pid=ended.pid, process_start="1")
  lock = WorkdirLock(str(tmp_path))
  assert lock.acquire() is True
  holder = json.load(open(lock.path))
  assert holder["pid"] == os.getpid()
  lock.release()
  assert not os.path.exists(lock.path)


def test_a_reused_pid_does_not_keep_a_lock(tmp_path):
  """The pid is alive (this test's own) but started at another time."""
  _write_lock(tmp_path, host=_this_host(), pid=os.getpid(), process_start="0")
  lock = WorkdirLock(str(tmp_path))
  assert lock.acquire() is True
  lock.release()


def test_another_hosts_lock_holds_for_its_lease_or_until_taken_over(tmp_path):
  path = _write_lock(tmp_path, host="elsewhere", pid=1, process_start="1")
  with pytest.raises(WorkdirInUseError, match="host elsewhere, pid 1"):
    WorkdirLock(str(tmp_path)).acquire()
  lock = WorkdirLock(str(tmp_path), take_over=True)
  assert lock.acquire() is True
  lock.release()

  path = _write_lock(tmp_path, host="elsewhere", pid=1, process_start="1")
  stale = time.time() - workdir_lock.LEASE_SECONDS - 5
  os.utime(path, (stale, stale))
  lock = WorkdirLock(str(tmp_path))
  assert lock.acquire() is True
  lock.release()


def test_the_heartbeat_keeps_the_lease_fresh(tmp_path):
  lock = WorkdirLock(str(tmp_path), heartbeat_seconds=0.05)
  lock.acquire()
  old = time.time() - 100
  os.utime(lock.path, (old, old))
  time.sleep(0.5)
  assert time.time() - os.path.getmtime(lock.path) < 5
  lock.release()


def test_hold_is_reentrant_and_overwrite_keeps_the_lock(tmp_path):
  workdir = str(tmp_path / "run")
  path = os.path.join(workdir, workdir_lock.LOCK_FILE)
  with workdir_lock.hold(workdir):
    with workdir_lock.hold(workdir):
      assert os.path.exists(path)
    assert os.path.exists(path)  # the inner hold did not release it
    checkpoint.check_or_write_config(workdir, {"model": "nice"})
    checkpoint.check_or_write_config(
      workdir,
      {"model": "glow"},
      overwrite=True,
      keep=(workdir_lock.LOCK_FILE,),
    )
    assert os.path.exists(path)
  assert not os.path.exists(path)


def test_a_torn_lock_file_counts_by_its_age(tmp_path):
  os.makedirs(tmp_path, exist_ok=True)
  path = os.path.join(tmp_path, workdir_lock.LOCK_FILE)
  with open(path, "w") as f:
    f.write('{"host": "x", "pi')
  with pytest.raises(WorkdirInUseError, match="host \\?"):
    WorkdirLock(str(tmp_path)).acquire()
  stale = time.time() - workdir_lock.LEASE_SECONDS - 5
  os.utime(path, (stale, stale))
  lock = WorkdirLock(str(tmp_path))
  assert lock.acquire() is True
  lock.release()
