"""Fields every experiment config has, with their defaults, and the two
steps every ``get_config(arg)`` takes: ``parse_arg`` (refuse an unknown
argument) and ``with_factory_defaults`` (every model argument settable from
the command line)."""

from __future__ import annotations

from collections.abc import Sequence

import ml_collections

from flowjax_gen.training.config import CONFIG_VERSION, model_kwargs_defaults


def parse_arg(arg: str, allowed: Sequence[str] = ("smoke",)) -> set[str]:
  """The options of a config argument, ``--config=FILE.py:a,b``.

  An unknown option is refused with the valid ones: ignoring it (a typo
  such as ``:smok``) would run the full config.
  """
  options = set(filter(None, (arg or "").split(",")))
  unknown = sorted(options - set(allowed))
  if unknown:
    valid = ", ".join(repr(a) for a in allowed)
    raise ValueError(
      f"unknown config argument {', '.join(map(repr, unknown))}; this config "
      f"takes {valid} (comma-separated) or nothing (the full run)."
    )
  return options


def with_factory_defaults(
  config: ml_collections.ConfigDict,
) -> ml_collections.ConfigDict:
  """``config`` with every argument of its model's factory in
  ``model_kwargs``, those it does not set at the factory's default.

  A command line can only override fields that exist
  (``--config.model_kwargs.remat=True``); the recorded config then also
  names every argument the model was built with.
  """
  for name, value in model_kwargs_defaults(config.model).items():
    if name not in config.model_kwargs:
      config.model_kwargs[name] = value
  return config


def base_config() -> ml_collections.ConfigDict:
  """Defaults shared by every config; each file overrides what differs.

  Fields:
    model / model_kwargs: a flow (``nice``, ``realnvp``, ``glow``) or
      ``autoencoder``, ``vae``, ``gan``, ``classifier``, and the keyword
      arguments of its factory in ``flowjax_gen.models``; every config
      carries all of them (``with_factory_defaults``), so each can be set
      on the command line. A name missing from a saved config takes the
      default of the release that saved it (``training.config
      .with_defaults``), so a run recorded before an argument existed
      rebuilds the same model (e.g. Glow's memory options ``remat`` and
      ``invertible_backprop``, both off).
    objective_kwargs: keyword arguments of the family's training objective
      (e.g. a VAE's ``beta``, a GAN's ``loss``, a denoiser's ``corruption``;
      a flow's are those of its ``variational_dequantizer``).
    dequantization: a flow's noise on discrete data: ``uniform``
      (``u ~ U[0, 1)``, the papers' bound) or ``variational`` (Flow++'s
      learned ``q(u | x)``, trained jointly; evaluation reports both
      bounds).
    eval_kwargs: keyword arguments of its evaluation (e.g. a VAE's
      ``num_importance_samples``).
    dataset: ``digits``, a 2-D toy density, ``npz`` (with ``data_path``,
      a file) or a tfds name (``mnist``, ``cifar10``, ...) prepared in
      TFDS's data directory; with ``input = "stream"``, a tfds name
      prepared as ArrayRecord or ``records`` (with ``data_path``, a
      folder of ArrayRecord files).
    input: ``memory`` reads each split whole on every process; ``stream``
      reads records on demand through grain, each process only its part
      of each batch, for sets larger than a host's memory.
    input_threads / input_workers: a stream's reader threads and worker
      processes (0: read in the training process).
    n_bits: pixel depth after reduction (0: continuous data; checked
      against the data when they are loaded).
    num_classes: > 0 trains a class-conditional model on ``label``.
    batch_size: global batch (all devices and processes).
    drop_bad_examples: train and evaluate without the examples holding
      NaN/inf or out-of-range values (their number is printed) instead of
      refusing the data.
  """
  config = ml_collections.ConfigDict()
  # Field meanings and factory defaults of this release (see
  # flowjax_gen.training.config.with_defaults for older runs).
  config.config_version = CONFIG_VERSION
  config.model = "glow"
  config.model_kwargs = ml_collections.ConfigDict()
  config.objective_kwargs = ml_collections.ConfigDict()
  config.eval_kwargs = ml_collections.ConfigDict()
  config.dequantization = "uniform"
  config.dataset = "digits"
  config.data_path = ""
  config.num_train_examples = 0  # 0: the whole split
  config.num_test_examples = 0
  config.drop_bad_examples = False
  config.input = "memory"
  config.input_threads = 2
  config.input_workers = 0
  config.n_bits = 8
  config.num_classes = 0
  config.random_flip = False
  config.seed = 0
  config.batch_size = 64
  config.eval_batch_size = 256
  config.init_batch_size = 256
  config.num_steps = 1000
  config.optimizer = "adam"
  config.learning_rate = 1e-3
  config.adam_b1 = 0.9
  config.warmup_steps = 100
  config.decay = "cosine"
  config.grad_clip_norm = 50.0
  config.ema_decay = 0.0
  config.log_every = 50
  config.eval_every = 500
  config.checkpoint_every = 250
  config.keep_checkpoints = 3
  config.max_consecutive_skips = 20
  config.num_samples = 64
  config.temperature = 0.7
  # What the networks compute in: "float32" or "bfloat16" (TPUs and
  # recent GPUs; emulated and slow on most CPUs). Params, optimiser state,
  # log-determinants, priors and objectives stay float32.
  config.compute_dtype = "float32"
  return config


def smoke(
  config: ml_collections.ConfigDict, **model_kwargs
) -> ml_collections.ConfigDict:
  """A few-step, tiny-model variant that runs in seconds on mock data."""
  config.model_kwargs.update(model_kwargs)
  config.num_steps = 3
  config.batch_size = 8
  config.eval_batch_size = 8
  config.init_batch_size = 8
  config.num_train_examples = 32
  config.num_test_examples = 16
  config.warmup_steps = 1
  config.log_every = 1
  config.eval_every = 2
  config.checkpoint_every = 2
  config.num_samples = 4
  return config
