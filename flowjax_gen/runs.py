"""Run I/O: what tools need from a finished training run's directory.

``load_trained`` rebuilds a run from ``workdir/config.json`` and restores
its checkpoint; ``load_codec`` turns it into a latent codec
(``latent.codecs``); ``fingerprint`` identifies the trained model, so
encodings and attribute vectors made with one checkpoint are refused by
another. This module sits above ``training`` and ``latent``, which stay
free of file reading: the latent tools take codecs and params as arguments,
and ``experiments/*.py`` call this module to get them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any, Optional

import jax
import numpy as np

from flowjax_gen import checkpoint
from flowjax_gen.latent.codecs import Codec, codec_from_task
from flowjax_gen.training.config import validate_config, with_defaults
from flowjax_gen.training.experiment import Experiment
from flowjax_gen.training.state import TrainState

__all__ = ["MODEL_FIELDS", "fingerprint", "load_codec", "load_trained"]

# Written by ``experiments/train.py`` when a run finishes.
FINAL_METRICS_FILE = "final_metrics.json"

# The config fields that define a model; with the params they identify it.
MODEL_FIELDS = ("model", "model_kwargs", "n_bits", "num_classes")


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
    ``(experiment, state, step)``: ``step`` is the checkpoint restored,
    the newest that passes its checksums.

  Raises:
    ValueError: no checkpoint, or (latest, not ``best``) the newest
      readable one is older than the step ``final_metrics.json`` reports.
  """
  path = os.path.join(workdir, checkpoint.CONFIG_FILE)
  if not os.path.isfile(path):
    raise ValueError(
      f"workdir {workdir!r} holds no {checkpoint.CONFIG_FILE}; "
      "is it a training run directory?"
    )
  with open(path) as f:
    config = with_defaults(json.load(f))
  final_step = _final_step(workdir, config)
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
  if not best and final_step is not None and step < final_step:
    raise ValueError(
      f"workdir {workdir!r}: the newest readable checkpoint is step {step}, "
      f"but {FINAL_METRICS_FILE} reports step {final_step} (the newer "
      "checkpoints could not be read); run the training command again to "
      "save the final state."
    )
  return experiment, state, step


def _final_step(workdir: str, config: Mapping) -> Optional[int]:
  """The step ``final_metrics.json`` reports (a finished run's last step;
  runs from before it was recorded end at ``num_steps``), or ``None`` for
  a run that has not finished."""
  path = os.path.join(workdir, FINAL_METRICS_FILE)
  if not os.path.isfile(path):
    return None
  try:
    with open(path) as f:
      return int(json.load(f).get("checkpoint_step", config["num_steps"]))
  except ValueError:  # torn by a crash while written: still a finished run
    return int(config["num_steps"])


def fingerprint(params: Any, config: Mapping[str, Any]) -> str:
  """A SHA-256 hex digest identifying a trained model.

  It covers the model-defining config fields (``MODEL_FIELDS``, as JSON with
  sorted keys) and, in tree order, every param leaf's path, dtype, shape and
  bytes: a change of any of them changes the digest.
  """
  digest = hashlib.sha256()
  fields = {name: config.get(name) for name in MODEL_FIELDS}
  digest.update(json.dumps(fields, sort_keys=True, default=str).encode())
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    value = np.ascontiguousarray(jax.device_get(leaf))
    header = f"{jax.tree_util.keystr(path)}|{value.dtype}|{value.shape}"
    digest.update(header.encode())
    digest.update(value.tobytes())
  return digest.hexdigest()


def load_codec(
  workdir: str, *, best: bool = False, posterior: str = "mean"
) -> tuple[Codec, Any, str, Any]:
  """The codec of a training run and what it needs.

  Args:
    workdir: a run directory of ``experiments/train.py``.
    best: use the best checkpoint instead of the latest.
    posterior: the VAE codec's ``posterior``.

  Returns:
    ``(codec, params, fingerprint, experiment)``: ``params`` are the
    evaluation (EMA) params, ``experiment`` the rebuilt
    ``training.experiment.Experiment`` (config, data, mesh).
  """
  experiment, state, _ = load_trained(workdir, best=best)
  codec = codec_from_task(
    experiment.task, experiment.config, posterior=posterior
  )
  params = state.ema_params
  return codec, params, fingerprint(params, experiment.config), experiment
