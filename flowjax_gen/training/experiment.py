"""One run's pieces, built from a validated config: data, task, mesh,
optimiser, iterator, evaluation and pictures.

``Experiment`` is what the loop (``loop.train_and_evaluate``) drives and
what the tools working on a finished run (``flowjax_gen.runs``) rebuild.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Optional

import jax
import numpy as np

from flowjax_gen import data
from flowjax_gen.parallel import (
  data_mesh,
  data_parallel_init,
  process_slice,
  shard_batch,
)
from flowjax_gen.training import evaluation, reporting, tasks
from flowjax_gen.training.config import check_data_kind
from flowjax_gen.training.state import (
  TrainState,
  create_state,
  learning_rate_schedule,
  make_optimizer,
)
from flowjax_gen.training.step import make_train_step


def _open_split(config: Mapping, split: str, limit: int) -> data.Split:
  """The split in memory, or on disk with ``config.input = "stream"``."""
  # With n_bits > 0 the models read values as 8-bit pixel levels, so
  # float images outside [0, 255] are refused too.
  if config["input"] == "stream":
    return data.RecordSource(
      config["dataset"],
      split,
      path=config["data_path"] or None,
      num_examples=limit or None,
      value_range=data.PIXEL_RANGE if config["n_bits"] else None,
      pixel_levels=bool(config["n_bits"]),
    )
  return data.load(
    config["dataset"],
    split,
    path=config["data_path"] or None,
    num_examples=limit or None,
    seed=config["seed"],
    value_range=data.PIXEL_RANGE if config["n_bits"] else None,
    drop_bad=config["drop_bad_examples"],
  )


class Experiment:
  """The pieces of one run (data, task, mesh, optimiser), built from a
  validated config."""

  def __init__(self, config: Mapping, workdir: str):
    self.config = config
    self.workdir = workdir
    self.train_source = _open_split(
      config, "train", config["num_train_examples"]
    )
    self.test_source = _open_split(config, "test", config["num_test_examples"])
    for source in (self.train_source, self.test_source):
      if isinstance(source, data.RecordSource):
        # Records are checked, and float levels made uint8, as they are read.
        check_data_kind(config, data.take(source, [0], keys=("image",)))
        continue
      check_data_kind(config, source)
      if config["n_bits"] and not data.is_discrete(source):
        # Float pixel levels, checked above to be integers in 0..255: the
        # objectives take pixels as integers, as every source loads them.
        source["image"] = np.asarray(source["image"]).astype(np.uint8)
    self.event_shape = data.event_shape(
      data.take(self.train_source, [0], keys=("image",))
    )
    self.task = tasks.build_task(config, self.event_shape)
    self.mesh = data_mesh()
    self.schedule = schedule = learning_rate_schedule(
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
    self.iterator: data.BatchIterator | data.StreamIterator
    if isinstance(self.train_source, data.RecordSource):
      self.iterator = data.StreamIterator(
        self.train_source,
        batch_size=config["batch_size"],
        seed=config["seed"],
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        random_flip=config["random_flip"],
        threads=config["input_threads"],
        workers=config["input_workers"],
      )
    else:
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

  def init_state(self) -> TrainState:
    """Params from a (possibly data-dependent) init on one global batch:
    the first ``init_batch_size`` examples of a permutation of the train
    split (a stream's: its first positions, so no permutation of the whole
    split is made)."""
    num_train = data.num_examples(self.train_source)
    size = min(self.config["init_batch_size"], num_train)
    size -= size % jax.device_count()
    if isinstance(self.iterator, data.StreamIterator):
      order = self.iterator.record_indices(size)
    else:
      order = np.random.default_rng(self.config["seed"]).permutation(num_train)
    global_batch = data.take(self.train_source, order[:size])
    batch = shard_batch(process_slice(global_batch), self.mesh)
    groups = None
    if isinstance(self.task.objective, Mapping):
      groups = tuple(self.task.objective)

    def init(key, batch):
      # The optimiser state and the EMA copy are made in the same program
      # as the params: made eagerly, each leaf's zeros and copy would be a
      # program of its own (seconds for a model of a few hundred leaves).
      params = self.task.init(key, batch)
      return create_state(params, self.optimizer, groups=groups)

    return data_parallel_init(init, self.mesh)(
      jax.random.key(self.config["seed"]), batch
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

  def evaluate(
    self, params: Any, interrupt: Optional[Callable[[], bool]] = None
  ) -> dict:
    """Test-split metrics; ``interrupt`` (``evaluation.evaluate_split``)
    can stop it between batches."""
    result = evaluation.evaluate_split(
      self.evaluate_fn,
      params,
      self.test_source,
      batch_size=self.config["eval_batch_size"],
      mesh=self.mesh,
      seed=self.config["seed"],
      interrupt=interrupt,
    )
    return {**result, **self.task.summary}

  def pictures(self, params: Any) -> np.ndarray:
    """The task's pictures (samples, or reconstructions of the first
    ``num_samples`` test examples), computed on the host's devices."""
    n = min(self.config["num_samples"], data.num_examples(self.test_source))
    batch = data.take(self.test_source, np.arange(n))
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
    n = min(self.config["num_samples"], data.num_examples(self.test_source))
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
