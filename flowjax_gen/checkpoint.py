"""Checkpoints: the only module that talks to orbax.

A run directory holds::

    workdir/config.json       the run's config (refuse to mix runs)
    workdir/checkpoints/N/    the latest ``keep`` steps (async, atomic)
    workdir/best/N/           the best step by an evaluation metric

Each checkpoint has two items: ``state`` (a pytree of arrays: params,
optimiser state, EMA params, counters) and ``meta`` (JSON: the data
iterator's position and anything else small). orbax writes each step to a
temporary directory and renames it when complete, so a run killed mid-save
leaves no step that reads as complete. A step that is complete on disk but
cannot be read (a truncated or corrupted file) is skipped with a warning in
favour of the previous one; if none can be read, restoring fails loudly
rather than silently starting from scratch.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from typing import Any, Optional

import orbax.checkpoint as ocp

CONFIG_FILE = "config.json"


class ConfigMismatchError(ValueError):
  """The workdir holds a run with a different config."""


def check_or_write_config(
  workdir: str, config: dict, *, overwrite: bool = False
) -> bool:
  """Records ``config`` in ``workdir`` or checks it against the recorded one.

  Args:
    workdir: run directory (created if missing).
    config: JSON-serialisable config of this run.
    overwrite: delete a previous run with a different config instead of
      refusing.

  Returns:
    ``True`` if the workdir already held this run (resume), else ``False``.

  Raises:
    ConfigMismatchError: if the workdir holds a different run and
      ``overwrite`` is false; the message lists the differing fields.
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG_FILE)
  text = json.dumps(config, indent=2, sort_keys=True)
  if os.path.exists(path):
    with open(path) as f:
      recorded = json.load(f)
    if recorded == json.loads(text):
      return True
    if not overwrite:
      fields = sorted(
        k
        for k in set(recorded) | set(config)
        if recorded.get(k) != config.get(k)
      )
      raise ConfigMismatchError(
        f"workdir {workdir!r} holds a run with a different config "
        f"(fields {fields}); pass overwrite to replace it or choose "
        "another workdir."
      )
    for name in os.listdir(workdir):
      target = os.path.join(workdir, name)
      if os.path.isdir(target):
        shutil.rmtree(target)
      else:
        os.remove(target)
  with open(path + ".tmp", "w") as f:
    f.write(text)
  os.replace(path + ".tmp", path)
  return False


def _barriers_named(prefix: str) -> ocp.options.MultiprocessingOptions:
  # Both managers save the same step from background threads, and orbax
  # names its cross-process barriers after the step directory ("4"). Without
  # a prefix per manager, process 0 may meet process 1 at the other
  # manager's barrier, and the second barrier with that name never opens.
  return ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=prefix)


class Checkpointer:
  """Keep-N latest checkpoints plus the best one by a metric.

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
    self._latest = ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "checkpoints"),
      options=ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        create=True,
        enable_async_checkpointing=async_save,
        multiprocessing_options=_barriers_named("latest"),
      ),
    )
    self._best = None
    if best_metric is not None:
      self._best = ocp.CheckpointManager(
        os.path.join(os.path.abspath(workdir), "best"),
        options=ocp.CheckpointManagerOptions(
          max_to_keep=1,
          create=True,
          best_fn=lambda m: m[best_metric],
          best_mode=best_mode,
          enable_async_checkpointing=async_save,
          multiprocessing_options=_barriers_named("best"),
        ),
      )

  @staticmethod
  def _args(state: Any, meta: dict) -> ocp.args.Composite:
    return ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
    )

  def save(
    self, step: int, state: Any, meta: dict, metrics: Optional[dict] = None
  ) -> None:
    """Saves ``state`` and ``meta`` at ``step`` (and as best if ranked)."""
    self._latest.save(step, args=self._args(state, meta), force=True)
    if self._best is not None and metrics is not None:
      self._best.save(
        step,
        args=self._args(state, meta),
        metrics={k: float(v) for k, v in metrics.items()},
        force=True,
      )

  def latest_step(self) -> Optional[int]:
    return self._latest.latest_step()

  def restore(
    self, target: Any, step: Optional[int] = None, *, best: bool = False
  ) -> Optional[tuple[int, Any, dict]]:
    """Restores ``(step, state, meta)``: the given step, or the newest good one.

    Args:
      target: a pytree like the saved ``state`` (arrays or
        ``jax.ShapeDtypeStruct`` with shardings) that fixes structure,
        dtypes and placement.
      step: a specific step; by default the newest readable step.
      best: read from the best-by-metric checkpoints instead.

    Returns:
      ``None`` if there is no checkpoint at all.

    Raises:
      RuntimeError: if checkpoints exist but none can be read.
    """
    manager = self._best if best else self._latest
    if manager is None:
      raise ValueError(
        "this Checkpointer keeps no best checkpoint (best_metric=None)."
      )
    steps = sorted(manager.all_steps(), reverse=True)
    if step is not None:
      if step not in steps:
        raise ValueError(f"no checkpoint at step {step}; have {steps}.")
      steps = [step]
    failures = []
    for candidate in steps:
      try:
        restored = manager.restore(
          candidate,
          args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()
          ),
        )
      except Exception as error:  # noqa: BLE001 -- any unreadable step
        failures.append(f"step {candidate}: {type(error).__name__}: {error}")
        warnings.warn(
          f"checkpoint at step {candidate} could not be read "
          f"({type(error).__name__}); trying an older one.",
          stacklevel=2,
        )
        continue
      return candidate, restored["state"], dict(restored["meta"])
    if failures:
      raise RuntimeError("no checkpoint could be read:\n" + "\n".join(failures))
    return None

  def wait(self) -> None:
    """Blocks until background saves are on disk."""
    self._latest.wait_until_finished()
    if self._best is not None:
      self._best.wait_until_finished()

  def close(self) -> None:
    self.wait()
    self._latest.close()
    if self._best is not None:
      self._best.close()
