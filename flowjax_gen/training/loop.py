"""The training loop: config in, trained checkpoint and report out.

``train_and_evaluate(config, workdir)`` trains any model family (flows,
auto-encoders, VAEs, GANs, the classifier; see ``tasks``), evaluates on the
test split periodically and at the end, writes pictures and learning curves,
and keeps checkpoints. Running it again with the same config and workdir
resumes from the newest readable checkpoint (params, optimiser, EMA, step --
which is also the RNG state -- and the data iterator's position), so a killed
run that is restarted ends with the same params, bit for bit, as one that
never stopped.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any, Optional

import jax
import numpy as np
from tqdm import tqdm

from flowjax_gen import checkpoint, data
from flowjax_gen.training import evaluation, reporting, tasks
from flowjax_gen.training.parallel import (
  data_mesh,
  data_parallel_init,
  process_slice,
  replicate,
  shard_batch,
)
from flowjax_gen.training.state import (
  OPTIMIZERS,
  SCHEDULES,
  TrainState,
  create_state,
  learning_rate_schedule,
  make_optimizer,
)
from flowjax_gen.training.step import make_train_step


class NonFiniteLossError(RuntimeError):
  """Too many consecutive updates were skipped for non-finite values."""


def _positive(config: Mapping, name: str, *, allow_zero: bool = False):
  value = config[name]
  ok = (
    isinstance(value, int)
    and not isinstance(value, bool)
    and (value >= 0 if allow_zero else value > 0)
  )
  if not ok:
    rule = ">= 0" if allow_zero else "> 0"
    raise ValueError(f"config.{name} must be an int {rule}; got {value!r}.")


def validate_config(
  config: Mapping,
  *,
  num_devices: Optional[int] = None,
  num_processes: Optional[int] = None,
) -> None:
  """Checks a training config before any compute; errors name the field.

  ``num_devices`` and ``num_processes`` default to the running JAX's.
  """
  tasks.family_of(config["model"])
  for name in (
    "batch_size",
    "eval_batch_size",
    "init_batch_size",
    "log_every",
    "eval_every",
    "checkpoint_every",
    "keep_checkpoints",
    "max_consecutive_skips",
    "num_samples",
  ):
    _positive(config, name)
  _positive(config, "num_steps", allow_zero=True)
  devices = num_devices or jax.device_count()
  processes = num_processes or jax.process_count()
  for name in ("batch_size", "eval_batch_size", "init_batch_size"):
    if config[name] % devices:
      raise ValueError(
        f"config.{name} = {config[name]} must be divisible by "
        f"the number of devices ({devices})."
      )
  if config["batch_size"] % processes:
    raise ValueError(
      f"config.batch_size = {config['batch_size']} must be "
      f"divisible by the number of processes ({processes})."
    )
  if config["optimizer"] not in OPTIMIZERS:
    raise ValueError(
      f"config.optimizer must be one of {OPTIMIZERS}; got "
      f"{config['optimizer']!r}."
    )
  if config["decay"] not in SCHEDULES:
    raise ValueError(
      f"config.decay must be one of {SCHEDULES}; got {config['decay']!r}."
    )
  if not (isinstance(config["n_bits"], int) and 0 <= config["n_bits"] <= 8):
    raise ValueError(
      "config.n_bits must be an int in 0..8 (0: continuous "
      f"data); got {config['n_bits']!r}."
    )
  if config["dataset"] == "npz" and not os.path.isfile(config["data_path"]):
    raise ValueError(
      f"config.data_path: no dataset file at {config['data_path']!r}."
    )
  if not 0.0 <= config["adam_b1"] < 1.0:
    raise ValueError(
      f"config.adam_b1 must be in [0, 1); got {config['adam_b1']!r}."
    )
  if not 0.0 <= config["ema_decay"] < 1.0:
    raise ValueError(
      f"config.ema_decay must be in [0, 1); got {config['ema_decay']!r}."
    )


# Fields added after the first release; runs saved before them read as the
# defaults, which reproduce what those runs did.
_LATER_FIELDS = {"objective_kwargs": {}, "eval_kwargs": {}, "adam_b1": 0.9}


def with_defaults(config: Mapping) -> dict:
  """``config`` with every later-added field present."""
  return {**_LATER_FIELDS, **dict(config)}


def _load_split(config: Mapping, split: str, limit: int) -> dict:
  return data.load(
    config["dataset"],
    split,
    path=config["data_path"] or None,
    num_examples=limit or None,
    seed=config["seed"],
  )


class Experiment:
  """The pieces of one run (data, task, mesh, optimiser), built from a
  validated config."""

  def __init__(self, config: Mapping, workdir: str):
    self.config = config
    self.workdir = workdir
    self.train_source = _load_split(
      config, "train", config["num_train_examples"]
    )
    self.test_source = _load_split(config, "test", config["num_test_examples"])
    self.event_shape = data.event_shape(self.train_source)
    self.task = tasks.build_task(config, self.event_shape)
    self.mesh = data_mesh()
    schedule = learning_rate_schedule(
      learning_rate=config["learning_rate"],
      warmup_steps=config["warmup_steps"],
      num_steps=config["num_steps"],
      decay=config["decay"],
    )
    self.optimizer = make_optimizer(
      name=config["optimizer"],
      schedule=schedule,
      grad_clip_norm=config["grad_clip_norm"],
      b1=config["adam_b1"],
    )
    self.iterator = data.BatchIterator(
      self.train_source,
      batch_size=config["batch_size"],
      seed=config["seed"],
      shuffle=True,
      process_index=jax.process_index(),
      process_count=jax.process_count(),
      random_flip=config["random_flip"],
    )
    self.evaluate_fn = evaluation.jit_per_example(
      self.task.per_example, self.mesh
    )

  def _global_batch(self, source: dict, size: int, order=None) -> dict:
    order = np.arange(size) if order is None else order[:size]
    return {
      k: np.asarray(v)[order]
      for k, v in source.items()
      if k in ("image", "label")
    }

  def init_state(self) -> TrainState:
    """Params from a (possibly data-dependent) init on one global batch."""
    size = min(self.config["init_batch_size"], len(self.train_source["image"]))
    size -= size % jax.device_count()
    order = np.random.default_rng(self.config["seed"]).permutation(
      len(self.train_source["image"])
    )
    global_batch = self._global_batch(self.train_source, size, order)
    batch = shard_batch(process_slice(global_batch), self.mesh)
    params = data_parallel_init(self.task.init, self.mesh)(
      jax.random.key(self.config["seed"]), batch
    )
    groups = None
    if isinstance(self.task.objective, Mapping):
      groups = tuple(self.task.objective)
    return replicate(
      create_state(params, self.optimizer, groups=groups), self.mesh
    )

  def train_step(self):
    return make_train_step(
      self.task.objective,
      self.optimizer,
      self.mesh,
      seed=self.config["seed"],
      ema_decay=self.config["ema_decay"],
      update_stats=self.task.update_stats,
    )

  def evaluate(self, params: Any) -> dict:
    result = evaluation.evaluate_split(
      self.evaluate_fn,
      params,
      self.test_source,
      batch_size=self.config["eval_batch_size"],
      mesh=self.mesh,
      seed=self.config["seed"],
    )
    return {**result, **self.task.summary}

  def pictures(self, params: Any) -> np.ndarray:
    """The task's pictures (samples, or reconstructions of the first
    ``num_samples`` test examples), computed on the host's devices."""
    n = min(self.config["num_samples"], len(self.test_source["image"]))
    batch = self._global_batch(self.test_source, n)
    return np.asarray(
      jax.jit(self.task.pictures)(
        params, jax.random.key(self.config["seed"] + 7), batch
      )
    )

  def draw_samples(
    self, params: Any, n: int, *, temperature: float, seed: int = 0
  ) -> np.ndarray:
    """``n`` samples of a generative model, drawn ``eval_batch_size`` at a
    time (one compilation) with keys ``fold_in(key(seed), chunk)``."""
    if self.task.sample is None:
      raise ValueError(
        f"a {self.task.family} model does not generate samples; only flows, "
        "VAEs and GANs do."
      )
    size = self.config["eval_batch_size"]
    sample = jax.jit(self.task.sample, static_argnums=(2, 3))
    chunks = []
    for index, begin in enumerate(range(0, n, size)):
      key = jax.random.fold_in(jax.random.key(seed), index)
      x = sample(params, key, size, float(temperature))
      chunks.append(np.asarray(x)[: n - begin])
    return np.concatenate(chunks)

  def save_samples(self, params: Any, step: int) -> str:
    x = self.pictures(params)
    n = min(self.config["num_samples"], len(self.test_source["image"]))
    # Reconstructions come as rows of kinds (clean, corrupted, output): one
    # grid row per kind.
    columns = n if len(x) > n else None
    folder = os.path.join(self.workdir, "samples")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"step_{step:07d}.png")
    if jax.process_index() == 0:
      if x.ndim == 2:
        reporting.save_scatter(x, path)
      else:
        reporting.save_image_grid(
          x, path, scale=max(1, 64 // x.shape[1]), columns=columns
        )
    return path


def train_and_evaluate(
  config: Mapping, workdir: str, *, overwrite: bool = False
) -> dict:
  """Trains (or resumes) a model as ``config`` says; returns final metrics.

  Args:
    config: a flat mapping (``ml_collections.ConfigDict.to_dict()``) with
      the fields of ``experiments/configs/*.py``.
    workdir: run directory; holds config, checkpoints, metrics, samples.
    overwrite: replace a run with a different config in ``workdir``.

  Raises:
    ValueError: bad config fields (before any compute).
    checkpoint.ConfigMismatchError: ``workdir`` holds another run.
    NonFiniteLossError: ``max_consecutive_skips`` updates in a row were
      skipped for NaN/inf loss or gradients.
  """
  config = with_defaults(config)
  validate_config(config)
  if jax.process_index() == 0:
    checkpoint.check_or_write_config(workdir, config, overwrite=overwrite)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # noqa: PLC0415

    multihost_utils.sync_global_devices("config checked")
    if jax.process_index() > 0:
      checkpoint.check_or_write_config(workdir, config)
  run = Experiment(config, workdir)
  writer = reporting.MetricWriter(workdir, enabled=jax.process_index() == 0)
  checkpointer = checkpoint.Checkpointer(
    workdir,
    keep=config["keep_checkpoints"],
    best_metric=run.task.best_metric,
  )
  state = run.init_state()
  restored = checkpointer.restore(state)
  if restored is not None:
    _, state, meta = restored
    run.iterator.set_state(meta["data"])
  start = int(state.step)
  train_step = run.train_step()
  num_steps = config["num_steps"]
  bar = tqdm(
    total=num_steps,
    initial=start,
    desc="train",
    unit="step",
    disable=jax.process_index() != 0,
    mininterval=1.0,
  )
  last_time, last_step = time.perf_counter(), start
  for step in range(start + 1, num_steps + 1):
    batch = shard_batch(next(run.iterator), run.mesh)
    state, metrics = train_step(state, batch)
    bar.update(1)
    if step % config["log_every"] == 0 or step == num_steps:
      metrics = jax.device_get(metrics)
      now = time.perf_counter()
      metrics["steps_per_s"] = (step - last_step) / max(now - last_time, 1e-9)
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
    eval_metrics = None
    if step % config["eval_every"] == 0 and step != num_steps:
      eval_metrics = run.evaluate(state.ema_params)
      writer.write(step, "test", eval_metrics)
      run.save_samples(state.ema_params, step)
    if step != num_steps and (
      step % config["checkpoint_every"] == 0 or eval_metrics is not None
    ):
      checkpointer.save(
        step, state, {"data": run.iterator.get_state()}, metrics=eval_metrics
      )
  bar.close()
  final = run.evaluate(state.ema_params)
  final["skipped_updates"] = int(state.skipped)
  writer.write(num_steps, "test", final)
  if checkpointer.latest_step() != num_steps:
    checkpointer.save(
      num_steps, state, {"data": run.iterator.get_state()}, metrics=final
    )
  final["samples"] = run.save_samples(state.ema_params, num_steps)
  checkpointer.close()
  writer.close()
  if jax.process_index() == 0:
    reporting.save_learning_curves(
      reporting.read_metrics(workdir),
      os.path.join(workdir, "learning_curves.png"),
      metric=run.task.headline,
    )
  return final


def load_trained(
  workdir: str, *, best: bool = False, overrides: Optional[Mapping] = None
) -> tuple[Experiment, TrainState, int]:
  """Rebuilds a run from ``workdir/config.json`` and restores its state.

  Args:
    workdir: a run directory written by ``train_and_evaluate``.
    best: restore the best-by-test-bits/dim checkpoint instead of the latest.
    overrides: config fields to change for evaluation only (e.g. the data
      file or the evaluation batch size); model fields cannot change.

  Returns:
    ``(experiment, state, step)``.
  """
  path = os.path.join(workdir, checkpoint.CONFIG_FILE)
  if not os.path.isfile(path):
    raise ValueError(
      f"workdir {workdir!r} holds no {checkpoint.CONFIG_FILE}; "
      "is it a training run directory?"
    )
  with open(path) as f:
    config = with_defaults(json.load(f))
  for name, value in dict(overrides or {}).items():
    if name not in config:
      raise ValueError(f"unknown config field {name!r} in overrides.")
    if name in ("model", "model_kwargs", "n_bits", "num_classes"):
      raise ValueError(
        f"config.{name} defines the model and cannot be "
        "overridden for evaluation."
      )
    config[name] = value
  validate_config(config)
  experiment = Experiment(config, workdir)
  checkpointer = checkpoint.Checkpointer(
    workdir, best_metric=experiment.task.best_metric
  )
  restored = checkpointer.restore(experiment.init_state(), best=best)
  checkpointer.close()
  if restored is None:
    raise ValueError(f"workdir {workdir!r} holds no checkpoint.")
  step, state, _ = restored
  return experiment, state, step
