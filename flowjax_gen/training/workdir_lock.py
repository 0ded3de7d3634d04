"""One job per workdir: a lock file that process 0 holds for its run.

A second job on the same workdir (a resubmission while the first still
runs) would interleave log records and race the first job's saves into the
same step folders. ``hold(workdir)`` creates ``workdir/run.lock`` (host,
pid, the process's start time, when the lock was taken) with ``O_EXCL``
before anything else is written, keeps it fresh with a heartbeat, and
removes it when the run ends however it ends (a killed process leaves it).

A lock that is already there is judged by who wrote it:

* this host: stale if its pid is gone or now belongs to a process that
  started at another time (pid reuse); a stale lock is taken over at once;
* another host (a shared filesystem): stale once its heartbeat is older
  than the lease (``LEASE_SECONDS``), or at once with ``take_over=True``
  (``--take_over_workdir``) when the caller knows that job is gone.

Taking over renames the stale file aside first, so of two jobs that find
the same stale lock only one wins. A refusal names the holder and the way
out, in one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Optional

import jax

LOCK_FILE = "run.lock"
# A lock from another host whose heartbeat is older than this is stale.
LEASE_SECONDS = 600.0
HEARTBEAT_SECONDS = 60.0


class WorkdirInUseError(RuntimeError):
  """Another job holds the workdir."""


def _process_start(pid: int) -> Optional[str]:
  """The start time of ``pid`` in clock ticks since boot (Linux), which
  tells a live job from a later process that got its pid; ``None`` where
  ``/proc`` cannot say."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      # Field 22; the command name (field 2) may hold spaces, so count from
      # the closing parenthesis.
      return f.read().rsplit(")", 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _alive(pid: int, start: Optional[str]) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # exists, owned by someone else
  return start is None or _process_start(pid) in (None, start)


def _read(path: str) -> Optional[dict]:
  """The holder recorded in ``path``; ``{}`` for a torn or foreign file,
  ``None`` if there is no file."""
  try:
    with open(path) as f:
      holder = json.load(f)
  except FileNotFoundError:
    return None
  except (OSError, ValueError):
    return {}
  return holder if isinstance(holder, dict) else {}


def _describe(holder: dict) -> str:
  started = holder.get("locked_at")
  when = (
    time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
    if isinstance(started, (int, float))
    else "unknown time"
  )
  return (
    f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, "
    f"since {when}"
  )


class WorkdirLock:
  """The lock of one workdir, taken by ``acquire`` and dropped by
  ``release`` (re-entrant within a process)."""

  def __init__(
    self,
    workdir: str,
    *,
    take_over: bool = False,
    lease_seconds: float = LEASE_SECONDS,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
  ):
    self.path = os.path.join(os.path.abspath(workdir), LOCK_FILE)
    self._take_over = take_over
    self._lease = lease_seconds
    self._heartbeat_seconds = heartbeat_seconds
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None
    self._me = {
      "host": socket.gethostname(),
      "pid": os.getpid(),
      "process_start": _process_start(os.getpid()),
    }

  def _is_mine(self, holder: dict) -> bool:
    return all(holder.get(k) == v for k, v in self._me.items())

  def _stale(self, holder: dict) -> bool:
    """Whether ``holder``'s lock may be taken over: its process has ended
    (this host), its heartbeat is older than the lease, or ``take_over``
    (another host)."""
    if holder.get("host") == self._me["host"] and isinstance(
      holder.get("pid"), int
    ):
      return not _alive(holder["pid"], holder.get("process_start"))
    try:
      age = time.time() - os.path.getmtime(self.path)
    except OSError:
      age = 0.0
    return age > self._lease or self._take_over

  def acquire(self) -> bool:
    """Takes the lock; ``True`` if this call created it, ``False`` if this
    process already held it.

    Raises:
      WorkdirInUseError: a live job holds it.
    """
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    for _ in range(10):
      holder = _read(self.path)
      if holder is None:
        if self._create():
          self._start_heartbeat()
          return True
        continue  # another job created it first: judge that one
      if self._is_mine(holder):
        return False
      if not self._stale(holder):
        raise WorkdirInUseError(
          f"workdir {os.path.dirname(self.path)} is in use by another job "
          f"({_describe(holder)}; lock {self.path}). Wait for it to end or "
          "stop it; a lock left by a job on another host is taken over "
          f"once its heartbeat is {self._lease:.0f} s old, or at once with "
          "--take_over_workdir if you know that job is gone."
        )
      self._set_aside(holder)
    raise WorkdirInUseError(f"could not take the lock {self.path}.")

  def _create(self) -> bool:
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    record = {**self._me, "locked_at": time.time()}
    with os.fdopen(fd, "w") as f:
      json.dump(record, f)
      f.flush()
      os.fsync(f.fileno())
    return True

  def _set_aside(self, holder: dict) -> None:
    """Removes a stale lock, unless another job replaced it meanwhile (then
    puts that one back)."""
    aside = f"{self.path}.stale.{self._me['pid']}"
    try:
      os.rename(self.path, aside)
    except FileNotFoundError:
      return
    if _read(aside) == holder:
      os.remove(aside)
      return
    with contextlib.suppress(FileExistsError):
      os.link(aside, self.path)
    os.remove(aside)

  def _start_heartbeat(self) -> None:
    def beat():
      while not self._stop.wait(self._heartbeat_seconds):
        with contextlib.suppress(OSError):
          os.utime(self.path)

    self._thread = threading.Thread(target=beat, daemon=True)
    self._thread.start()

  def release(self) -> None:
    """Stops the heartbeat and removes the lock if this process holds it."""
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
      self._thread = None
    holder = _read(self.path)
    if holder and self._is_mine(holder):
      with contextlib.suppress(OSError):
        os.remove(self.path)


@contextlib.contextmanager
def hold(workdir: str, *, take_over: bool = False) -> Iterator[None]:
  """Holds ``workdir`` for the body: process 0 takes the lock for every
  process of the run, the others learn whether it could.

  Raises:
    WorkdirInUseError: another job holds the workdir (on every process).
  """
  lock = WorkdirLock(workdir, take_over=take_over)
  error: Optional[WorkdirInUseError] = None
  created = False
  if jax.process_index() == 0:
    try:
      created = lock.acquire()
    except WorkdirInUseError as refused:
      error = refused
  if jax.process_count() > 1:
    import numpy as np  # noqa: PLC0415
    from jax.experimental import multihost_utils  # noqa: PLC0415

    refused = multihost_utils.broadcast_one_to_all(np.int32(error is not None))
    if int(refused) and error is None:
      error = WorkdirInUseError(
        f"workdir {workdir} is in use by another job (process 0 reports "
        "the holder)."
      )
  if error is not None:
    raise error
  try:
    yield
  finally:
    if created:
      lock.release()
