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
import numpy as np

from flowjax_gen import data
from flowjax_gen._checks import (
  check_choice,
  check_in_unit_interval,
  check_non_negative_int,
  check_positive_int,
)
from flowjax_gen.models.registry import factory_defaults, family_of
from flowjax_gen.objectives.dequantization import DEQUANTIZATIONS
from flowjax_gen.training.state import OPTIMIZERS, SCHEDULES
from flowjax_gen.typing import COMPUTE_DTYPES


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
  check_choice("config.compute_dtype", config["compute_dtype"], COMPUTE_DTYPES)
  check_choice("config.decay", config["decay"], SCHEDULES)
  if not (isinstance(config["n_bits"], int) and 0 <= config["n_bits"] <= 8):
    raise ValueError(
      "config.n_bits must be an int in 0..8 (0: continuous "
      f"data); got {config['n_bits']!r}."
    )
  _check_input(config)
  check_in_unit_interval("config.adam_b1", config["adam_b1"])
  check_in_unit_interval("config.ema_decay", config["ema_decay"])
  _check_dequantization(config)
  _check_eval_kwargs(config)


INPUTS = ("memory", "stream")
# Sources that only exist in memory (generated, or one file read whole).
_IN_MEMORY_ONLY = ("digits", "npz", *data.TOY_DENSITIES)


def _check_input(config: Mapping) -> None:
  """The dataset, its path and the way it is read fit together."""
  check_choice("config.input", config["input"], INPUTS)
  check_non_negative_int("config.input_threads", config["input_threads"])
  check_non_negative_int("config.input_workers", config["input_workers"])
  dataset, path = config["dataset"], config["data_path"]
  if path and dataset not in ("npz", "records"):
    raise ValueError(
      f"config.data_path = {path!r} is read only with config.dataset = "
      f"'npz' (a file) or 'records' (a folder of ArrayRecord files); got "
      f"dataset {dataset!r}. Pass --config.dataset=npz or records to train "
      "on it, or drop data_path."
    )
  if dataset == "npz" and not os.path.isfile(path):
    raise ValueError(f"config.data_path: no dataset file at {path!r}.")
  if dataset == "records" and not os.path.isdir(path):
    raise ValueError(
      f"config.data_path: no folder of ArrayRecord files at {path!r}."
    )
  if config["input"] == "memory":
    return
  if dataset in _IN_MEMORY_ONLY:
    raise ValueError(
      f"config.dataset = {dataset!r} is read into memory; config.input = "
      "'stream' reads a TFDS dataset prepared as ArrayRecord or "
      "config.dataset = 'records' with config.data_path = FOLDER "
      "(experiments/prepare_records.py writes one from a .npz file)."
    )
  if config["drop_bad_examples"]:
    raise ValueError(
      "config.drop_bad_examples drops examples found in a pass over the "
      "split before training; streamed input makes no such pass, and "
      "refuses a bad record when it reaches it: fix the data, or train "
      "with config.input = 'memory'."
    )


# The evaluation options each family takes (``config.eval_kwargs``).
_EVAL_KWARGS = {
  "vae": ("num_importance_samples", "chunk_size"),
  "flow": ("num_dequantization_samples",),
}


def dequantization_draws(config: Mapping) -> int:
  """The ``k`` draws of ``q(u | x)`` behind a variationally dequantised
  flow's importance-weighted bound (``eval_kwargs
  .num_dequantization_samples``); 1, no such bound, when unset."""
  return config["eval_kwargs"].get("num_dequantization_samples", 1)


def _check_eval_kwargs(config: Mapping) -> None:
  """``config.eval_kwargs`` holds options the run's evaluation uses: a
  VAE's importance samples, or the draws of a variationally dequantised
  flow's importance-weighted bound; the other families take none."""
  given = sorted(dict(config["eval_kwargs"]))
  family = family_of(config["model"])
  allowed = _EVAL_KWARGS.get(family, ())
  unknown = [name for name in given if name not in allowed]
  if unknown:
    takes = ", ".join(allowed) if allowed else "none"
    raise ValueError(
      f"config.eval_kwargs {unknown} do not apply to a {family} run "
      f"(config.model = {config['model']!r}); its evaluation takes: "
      f"{takes}."
    )
  if family == "flow" and given and config["dequantization"] != "variational":
    raise ValueError(
      "config.eval_kwargs.num_dequantization_samples draws from a learned "
      "dequantiser: it needs config.dequantization = 'variational'; got "
      f"{config['dequantization']!r}."
    )
  for name in given:
    check_positive_int(
      f"config.eval_kwargs.{name}", config["eval_kwargs"][name]
    )


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


# Factory arguments that a training task sets from other fields (a
# ``model_kwargs`` entry would override them): a VAE's ``n_bits`` is
# ``config.n_bits``, a classifier's ``num_classes`` is ``config.num_classes``
# and RealNVP's batch-norm mode is chosen per call (training or evaluation).
_SET_BY_TASK = {
  "vae": ("n_bits",),
  "classifier": ("num_classes",),
  "realnvp": ("use_running_average",),
}
# What a command line can give (``--config.model_kwargs.NAME=VALUE``).
_COMMAND_LINE_TYPES = (bool, int, float, str, tuple)


def model_kwargs_defaults(model: str) -> dict:
  """The factory arguments of ``model`` that a config sets through
  ``model_kwargs``, with the factory's defaults.

  Left out: the arguments a training task derives from other config fields
  (``_SET_BY_TASK``) and those whose default is not a value a command line
  can give (``None`` for Python objects such as a VAE's ``encoder``).
  """
  return {
    name: value
    for name, value in factory_defaults(model).items()
    if name not in _SET_BY_TASK.get(model, ())
    and isinstance(value, _COMMAND_LINE_TYPES)
  }


def check_data_kind(config: Mapping, source: dict) -> None:
  """Checks ``config.n_bits`` against one loaded split.

  ``n_bits > 0`` dequantises 8-bit pixel levels, integers ``0..255``: on
  other values (a float ``.npz`` of scaled images, a toy density) it floors
  them into bins and reports meaningless bits/dim. Integer data
  (``data.is_discrete``) are levels by their dtype; float data are checked
  value by value, on the host, once. ``n_bits = 0`` models the values as
  they are: for a flow on integer pixels that is a density of the raw
  levels, no likelihood of discrete data.
  """
  dataset = config["dataset"]
  images = source["image"]
  discrete = data.is_discrete(source)
  if config["n_bits"] and not discrete:
    off_grid = (images != np.floor(images)) | (images < 0) | (images > 255)
    if off_grid.any():
      raise ValueError(
        f"config.dataset = {dataset!r} holds continuous values "
        f"({images.dtype}, e.g. {images[off_grid].flat[0]}), but "
        f"config.n_bits = {config['n_bits']} dequantises 8-bit pixel levels "
        "(integers 0..255): pass --config.n_bits=0 to model the values as "
        "they are (or store the pixel levels)."
      )
  if not config["n_bits"] and discrete and family_of(config["model"]) == "flow":
    raise ValueError(
      f"config.dataset = {dataset!r} holds integer pixel levels "
      f"({images.dtype}), but config.n_bits = 0 models them as continuous "
      "values: pass --config.n_bits=8 (or fewer bits) to dequantise them."
    )


# Fields added after the first release; runs saved before them read as the
# defaults, which reproduce what those runs did.
_LATER_FIELDS = {
  "objective_kwargs": {},
  "eval_kwargs": {},
  "adam_b1": 0.9,
  "drop_bad_examples": False,
  "dequantization": "uniform",
  "compute_dtype": "float32",
  "input": "memory",
  "input_threads": 2,
  "input_workers": 0,
}

CONFIG_VERSION = 3

# The factory defaults a version changed: a config recorded before
# ``version`` for one of ``models`` that left ``field`` to the factory
# trained with ``old_value``. Version 2 changed Glow's coupling scale from
# ``sigmoid(h + 2)`` (unbounded inverse, 1 / s = 1 + exp(-h - 2)) to
# ``exp(tanh(h))``; version 3 added Flow++'s ``gate_kernel_size`` (default
# 1, its paper's), and every earlier ``flowpp`` run had a 3x3 gate
# convolution.
_CHANGED_DEFAULTS = (
  # (version, models, field, old_value)
  (2, ("glow",), "scale_fn", "sigmoid"),
  (3, ("flowpp",), "gate_kernel_size", 3),
)


def with_defaults(config: Mapping) -> dict:
  """``config`` with every later-added field present, migrated to
  ``CONFIG_VERSION`` so that it rebuilds the model it was trained with."""
  config = {**_LATER_FIELDS, **dict(config)}
  recorded_version = config.get("config_version", 1)
  for version, models, field, old_value in _CHANGED_DEFAULTS:
    if recorded_version < version and config["model"] in models:
      kwargs = dict(config.get("model_kwargs") or {})
      kwargs.setdefault(field, old_value)
      config["model_kwargs"] = kwargs
  config["config_version"] = CONFIG_VERSION
  return config
