"""What the training loop needs from each model family, built from a config.

The loop is the same for every family (flows, auto-encoders, VAEs, GANs and
the classifier behind the sample-quality metric); a ``Task`` is the part that
differs: how params are initialised from a batch, the objective (or, for a
GAN, one objective per parameter group), the per-example evaluation metrics,
which of them ranks checkpoints, and the pictures written at every
evaluation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from flowjax_gen import objectives, preprocess
from flowjax_gen._checks import check_positive_int
from flowjax_gen.models.dequantization import (
  nested_flow,
  variational_dequantizer,
)
from flowjax_gen.models.flows import Flow
from flowjax_gen.models.registry import (
  FAMILIES,
  MODELS,
  build_flow,
  build_model,
  family_of,
)
from flowjax_gen.objectives import autoencoder as ae_objectives
from flowjax_gen.objectives import classification
from flowjax_gen.objectives import gan as gan_objectives
from flowjax_gen.objectives import vae as vae_objectives
from flowjax_gen.training.config import dequantization_draws

__all__ = ["FAMILIES", "MODELS", "Task", "build_task", "family_of"]


class Task(NamedTuple):
  """The family-specific half of a training run.

  Attributes:
    family: one of ``FAMILIES``.
    model: the model object (``Flow``, evaluating by default,
      ``AutoEncoder``, ``VAE``, ``GAN``, ``Classifier``), for tools that
      work on a trained run (evaluation, latent arithmetic).
    init: ``(key, batch) -> params``; ``batch`` is one global batch as the
      pipeline yields it (data-dependent init sees all of it).
    objective: ``(params, batch, key) -> (loss, metrics)``, or a mapping of
      parameter-group name to objective, trained in turn (a GAN).
    per_example: ``(params, batch, key) -> {metric: (batch,)}`` for
      evaluation.
    pictures: ``(params, key, batch) -> images in [0, 1]`` (NHWC) or 2-D
      points, written at every evaluation; ``batch`` is a fixed test batch
      of ``num_samples`` examples (used by reconstructions only).
    sample: ``(params, key, n, temperature) -> n samples`` for generative
      families (flows, VAEs, GANs), ``None`` for the others.
    embed: ``(params, images in [0, 1]) -> features`` for the classifier
      (the feature space of the sample-quality metric), else ``None``.
    headline: the metric shown in the progress bar and learning curves.
    best_metric: the evaluation metric that ranks checkpoints (``None``: no
      best checkpoint), minimised.
    update_stats: ``(params, batch, key) -> params`` for running statistics.
    summary: constant figures reported with every evaluation.
  """

  family: str
  model: Any
  init: Callable
  objective: Any
  per_example: Callable
  pictures: Callable
  headline: str
  best_metric: Optional[str]
  update_stats: Optional[Callable] = None
  summary: Mapping[str, float] = {}
  sample: Optional[Callable] = None
  embed: Optional[Callable] = None


def _model_sample(model: Any) -> Callable:
  """``(params, key, n, temperature)``, the task's positional form of
  ``model.sample(params, key, n, temperature=...)``."""

  def sample(params, key, n, temperature):
    return model.sample(params, key, n, temperature=temperature)

  return sample


def _pictures_from(sample: Callable, temperature: float) -> Callable:
  def pictures(params, key, batch):
    return sample(params, key, len(batch["image"]), temperature)

  return pictures


def _flow_sample(flow: Flow, num_classes: Optional[int]) -> Callable:
  """``(params, key, n, temperature)``; a class-conditional flow draws
  the classes in turn."""

  def sample(params, key, n, temperature):
    context = None
    if num_classes:
      context = jax.nn.one_hot(jnp.arange(n) % num_classes, num_classes)
    return flow.sample(params, key, n, temperature=temperature, context=context)

  return sample


def _flow_task(config: Mapping, event_shape: Sequence[int]) -> Task:
  n_bits = config["n_bits"] or None
  num_classes = config["num_classes"] or None
  # Built once, in evaluation mode by default; the training objective asks
  # for batch statistics at call time (flows with batch-norm layers).
  flow = build_flow(
    config["model"], event_shape, config["model_kwargs"], evaluation=True
  )
  train_log_prob = functools.partial(flow.log_prob, training=True)

  def inputs(batch, key):
    return preprocess.flow_inputs(
      batch, key, n_bits=n_bits, num_classes=num_classes
    )

  def init(key, batch):
    x, context = inputs(batch, jax.random.fold_in(key, 1))
    return flow.init(jax.random.fold_in(key, 0), x, context)

  def per_example(params, batch, key):
    return objectives.flow_bits_per_dim(
      flow.log_prob,
      params,
      batch,
      key,
      n_bits=n_bits,
      num_classes=num_classes,
    )

  sample = _flow_sample(flow, num_classes)

  update_stats = None
  flow_update_stats = flow.update_stats
  if flow_update_stats is not None:

    def update_stats_on_batch(params, batch, key):
      x, context = inputs(batch, key)
      return flow_update_stats(params, x, context)

    update_stats = update_stats_on_batch

  task = Task(
    family="flow",
    model=flow,
    init=init,
    objective=objectives.flow_nll(
      train_log_prob, n_bits=n_bits, num_classes=num_classes
    ),
    per_example=per_example,
    pictures=_pictures_from(sample, config["temperature"]),
    headline="bits_per_dim",
    best_metric="bits_per_dim",
    update_stats=update_stats,
    sample=sample,
  )
  if config["dequantization"] == "variational":
    return _variationally_dequantized(task, flow, config, event_shape)
  return task


def _variationally_dequantized(
  task: Task, flow: Flow, config: Mapping, event_shape: Sequence[int]
) -> Task:
  """The flow task trained on the variational-dequantisation bound
  (``objectives.dequantization``): params ``{"flow": ..., "dequantizer":
  ...}``; evaluation reports the uniform bound (``bits_per_dim``, the
  figure every flow reports) and the variational one
  (``bits_per_dim_variational``), which ranks checkpoints; with
  ``eval_kwargs.num_dequantization_samples = k > 1`` also the
  importance-weighted bound with ``k`` draws
  (``bits_per_dim_variational_iw``)."""
  n_bits = config["n_bits"]
  num_classes = config["num_classes"] or None
  # config.validate_config checks eval_kwargs.
  num_draws = dequantization_draws(config)
  check_positive_int("eval_kwargs.num_dequantization_samples", num_draws)
  dequantizer = variational_dequantizer(
    event_shape, **config["objective_kwargs"]
  )
  train_log_prob = functools.partial(flow.log_prob, training=True)

  def inputs(params, batch, key):
    x, context, _ = objectives.variational_inputs(
      dequantizer, params, batch, key, n_bits=n_bits, num_classes=num_classes
    )
    return x, context

  def init(key, batch):
    grid = preprocess.reduce_bits(batch["image"], n_bits) / 2**n_bits
    params = {"dequantizer": dequantizer.init(jax.random.fold_in(key, 2), grid)}
    # The flow's data-dependent init (actnorm) sees the inputs it will be
    # trained on: the batch dequantised by the initial q.
    x, context = inputs(
      params["dequantizer"], batch, jax.random.fold_in(key, 1)
    )
    return {**params, "flow": flow.init(jax.random.fold_in(key, 0), x, context)}

  def per_example(params, batch, key):
    # The uniform figure uses the key as a uniformly dequantised flow does,
    # so both kinds of run report the same bits_per_dim for the same flow.
    uniform = task.per_example(params["flow"], batch, key)
    variational = objectives.flow_variational_bits_per_dim(
      flow.log_prob,
      dequantizer,
      params,
      batch,
      jax.random.fold_in(key, 1),
      n_bits=n_bits,
      num_classes=num_classes,
    )
    if num_draws > 1:
      variational.update(
        objectives.flow_importance_weighted_bits_per_dim(
          flow.log_prob,
          dequantizer,
          params,
          batch,
          jax.random.fold_in(key, 2),
          num_samples=num_draws,
          n_bits=n_bits,
          num_classes=num_classes,
        )
      )
    return {**uniform, **variational}

  update_stats = None
  flow_update_stats = flow.update_stats
  if flow_update_stats is not None:
    # Running statistics of the inputs the flow is trained on.
    def update_stats_on_batch(params, batch, key):
      x, context = inputs(params["dequantizer"], batch, key)
      return {**params, "flow": flow_update_stats(params["flow"], x, context)}

    update_stats = update_stats_on_batch

  model = nested_flow(flow)
  sample = _flow_sample(model, num_classes)
  return task._replace(
    model=model,
    init=init,
    objective=objectives.flow_variational_nll(
      train_log_prob, dequantizer, n_bits=n_bits, num_classes=num_classes
    ),
    per_example=per_example,
    pictures=_pictures_from(sample, config["temperature"]),
    headline="bits_per_dim_variational",
    best_metric="bits_per_dim_variational",
    update_stats=update_stats,
    sample=sample,
  )


def _autoencoder_task(config: Mapping, event_shape: Sequence[int]) -> Task:
  model = build_model("autoencoder", event_shape, config["model_kwargs"])
  kwargs = dict(config["objective_kwargs"])

  def pictures(params, key, batch):
    # Rows of clean inputs, (corrupted inputs,) reconstructions.
    x = ae_objectives.autoencoder_inputs(batch)
    rows = [x]
    if kwargs.get("corruption") is not None:
      x = ae_objectives.corrupt(key, x, **kwargs)
      rows.append(x)
    rows.append(model.reconstruct(params, x))
    return jnp.concatenate(rows, axis=0)

  return Task(
    family="autoencoder",
    model=model,
    init=lambda key, batch: model.init(
      key, ae_objectives.autoencoder_inputs(batch)
    ),
    objective=ae_objectives.reconstruction_objective(model, **kwargs),
    per_example=ae_objectives.reconstruction_per_example(model, **kwargs),
    pictures=pictures,
    headline="mse",
    best_metric="mse",
    summary={
      "compression_ratio": model.compression_ratio,
      "latent_bits": model.latent_bits,
    },
  )


def _vae_task(config: Mapping, event_shape: Sequence[int]) -> Task:
  kwargs = dict(config["model_kwargs"])
  kwargs.setdefault("n_bits", config["n_bits"] or 8)
  model = build_model("vae", event_shape, kwargs)

  def init(key, batch):
    x = model.inputs(batch, jax.random.fold_in(key, 1))
    return model.init(jax.random.fold_in(key, 0), x)

  sample = _model_sample(model)
  return Task(
    family="vae",
    model=model,
    init=init,
    objective=vae_objectives.vae_objective(model, **config["objective_kwargs"]),
    per_example=vae_objectives.vae_per_example(model, **config["eval_kwargs"]),
    pictures=_pictures_from(sample, config["temperature"]),
    headline="bits_per_dim",
    best_metric="bits_per_dim",
    sample=sample,
  )


def _gan_task(config: Mapping, event_shape: Sequence[int]) -> Task:
  model = build_model("gan", event_shape, config["model_kwargs"])
  kwargs = dict(config["objective_kwargs"])
  sample = _model_sample(model)

  return Task(
    family="gan",
    model=model,
    init=lambda key, batch: model.init(key, model.inputs(batch)),
    objective=gan_objectives.gan_objectives(model, **kwargs),
    per_example=gan_objectives.gan_per_example(
      model, loss=kwargs.get("loss", "non_saturating")
    ),
    pictures=_pictures_from(sample, config["temperature"]),
    headline="discriminator_loss",
    # No likelihood and no loss that tracks sample quality: checkpoints are
    # kept by recency only; the classifier Fréchet distance ranks models.
    best_metric=None,
    sample=sample,
  )


def _classifier_task(config: Mapping, event_shape: Sequence[int]) -> Task:
  if not config["num_classes"]:
    raise ValueError(
      "config.num_classes must be > 0 for a classifier; got "
      f"{config['num_classes']!r}."
    )
  model = build_model(
    "classifier",
    event_shape,
    {"num_classes": config["num_classes"], **config["model_kwargs"]},
  )
  return Task(
    family="classifier",
    model=model,
    init=lambda key, batch: model.init(key, model.inputs(batch)),
    objective=classification.classification_objective(model),
    per_example=classification.classification_per_example(model),
    pictures=lambda params, key, batch: model.inputs(batch),
    headline="error",
    best_metric="error",
    embed=model.features,
  )


_BUILDERS = {
  "flow": _flow_task,
  "autoencoder": _autoencoder_task,
  "vae": _vae_task,
  "gan": _gan_task,
  "classifier": _classifier_task,
}


def build_task(config: Mapping, event_shape: Sequence[int]) -> Task:
  """The ``Task`` for ``config.model`` on examples of ``event_shape``.

  ``config.compute_dtype`` other than float32 reaches the model factory as
  its ``compute_dtype`` argument (float32 runs leave the argument out, so
  they build what runs recorded before it did).
  """
  compute_dtype = config.get("compute_dtype", "float32")
  if compute_dtype != "float32":
    kwargs = {**config["model_kwargs"], "compute_dtype": compute_dtype}
    config = {**config, "model_kwargs": kwargs}
  family = family_of(str(config["model"]))
  return _BUILDERS[family](config, event_shape)
