"""Classification objectives for ``models.classifier``.

With logits ``l(x)`` and an integer label ``y`` among ``K`` classes::

    cross_entropy(x, y) = -log softmax(l(x))_y
                        = log sum_k exp l_k(x) - l_y(x)
    accuracy(x, y)      = 1[argmax_k l_k(x) = y],   error = 1 - accuracy

The loss is the mean cross-entropy over the batch. Images are scaled by
``Classifier.inputs`` (``x = image / 255``), so the classifier sees the same
range ``[0, 1]`` as the generated samples it later embeds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import optax

from flowjax_gen.typing import Objective

if TYPE_CHECKING:
  # Only for annotations: objectives must not import the models package,
  # which may itself build on objectives.
  from flowjax_gen.models.classifier import Classifier

PerExample = Callable[..., dict]


def _per_example(clf: Classifier, params, batch: dict) -> dict:
  logits = clf.logits(params, clf.inputs(batch))
  labels = jnp.asarray(batch["label"], jnp.int32)
  cross_entropy = optax.softmax_cross_entropy_with_integer_labels(
    logits, labels
  )
  accuracy = (jnp.argmax(logits, axis=-1) == labels).astype(logits.dtype)
  return {
    "cross_entropy": cross_entropy,
    "accuracy": accuracy,
    "error": 1.0 - accuracy,
  }


def classification_objective(clf: Classifier) -> Objective:
  """Mean softmax cross-entropy on ``batch["label"]``, as an objective.

  Args:
    clf: the classifier.

  Returns:
    ``objective(params, batch, key) -> (loss, metrics)`` with ``loss`` the
    mean cross-entropy (nats) and metrics ``cross_entropy``, ``accuracy``
    and ``error`` (batch means). ``key`` is unused: the classifier is
    deterministic.
  """

  def objective(params, batch: dict, key: jax.Array):
    del key
    metrics = {
      k: jnp.mean(v) for k, v in _per_example(clf, params, batch).items()
    }
    return metrics["cross_entropy"], metrics

  return objective


def classification_per_example(clf: Classifier) -> PerExample:
  """Per-example cross-entropy, accuracy and error, for evaluation.

  Returns:
    ``per_example(params, batch, key) -> {"cross_entropy", "accuracy",
    "error"}``, each of shape ``(B,)``; averaged over a split, ``error`` is
    the test error rate.
  """

  def per_example(params, batch: dict, key: jax.Array):
    del key
    return _per_example(clf, params, batch)

  return per_example
