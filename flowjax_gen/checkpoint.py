"""Checkpoints: the only module that talks to orbax.

A run directory holds::

    workdir/config.json                  the run's config (no mixing of runs)
    workdir/checkpoints/N/               the latest ``keep`` steps (async)
    workdir/checkpoints/N/checksums.json SHA-256 of step N's other files
    workdir/checkpoints/corrupt/step_N/  unreadable steps, moved aside
    workdir/best/N/                      the best step by an evaluation metric
    workdir/best/superseded/step_N/      best steps a resumed run redoes

Each checkpoint has two items: ``state`` (a pytree of arrays: params,
optimiser state, EMA params, counters) and ``meta`` (JSON: the data
iterator's position and anything else small). orbax writes each step to a
temporary directory and renames it when complete, so a run killed mid-save
leaves no step that reads as complete.

Integrity: once orbax reports a save complete, the SHA-256 of every file of
the step is written to ``checksums.json`` inside it, and ``meta`` records
that the step is to have one. orbax itself checksums only its chunk indices,
so flipped bytes in array data would otherwise restore silently. Restoring
tries the steps newest first and skips, with a warning, a step whose files
do not match their checksums, a step that should have checksums but has none
(a run stopped between the save and the checksums), one that orbax cannot
read, and one the caller's ``check`` refuses; if none can be read it fails
with one line rather than silently starting from scratch. Steps saved before
checksums existed have neither file nor marker: they are read unverified,
with a warning. Unreadable steps are moved aside, never deleted.

Saves run in the background. The loop calls ``wait`` right after handing
the next training step to the devices, so each save overlaps one step and a
failed one stops the run there, with the path and the OS error, instead of
surfacing saves later (or hanging at exit on orbax's barriers).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable
from typing import Any, NoReturn, Optional

import jax
import orbax.checkpoint as ocp

CONFIG_FILE = "config.json"
CHECKSUM_FILE = "checksums.json"
LATEST_DIR = "checkpoints"
BEST_DIR = "best"
CORRUPT_DIR = "corrupt"
SUPERSEDED_DIR = "superseded"
ROLLED_BACK_DIR = "rolled_back"
# The key in ``meta`` that says a step is to have a checksum file.
_CHECKSUMMED = "_checksums"
# Config fields a resumed run may change: raising ``num_steps`` extends a
# run; the others set how often it logs, evaluates and saves, and how many
# threads and processes read streamed input. None of them changes what a
# step computes.
RESUMABLE_CHANGES = (
  "num_steps",
  "log_every",
  "eval_every",
  "checkpoint_every",
  "keep_checkpoints",
  "input_threads",
  "input_workers",
)


class ConfigMismatchError(ValueError):
  """The workdir holds a run with a different config."""


class StorageError(RuntimeError):
  """A run directory cannot be written, or a save failed."""


class CheckpointError(RuntimeError):
  """Checkpoints exist but none can be read."""


class _Unreadable(Exception):
  """One step fails its checksums or lacks them."""


def check_or_write_config(
  workdir: str,
  config: dict,
  *,
  overwrite: bool = False,
  write: bool = True,
  keep: tuple[str, ...] = (),
  migrate: Optional[Callable[[dict], dict]] = None,
) -> bool:
  """Records ``config`` in ``workdir`` or checks it against the recorded one.

  The fields in ``RESUMABLE_CHANGES`` (the run's length and how often it
  logs, evaluates and saves) may differ from the recorded ones: the run
  goes on with the new values, which are recorded.

  Args:
    workdir: run directory (created if missing).
    config: JSON-serialisable config of this run.
    overwrite: delete a previous run with a different config instead of
      refusing.
    write: record ``config`` if the workdir holds none (or new values of
      ``RESUMABLE_CHANGES``); ``False`` only checks (and, with
      ``overwrite``, clears), so that a run which fails before it starts
      training leaves no record behind.
    keep: names in ``workdir`` that ``overwrite`` leaves (the run's lock).
    migrate: applied to the recorded config before the comparison (the
      defaults of fields added since it was recorded).

  Returns:
    ``True`` if the workdir already held this run (resume), else ``False``.

  Raises:
    ConfigMismatchError: if the workdir holds a different run and
      ``overwrite`` is false; the message lists the differing fields.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  text = json.dumps(config, indent=2, sort_keys=True)
  if os.path.exists(path):
    with open(path) as f:
      recorded = json.load(f)
    if migrate is not None:
      recorded = json.loads(json.dumps(migrate(recorded)))
    given = json.loads(text)
    fields = sorted(
      k for k in set(recorded) | set(given) if recorded.get(k) != given.get(k)
    )
    if set(fields) <= set(RESUMABLE_CHANGES):
      if fields and write:
        _write_text(path, text)
      return True
    if not overwrite:
      raise ConfigMismatchError(
        f"workdir {workdir!r} holds a run with a different config "
        f"(fields {[f for f in fields if f not in RESUMABLE_CHANGES]}); "
        "choose another workdir, or pass overwrite=True (--overwrite on the "
        "command line) to delete that run's checkpoints, samples and logs "
        "and start this one from step 1."
      )
    for name in os.listdir(workdir):
      if name in keep:
        continue
      target = os.path.join(workdir, name)
      if os.path.isdir(target):
        shutil.rmtree(target)
      else:
        os.remove(target)
  if not write:
    return False
  os.makedirs(workdir, exist_ok=True)
  _write_text(path, text)
  return False


def _write_text(path: str, text: str) -> None:
  """Writes ``path`` whole or not at all."""
  with open(path + ".tmp", "w") as f:
    f.write(text)
  os.replace(path + ".tmp", path)


def check_writable(workdir: str) -> None:
  """Stops a run that could not save before it computes anything.

  Creates ``workdir`` if missing and writes and removes a probe file in it
  and in its checkpoint folders that exist (the others will be made in
  ``workdir``); without this, an unwritable folder shows only when a
  background save fails.

  Raises:
    StorageError: naming the folder and the OS error.
  """
  folders = [workdir] + [
    os.path.join(workdir, name)
    for name in (LATEST_DIR, BEST_DIR)
    if os.path.lexists(os.path.join(workdir, name))
  ]
  for folder in folders:
    probe = os.path.join(
      folder, f".write_probe.{jax.process_index()}.{os.getpid()}"
    )
    try:
      os.makedirs(folder, exist_ok=True)
      with open(probe, "w") as f:
        f.write("probe")
      os.remove(probe)
    except OSError as error:
      raise StorageError(f"cannot write to {folder}: {error}") from error


def _file_digests(step_dir: str) -> dict[str, str]:
  """SHA-256 of every file under ``step_dir`` but the checksum file, by
  path relative to it."""
  digests = {}
  for root, _, files in os.walk(step_dir):
    for name in files:
      path = os.path.join(root, name)
      relative = os.path.relpath(path, step_dir)
      if relative != CHECKSUM_FILE:
        with open(path, "rb") as f:
          digests[relative] = hashlib.file_digest(f, "sha256").hexdigest()
  return dict(sorted(digests.items()))


def _write_checksums(step_dir: str) -> None:
  text = json.dumps(
    {"algorithm": "sha256", "files": _file_digests(step_dir)}, indent=1
  )
  temporary = os.path.join(step_dir, CHECKSUM_FILE + ".tmp")
  with open(temporary, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(temporary, os.path.join(step_dir, CHECKSUM_FILE))


def _verify_checksums(step_dir: str) -> bool:
  """``True`` if every recorded file matches its checksum, ``False`` if
  the step has no checksum file.

  Files that are not recorded are ignored: orbax reads only files its
  (recorded) manifests name.

  Raises:
    _Unreadable: a recorded file differs or is missing, or the checksum
      file cannot be read.
  """
  path = os.path.join(step_dir, CHECKSUM_FILE)
  if not os.path.exists(path):
    return False
  try:
    with open(path) as f:
      recorded = dict(json.load(f)["files"])
    actual = _file_digests(step_dir)
  except (OSError, ValueError, KeyError, TypeError) as error:
    raise _Unreadable(
      f"its checksums cannot be checked ({_reason(error)})"
    ) from error
  missing = sorted(set(recorded) - set(actual))
  changed = sorted(
    name
    for name in set(recorded) & set(actual)
    if recorded[name] != actual[name]
  )
  if missing:
    raise _Unreadable(f"{len(missing)} file(s) missing, e.g. {missing[0]}")
  if changed:
    raise _Unreadable(
      f"{len(changed)} file(s) differ from their checksums, e.g. {changed[0]}"
    )
  return True


def _reason(error: BaseException) -> str:
  """One line saying why: the first OS error in the chain of causes if
  there is one (it names the path and errno), else the error itself, cut
  to 300 characters."""
  found, seen = error, set()
  while found is not None and id(found) not in seen:
    if isinstance(found, OSError):
      break
    seen.add(id(found))
    found = found.__cause__ or found.__context__
  chosen = found if isinstance(found, OSError) else error
  text = " ".join(f"{type(chosen).__name__}: {chosen}".split())
  return text if len(text) <= 300 else text[:297] + "..."


def _free_path(folder: str, name: str) -> str:
  """``folder/name``, or ``folder/name.1``, ... if that is taken."""
  path, index = os.path.join(folder, name), 0
  while os.path.exists(path):
    index += 1
    path = os.path.join(folder, f"{name}.{index}")
  return path


def _options(prefix: str, async_save: bool, **kwargs):
  """Manager options: async saves whose step directory is created before
  ``save`` returns.

  orbax otherwise creates it in the background, where a failure (a full or
  unwritable disk) leaves the save's other threads waiting minutes for a
  directory that never comes, and the interpreter waits for them at exit.
  """
  return ocp.CheckpointManagerOptions(
    create=True,
    # A save torn by a kill or a full disk leaves a temporary folder; the
    # next start removes it (the workdir lock keeps a live job's away).
    cleanup_tmp_directories=True,
    enable_async_checkpointing=async_save,
    async_options=ocp.options.AsyncOptions(
      create_directories_asynchronously=False
    ),
    multiprocessing_options=_barriers_named(prefix),
    **kwargs,
  )


def _barriers_named(prefix: str) -> ocp.options.MultiprocessingOptions:
  # Both managers save the same step from background threads, and orbax
  # names its cross-process barriers after the step directory ("4"). Without
  # a prefix per manager, process 0 may meet process 1 at the other
  # manager's barrier, and the second barrier with that name never opens.
  return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=prefix)


class Checkpointer:
  """Keep-N latest checkpoints plus the best one by a metric, checksummed.

  Args:
    workdir: run directory.
    keep: number of latest checkpoints kept.
    best_metric: metric name that ranks checkpoints saved with metrics
      (``None``: no best checkpoint).
    best_mode: ``"min"`` or ``"max"``.
    async_save: write in a background thread while training goes on.
  """

  def __init__(
    self,
    workdir: str,
    *,
    keep: int = 3,
    best_metric: Optional[str] = None,
    best_mode: str = "min",
    async_save: bool = True,
  ):
    if keep < 1:
      raise ValueError(f"keep must be >= 1; got {keep!r}.")
    if best_mode not in ("min", "max"):
      raise ValueError(f"best_mode must be 'min' or 'max'; got {best_mode!r}.")
    workdir = os.path.abspath(workdir)
    self._roots = {"latest": os.path.join(workdir, LATEST_DIR)}
    self._managers = {
      "latest": ocp.CheckpointManager(
        self._roots["latest"],
        options=_options("latest", async_save, max_to_keep=keep),
      )
    }
    if best_metric is not None:
      self._roots["best"] = os.path.join(workdir, BEST_DIR)
      self._managers["best"] = ocp.CheckpointManager(
        self._roots["best"],
        options=_options(
          "best",
          async_save,
          max_to_keep=1,
          best_fn=lambda m: m[best_metric],
          best_mode=best_mode,
        ),
      )
    # Steps saved in the background whose checksums are not written yet.
    self._pending: dict[str, int] = {}

  def _step_dir(self, kind: str, step: int) -> str:
    # orbax's default step names: the bare number.
    return os.path.join(self._roots[kind], str(step))

  @staticmethod
  def _args(state: Any, meta: dict) -> ocp.args.Composite:
    return ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
    )

  def save(
    self,
    step: int,
    state: Any,
    meta: dict,
    metrics: Optional[dict] = None,
    *,
    only_best: bool = False,
  ) -> None:
    """Starts saving ``state`` and ``meta`` at ``step`` (and as best if
    ranked); ``wait`` (or the next save) writes the checksums.

    A kind that holds ``step`` already is left as it is; ``only_best``
    ranks a step that the latest checkpoints hold (its evaluation came
    after it was saved).

    Raises:
      StorageError: this or the previous save failed (path and OS error).
    """
    # orbax waits for the previous save here anyway; finishing it first
    # turns its failure into one clear error.
    self._finish()
    meta = {**meta, _CHECKSUMMED: "sha256"}
    ranked = self._managers.get("best") is not None and metrics is not None
    kinds = ("latest", "best") if ranked else ("latest",)
    if only_best:
      kinds = ("best",) if ranked else ()
    for kind in kinds:
      if step in self._managers[kind].all_steps():
        continue
      try:
        self._managers[kind].save(
          step,
          args=self._args(state, meta),
          metrics=None
          if kind == "latest"
          else {k: float(v) for k, v in (metrics or {}).items()},
          force=True,
        )
      except Exception as error:  # noqa: BLE001 -- reported with its path
        self._fail(kind, step, error)
      self._pending[kind] = step

  def _finish(self, *, raise_errors: bool = True) -> None:
    """Waits for the background saves, then writes their checksums or
    raises their error."""
    for kind, step in list(self._pending.items()):
      del self._pending[kind]
      try:
        self._managers[kind].wait_until_finished()
        step_dir = self._step_dir(kind, step)
        # The best manager drops a new step that ranks below the kept one.
        if jax.process_index() == 0 and os.path.isdir(step_dir):
          _write_checksums(step_dir)
      except Exception as error:  # noqa: BLE001 -- reported with its path
        if raise_errors:
          self._fail(kind, step, error)

  def _fail(self, kind: str, step: int, error: BaseException) -> NoReturn:
    self.abandon()
    raise StorageError(
      f"saving checkpoint step {step} to {self._step_dir(kind, step)} "
      f"failed: {_reason(error)}"
    ) from error

  def abandon(self) -> None:
    """Waits for background saves, without raising their errors, before a
    run stops on another error.

    A save still running when the interpreter exits cannot finish (orbax's
    threads can no longer start work) and leaves other threads waiting
    minutes on its signals; the saves that did complete get their
    checksums, so a resumed run can use them.
    """
    self._finish(raise_errors=False)

  def latest_step(self) -> Optional[int]:
    """The newest step whose save has completed and whose checksums are
    written (or, in a run saved before checksums existed, the newest
    step)."""
    self._finish()
    for step in sorted(self._managers["latest"].all_steps(), reverse=True):
      if os.path.exists(
        os.path.join(self._step_dir("latest", step), CHECKSUM_FILE)
      ):
        return step
      if not self._marked("latest", step):
        return step
    return None

  def _marked(self, kind: str, step: int) -> bool:
    """Whether ``meta`` of a step without checksums says it should have
    them (or cannot be read, which counts the same)."""
    try:
      restored = self._managers[kind].restore(
        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
      )
    except Exception:  # noqa: BLE001 -- unreadable: not a usable step
      return True
    return _CHECKSUMMED in dict(restored["meta"])

  def restore(
    self,
    target: Any,
    step: Optional[int] = None,
    *,
    best: bool = False,
    check: Optional[Callable[[int, Any, dict], None]] = None,
  ) -> Optional[tuple[int, Any, dict]]:
    """Restores ``(step, state, meta)``: the given step, or the newest good one.

    Args:
      target: a pytree like the saved ``state`` (arrays or
        ``jax.ShapeDtypeStruct`` with shardings) that fixes structure,
        dtypes and placement.
      step: a specific step; by default the newest readable step.
      best: read from the best-by-metric checkpoints instead.
      check: ``check(step, state, meta)`` raises if a restored step cannot
        be used (e.g. the data iterator refuses its position); such a step
        counts as unreadable, like one failing its checksums.

    Returns:
      ``None`` if there is no checkpoint at all.

    Raises:
      CheckpointError: checkpoints exist but none can be read; one line
        listing each step and why.
    """
    kind = "best" if best else "latest"
    if kind not in self._managers:
      raise ValueError(
        "this Checkpointer keeps no best checkpoint (best_metric=None)."
      )
    self._finish()
    steps = sorted(self._managers[kind].all_steps(), reverse=True)
    if step is not None:
      if step not in steps:
        raise ValueError(f"no checkpoint at step {step}; have {steps}.")
      steps = [step]
    failures = []
    for candidate in steps:
      try:
        verified, state, meta = self._read(kind, candidate, target)
        if check is not None:
          check(candidate, state, meta)
      except Exception as error:  # noqa: BLE001 -- any unusable step
        reason = (
          str(error) if isinstance(error, _Unreadable) else _reason(error)
        )
        failures.append(f"step {candidate}: {reason}")
        warnings.warn(
          f"{self._roots[kind]}: checkpoint step {candidate} could not be "
          f"read ({reason}); trying an older one.",
          stacklevel=2,
        )
        continue
      if not verified:
        warnings.warn(
          f"{self._roots[kind]}: checkpoint step {candidate} has no "
          "checksums (saved by an earlier release); restored unverified.",
          stacklevel=2,
        )
      return candidate, state, meta
    if failures:
      raise CheckpointError(
        f"no checkpoint could be read in {self._roots[kind]} ("
        + "; ".join(failures)
        + "); move that folder aside to train from scratch."
      )
    return None

  def _read(self, kind: str, step: int, target: Any) -> tuple[bool, Any, dict]:
    verified = _verify_checksums(self._step_dir(kind, step))
    restored = self._managers[kind].restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()
      ),
    )
    meta = dict(restored["meta"])
    if meta.pop(_CHECKSUMMED, None) is not None and not verified:
      raise _Unreadable(
        f"it has no {CHECKSUM_FILE}: the run stopped before writing it"
      )
    return verified, restored["state"], meta

  def verify(self, step: int, *, best: bool = False) -> None:
    """Reads a saved step's files back against its checksums.

    Raises:
      CheckpointError: they differ, or the step has none.
    """
    kind = "best" if best else "latest"
    step_dir = self._step_dir(kind, step)
    try:
      if not _verify_checksums(step_dir):
        raise _Unreadable(f"it has no {CHECKSUM_FILE}")
    except _Unreadable as error:
      raise CheckpointError(
        f"checkpoint {step_dir} failed verification: {error}."
      ) from error

  def set_aside_newer(
    self, step: int, *, rolled_back: bool = False
  ) -> list[str]:
    """Moves every step newer than ``step`` out of the managers' way, so
    a run resumed at ``step`` can save those steps again; nothing is
    deleted.

    Latest steps newer than the restored one could not be read: they go to
    ``checkpoints/corrupt/step_N``; with ``rolled_back`` they could, but the
    run was asked to resume from an older step, and they go to
    ``checkpoints/rolled_back/step_N``. Best steps newer than it belong to
    the training the resumed run repeats: they go to
    ``best/superseded/step_N``.

    Returns:
      The new paths.
    """
    self._finish()
    moved = []
    latest_folder = ROLLED_BACK_DIR if rolled_back else CORRUPT_DIR
    for kind, folder in (("latest", latest_folder), ("best", SUPERSEDED_DIR)):
      if kind not in self._managers:
        continue
      newer = sorted(s for s in self._managers[kind].all_steps() if s > step)
      target = os.path.join(self._roots[kind], folder)
      if newer and jax.process_index() == 0:
        os.makedirs(target, exist_ok=True)
        for old in newer:
          destination = _free_path(target, f"step_{old}")
          shutil.move(self._step_dir(kind, old), destination)
          moved.append(destination)
        warnings.warn(
          f"{self._roots[kind]}: moved steps {newer} to {target}; the "
          f"resumed run trains from step {step} and saves them again.",
          stacklevel=2,
        )
      if newer and jax.process_count() > 1:
        from jax.experimental import multihost_utils  # noqa: PLC0415

        multihost_utils.sync_global_devices(f"set aside {kind}")
      if newer:
        self._managers[kind].reload()
    return moved

  def wait(self) -> None:
    """Blocks until background saves are on disk with their checksums.

    Raises:
      StorageError: a save failed (path and OS error).
    """
    self._finish()

  def close(self) -> None:
    self.wait()
    for manager in self._managers.values():
      manager.close()
