"""The training loop: config in, trained checkpoint and report out.

``train_and_evaluate(config, workdir)`` trains any model family (flows,
auto-encoders, VAEs, GANs, the classifier; see ``tasks``), evaluates on the
test split periodically and at the end, writes pictures and learning curves,
and keeps checkpoints. Running it again with the same config and workdir
resumes from the newest readable checkpoint (params, optimiser, EMA, step --
which is also the RNG state -- and the data iterator's position), so a killed
run that is restarted ends with the same params, bit for bit, as one that
never stopped. A checkpoint that fails its checksums, or whose step or data
position does not fit, is skipped for an older one and moved aside
(``checkpoint``); the metrics log is cut back to the restored step. Storage
that cannot be written stops the run before step 1, and a failed save
within one step.

A loss spike is undone the way large runs undo one (PaLM, Chowdhery et al.
2022, section 5.1): ``resume_step`` rolls the run back to an older
checkpoint and ``skip_batches`` discards the batches that would come next,
so training goes on with the same state past other data. Each such resume
appends what it changed, and the log records it dropped, to
``rollbacks.jsonl`` in the workdir.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import NoReturn, Optional

import jax
import numpy as np
from tqdm import tqdm

from flowjax_gen import checkpoint
from flowjax_gen._checks import check_non_negative_int, check_positive_int
from flowjax_gen.parallel import shard_batch
from flowjax_gen.training import (
  evaluation,
  preemption,
  reporting,
  workdir_lock,
)
from flowjax_gen.training.config import validate_config, with_defaults
from flowjax_gen.training.experiment import Experiment


class NonFiniteLossError(RuntimeError):
  """Too many consecutive updates were skipped for non-finite values."""


ROLLBACKS_FILE = "rollbacks.jsonl"


def train_and_evaluate(
  config: Mapping,
  workdir: str,
  *,
  overwrite: bool = False,
  resume_step: Optional[int] = None,
  skip_batches: int = 0,
  take_over_workdir: bool = False,
) -> dict:
  """Trains (or resumes) a model as ``config`` says; returns final metrics.

  Args:
    config: a flat mapping (``ml_collections.ConfigDict.to_dict()``) with
      the fields of ``experiments/configs/*.py``.
    workdir: run directory; holds config, checkpoints, metrics, samples.
    overwrite: replace a run with a different config in ``workdir``.
    resume_step: resume from this checkpoint instead of the newest (a
      roll-back); the newer ones move to ``checkpoints/rolled_back/`` and
      their log records are dropped. It must be readable: no fallback.
    skip_batches: after restoring, draw and discard this many training
      batches (the position saved with later checkpoints includes them).
    take_over_workdir: take the workdir's lock even if a job on another
      host holds it (``workdir_lock``).

  Raises:
    ValueError: bad config fields or arguments (before any compute); no
      checkpoint at ``resume_step``; ``skip_batches`` without a checkpoint;
      ``num_steps`` below the newest checkpoint's step.
    workdir_lock.WorkdirInUseError: another job holds ``workdir``.
    checkpoint.ConfigMismatchError: ``workdir`` holds another run.
    NonFiniteLossError: ``max_consecutive_skips`` updates in a row were
      skipped for NaN/inf loss or gradients.
    preemption.Preempted: SIGTERM or SIGINT arrived; every process saved
      the step it names, from which the same call resumes.
  """
  config = with_defaults(config)
  validate_config(config)
  if resume_step is not None:
    check_positive_int("resume_step", resume_step)
  check_non_negative_int("skip_batches", skip_batches)
  with (
    preemption.PreemptionWatch() as watch,
    workdir_lock.hold(workdir, take_over=take_over_workdir),
  ):
    if jax.process_index() == 0:
      checkpoint.check_writable(workdir)
    _check_or_write_config(workdir, config, overwrite=overwrite, write=False)
    run = Experiment(config, workdir)
    checkpointer = checkpoint.Checkpointer(
      workdir,
      keep=config["keep_checkpoints"],
      best_metric=run.task.best_metric,
    )
    try:
      final = _train(
        run,
        checkpointer,
        config,
        workdir,
        watch,
        resume_step=resume_step,
        skip_batches=skip_batches,
      )
    except BaseException:
      checkpointer.abandon()
      raise
  if jax.process_index() == 0:
    records = reporting.read_metrics(workdir)
    for against, name in (("step", ""), ("minutes", "_wall_time")):
      reporting.save_learning_curves(
        records,
        os.path.join(workdir, f"learning_curves{name}.png"),
        metric=run.task.headline,
        against=against,
      )
  return final


def _resume_check(run: Experiment):
  """Refuses a checkpoint whose step counter (the RNG state) or data
  position does not fit, so the restore falls back to an older one."""

  def check(step: int, state, meta: dict) -> None:
    if int(state.step) != step:
      raise ValueError(f"its state is at step {int(state.step)}")
    run.iterator.set_state(meta["data"])

  return check


# ``meta`` of a step saved for a preemption that came during the
# evaluation due at that step: the resumed run evaluates it first.
_EVALUATION_PENDING = "evaluation_pending"


def _train(
  run: Experiment,
  checkpointer: checkpoint.Checkpointer,
  config: Mapping,
  workdir: str,
  watch: preemption.PreemptionWatch,
  *,
  resume_step: Optional[int] = None,
  skip_batches: int = 0,
) -> dict:
  """Restores the newest usable checkpoint (or ``resume_step``), trains to
  ``num_steps`` and saves the final state (checksummed and read back)."""
  state = run.init_state()
  restored = checkpointer.restore(state, resume_step, check=_resume_check(run))
  restored_step, pending = None, False
  if restored is not None:
    restored_step, state, restored_meta = restored
    pending = bool(restored_meta.get(_EVALUATION_PENDING))
  elif resume_step is not None or skip_batches:
    raise ValueError(
      f"{workdir} holds no checkpoint to resume from (resume_step="
      f"{resume_step}, skip_batches={skip_batches})."
    )
  start = int(state.step)
  num_steps = config["num_steps"]
  if start > num_steps:
    raise ValueError(
      f"config.num_steps = {num_steps} is below step {start}, where this "
      f"run's newest checkpoint is; pass --config.num_steps={start} or more "
      f"to go on, or --resume_step=S (S <= {num_steps}) to roll back to an "
      "older checkpoint (the newer ones move to checkpoints/rolled_back/, "
      "nothing is deleted)."
    )
  rolled_back = resume_step is not None
  dropped = []
  if (rolled_back or skip_batches) and jax.process_index() == 0:
    dropped = [r for r in reporting.read_metrics(workdir) if r["step"] > start]
  # The steps after ``start`` are trained again: newer checkpoints
  # (unreadable ones, or all of them in a roll-back) move aside so they can
  # be saved again, and their log records are dropped so each step is
  # logged once.
  moved = checkpointer.set_aside_newer(start, rolled_back=rolled_back)
  for _ in range(skip_batches):
    next(run.iterator)
  if (rolled_back or skip_batches) and jax.process_index() == 0:
    with open(os.path.join(workdir, ROLLBACKS_FILE), "a") as f:
      entry = {
        "time": round(time.time(), 3),
        "resumed_from_step": start,
        "skipped_batches": skip_batches,
        "set_aside": moved,
        "dropped_records": dropped,
      }
      f.write(json.dumps(entry) + "\n")
  writer = reporting.MetricWriter(
    workdir, enabled=jax.process_index() == 0, resume_step=start
  )
  train_step = run.train_step()
  # Recorded only now: a run that failed while loading data, building the
  # model or initialising leaves a workdir that any config can use.
  _check_or_write_config(workdir, config)

  def meta(evaluation_pending: bool = False) -> dict:
    extra = {_EVALUATION_PENDING: True} if evaluation_pending else {}
    return {"data": run.iterator.get_state(), **extra}

  def stop(step: int, *, evaluation_pending: bool = False) -> NoReturn:
    """Saves ``step`` (unless the latest checkpoints hold it), verifies it
    and ends the run for a preemption."""
    bar.close()
    checkpointer.save(step, state, meta(evaluation_pending))
    checkpointer.close()
    writer.close()
    if jax.process_index() == 0:
      checkpointer.verify(step)
    raise preemption.Preempted(step)

  def evaluate(step: int) -> dict:
    """The test metrics at ``step``, logged, with samples; a preemption
    during it saves ``step`` to be evaluated on resume."""
    try:
      result = run.evaluate(state.ema_params, interrupt=watch.poll)
    except evaluation.EvaluationInterrupted:
      stop(step, evaluation_pending=True)
    # Only a redone evaluation (at ``start``) can find its record logged.
    if step > start or not _logged(workdir, step, "test"):
      writer.write(step, "test", result)
    if step != num_steps:
      run.save_samples(state.ema_params, step)
    return result

  bar = tqdm(
    total=num_steps,
    initial=start,
    desc="train",
    unit="step",
    disable=jax.process_index() != 0,
    mininterval=1.0,
  )
  if pending and start < num_steps:
    # The evaluation a preemption interrupted, then its rank among the best.
    checkpointer.save(
      start, state, meta(), metrics=evaluate(start), only_best=True
    )
  last_time, last_step = time.perf_counter(), start
  # Closed however the loop ends, so that an error line starts a line.
  try:
    for step in range(start + 1, num_steps + 1):
      batch = shard_batch(next(run.iterator), run.mesh)
      state, metrics = train_step(state, batch)
      # The save started after the previous step ran alongside this one;
      # waiting here stops a run whose save failed within one step.
      checkpointer.wait()
      bar.update(1)
      if step % config["log_every"] == 0 or step == num_steps:
        metrics = jax.device_get(metrics)
        now = time.perf_counter()
        metrics["steps_per_s"] = (step - last_step) / max(now - last_time, 1e-9)
        # The rate of this step's update (optax counts updates from 0).
        metrics["learning_rate"] = np.asarray(run.schedule(step - 1)).item()
        last_time, last_step = now, step
        writer.write(step, "train", metrics)
        headline = run.task.headline
        bar.set_postfix(
          {
            "loss": f"{metrics['loss']:.4g}",
            headline: f"{metrics.get(headline, float('nan')):.4g}",
            "steps/s": f"{metrics['steps_per_s']:.2f}",
          }
        )
        if int(state.consecutive_skipped) >= config["max_consecutive_skips"]:
          raise NonFiniteLossError(
            f"{int(state.consecutive_skipped)} consecutive updates were "
            f"skipped for non-finite loss or gradients at step {step}; "
            "lower the learning rate or check the data."
          )
      evaluation_due = step % config["eval_every"] == 0 or step == num_steps
      if watch.poll():
        stop(step, evaluation_pending=evaluation_due)
      eval_metrics = None
      if evaluation_due and step != num_steps:
        eval_metrics = evaluate(step)
      if step != num_steps and (
        step % config["checkpoint_every"] == 0 or eval_metrics is not None
      ):
        checkpointer.save(step, state, meta(), metrics=eval_metrics)
  finally:
    bar.close()
    # Stops a stream's reader threads and worker processes, which would
    # otherwise read ahead through the evaluation and outlive the run.
    run.iterator.close()
  # A run resumed at its last step has logged and saved its end already,
  # unless a preemption interrupted its final evaluation.
  finished_before = restored_step == num_steps and not pending
  if finished_before:
    final = run.evaluate(state.ema_params)
  else:
    final = evaluate(num_steps)
  final["skipped_updates"] = int(state.skipped)
  if not finished_before:
    checkpointer.save(
      num_steps,
      state,
      meta(),
      metrics=final,
      only_best=restored_step == num_steps,
    )
  final["samples"] = run.save_samples(state.ema_params, num_steps)
  checkpointer.close()
  writer.close()
  if not finished_before and jax.process_index() == 0:
    checkpointer.verify(num_steps)
  final["checkpoint_step"] = num_steps
  return final


def _logged(workdir: str, step: int, split: str) -> bool:
  """Whether ``metrics.jsonl`` has a ``split`` record of ``step`` (a
  resumed run that redoes an evaluation logs it once)."""
  if jax.process_index() != 0:
    return True  # only process 0 writes
  return any(
    r["step"] == step and r["split"] == split
    for r in reporting.read_metrics(workdir)
  )


def _check_or_write_config(
  workdir: str, config: Mapping, *, overwrite: bool = False, write: bool = True
) -> None:
  """``checkpoint.check_or_write_config`` on process 0, then on the others
  (which check that they were given the same config)."""
  if jax.process_index() == 0:
    checkpoint.check_or_write_config(
      workdir,
      dict(config),
      overwrite=overwrite,
      write=write,
      keep=(workdir_lock.LOCK_FILE,),
      migrate=with_defaults,
    )
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # noqa: PLC0415

    multihost_utils.sync_global_devices(f"config checked, write={write}")
    if jax.process_index() > 0:
      checkpoint.check_or_write_config(
        workdir, dict(config), write=write, migrate=with_defaults
      )


def __getattr__(name: str):
  # ``load_trained`` moved to ``flowjax_gen.runs`` (run I/O sits above the
  # training layer); this alias is kept for one release.
  if name == "load_trained":
    import warnings  # noqa: PLC0415

    from flowjax_gen import runs  # noqa: PLC0415

    warnings.warn(
      "flowjax_gen.training.loop.load_trained moved to "
      "flowjax_gen.runs.load_trained.",
      DeprecationWarning,
      stacklevel=2,
    )
    return runs.load_trained
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
