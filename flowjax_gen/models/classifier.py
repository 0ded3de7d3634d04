"""A small image classifier whose penultimate layer is a feature space.

The classifier is trained on the dataset a generative model was trained on;
its penultimate embedding is then the feature space in which
``flowjax_gen.sample_quality`` measures how far generated samples are from
real ones (a dataset-specific stand-in for the Inception network of FID).

Architecture (``channels = (c_1, ..., c_k)``)::

    x in [0, 1]^(H x W x C)
    h_i = relu(conv3x3_stride2(h_{i-1}; c_i))       i = 1..k
    phi(x) = relu(W_f flatten(h_k) + b_f)           features, (B, F)
    logits = W_o phi(x) + b_o                       (B, num_classes)

and ``p(y | x) = softmax(logits)_y``. Stride-2 convolutions with ``SAME``
padding take ``ceil(H / 2)`` at each step, so any image size works (8x8
digits, 28x28 MNIST, 32x32 CIFAR-10).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowjax_gen._checks import check_data, check_positive_int
from flowjax_gen.preprocess import unit_interval
from flowjax_gen.typing import apply_output, compute_dtype_of


class ConvClassifier(nn.Module):
  """Stride-2 3x3 ReLU convs, ``Dense(features)`` ReLU, ``Dense(classes)``.

  ``__call__`` returns ``(features, logits)``: the penultimate embedding
  (after its ReLU) and the class logits.
  """

  num_classes: int
  channels: Sequence[int] = (32, 64)
  features: int = 128

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = x
    for width in self.channels:
      h = nn.relu(nn.Conv(width, (3, 3), strides=(2, 2), padding="SAME")(h))
    h = h.reshape(h.shape[0], -1)
    features = nn.relu(nn.Dense(self.features)(h))
    return features, nn.Dense(self.num_classes)(features)


class Classifier(NamedTuple):
  """A classifier as pure functions over ``params``.

  Attributes:
    init: ``(key, x_example) -> params``.
    logits: ``(params, x) -> (B, num_classes)`` for ``x`` in ``[0, 1]``.
    features: ``(params, x) -> (B, num_features)``, the penultimate
      embedding (after its ReLU); generated samples enter here as float
      images in ``[0, 1]``.
    inputs: ``batch -> x = batch["image"] / 255`` as float32, the
      pre-processing of a data batch of 8-bit pixels.
    event_shape: ``(H, W, C)`` of one image.
    num_classes: number of classes.
    num_features: size ``F`` of the feature space.
  """

  init: Callable[..., Any]
  logits: Callable[..., jax.Array]
  features: Callable[..., jax.Array]
  inputs: Callable[[dict], jax.Array]
  event_shape: tuple[int, int, int]
  num_classes: int
  num_features: int


def classifier(
  event_shape: Sequence[int],
  *,
  num_classes: int = 10,
  channels: Sequence[int] = (32, 64),
  features: int = 128,
  compute_dtype: Optional[str] = None,
) -> Classifier:
  """Builds the small conv classifier described in the module docstring.

  Args:
    event_shape: ``(H, W, C)`` of one image.
    num_classes: number of classes (>= 2).
    channels: output channels of the stride-2 convolutions (at least one).
    features: size of the penultimate embedding.

  Returns:
    A ``Classifier``; train it with
    ``objectives.classification_objective``.
    compute_dtype: what its networks compute in, ``"float32"`` (``None``)
      or ``"bfloat16"`` (``typing.COMPUTE_DTYPES``); params and the
      objective's terms stay float32.
  """
  compute = compute_dtype_of(compute_dtype)
  try:
    # operator.index accepts numpy integers and rejects floats.
    shape = tuple(operator.index(d) for d in event_shape)
  except TypeError:
    shape = ()
  if len(shape) != 3 or min(shape) < 1:
    raise ValueError(
      f"event_shape must be (height, width, channels) of positive ints; "
      f"got {tuple(event_shape)!r}."
    )
  check_positive_int("num_classes", num_classes)
  if num_classes < 2:
    raise ValueError(f"num_classes must be >= 2; got {num_classes!r}.")
  channels = tuple(channels)
  if not channels:
    raise ValueError("channels must name at least one convolution; got ().")
  for i, width in enumerate(channels):
    check_positive_int(f"channels[{i}]", width)
  check_positive_int("features", features)
  net = ConvClassifier(num_classes, channels=channels, features=features)

  def init(key, x):
    check_data(x, shape)
    return net.init(key, jnp.asarray(x, jnp.float32))

  def embed_and_logits(params, x):
    check_data(x, shape)
    return apply_output(
      net, params, jnp.asarray(x, jnp.float32), compute_dtype=compute
    )

  def logits(params, x):
    return embed_and_logits(params, x)[1]

  def embed(params, x):
    # Under jit the unused logits layer is dead code and is dropped.
    return embed_and_logits(params, x)[0]

  def inputs(batch):
    return unit_interval(batch["image"])

  return Classifier(init, logits, embed, inputs, shape, num_classes, features)
