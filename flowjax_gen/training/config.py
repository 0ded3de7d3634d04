"""Training configs: validation before any compute, and migration of configs
saved by earlier releases.

A config is the flat mapping of ``experiments/configs/*.py``
(``ml_collections.ConfigDict.to_dict()``); ``validate_config`` names the
field and what it allows, so a bad run stops before data are loaded or
programs compiled.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Optional

import jax

from flowjax_gen._checks import (
  check_choice,
  check_in_unit_interval,
  check_non_negative_int,
  check_positive_int,
)
from flowjax_gen.models.registry import family_of
from flowjax_gen.objectives.dequantization import DEQUANTIZATIONS
from flowjax_gen.training.state import OPTIMIZERS, SCHEDULES


def validate_config(
  config: Mapping,
  *,
  num_devices: Optional[int] = None,
  num_processes: Optional[int] = None,
) -> None:
  """Checks a training config before any compute; errors name the field.

  ``num_devices`` and ``num_processes`` default to the running JAX's.
  """
  family_of(config["model"])
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
    check_positive_int(f"config.{name}", config[name])
  check_non_negative_int("config.num_steps", config["num_steps"])
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
  check_choice("config.optimizer", config["optimizer"], OPTIMIZERS)
  check_choice("config.decay", config["decay"], SCHEDULES)
  if not (isinstance(config["n_bits"], int) and 0 <= config["n_bits"] <= 8):
    raise ValueError(
      "config.n_bits must be an int in 0..8 (0: continuous "
      f"data); got {config['n_bits']!r}."
    )
  if config["dataset"] == "npz" and not os.path.isfile(config["data_path"]):
    raise ValueError(
      f"config.data_path: no dataset file at {config['data_path']!r}."
    )
  check_in_unit_interval("config.adam_b1", config["adam_b1"])
  check_in_unit_interval("config.ema_decay", config["ema_decay"])
  _check_dequantization(config)


def _check_dequantization(config: Mapping) -> None:
  """A learned dequantiser needs a flow on discrete data; a flow's
  ``objective_kwargs`` are that dequantiser's arguments."""
  dequantization = config["dequantization"]
  check_choice("config.dequantization", dequantization, DEQUANTIZATIONS)
  if family_of(config["model"]) != "flow":
    if dequantization != "uniform":
      raise ValueError(
        f"config.dequantization = {dequantization!r} applies to flows only; "
        f"config.model is {config['model']!r}."
      )
    return
  if dequantization == "variational" and not config["n_bits"]:
    raise ValueError(
      "config.dequantization = 'variational' needs discrete data "
      "(config.n_bits in 1..8); got n_bits = 0 (continuous data)."
    )
  if dequantization == "uniform" and config["objective_kwargs"]:
    raise ValueError(
      "config.objective_kwargs of a flow are the arguments of its "
      "variational dequantiser; got "
      f"{dict(config['objective_kwargs'])!r} with "
      "config.dequantization = 'uniform'."
    )


# Fields added after the first release; runs saved before them read as the
# defaults, which reproduce what those runs did.
_LATER_FIELDS = {
  "objective_kwargs": {},
  "eval_kwargs": {},
  "adam_b1": 0.9,
  "dequantization": "uniform",
}


def with_defaults(config: Mapping) -> dict:
  """``config`` with every later-added field present."""
  return {**_LATER_FIELDS, **dict(config)}
