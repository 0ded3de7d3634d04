"""Flow++ (Ho, Chen, Srinivas, Duan & Abbeel 2019): logistic-mixture CDF
couplings with gated self-attention conditioners.

The paper's CIFAR-10 flow (its code, ``flows/run_cifar.py``) works at two
scales and factors nothing out::

    logit -> 4 column steps -> squeeze -> 2 channel steps -> 3 column steps

One step is ``actnorm -> 1x1 convolution -> coupling -> swap halves``. A
channel step's coupling transforms half of the channels given the other
half. A column step pairs each even column of the grid with the odd column
beside it (Flow++'s ``CheckerboardSplit``, which splits the width into even
and odd columns): the image ``(H, W, C)`` is read as ``(H, W/2, 2C)`` and
the odd columns are transformed given the even ones (then the reverse, after
the swap). Its conditioner so runs on half of the grid, where a masked
checkerboard (RealNVP's) would compute on all of it; the 1x1 convolution
mixes each pair of pixels before every coupling. Flow++'s ``TupleFlip`` is
the swap here: the channel order is reversed after each coupling, so the
next one transforms the other half even where a 1x1 convolution of two
channels is close to the identity.

The likelihood is computed on the variational dequantisation the training
objective adds (``config.dequantization = "variational"``,
``models.variational_dequantizer``), as in the paper. Every part can be
swapped for its ablation: ``coupling="affine"`` (or ``"spline"``) for the
mixture, ``attention=False`` for the self-attention.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

from flowjax_gen._checks import check_choice, check_positive_int
from flowjax_gen.bijectors import (
  Bijector,
  actnorm,
  affine_coupling,
  chain,
  conv1x1,
  logistic_mixture_coupling,
  reshape,
  reverse,
  scan,
  spline_coupling,
  squeeze,
)
from flowjax_gen.models.flows import (
  Flow,
  _prepend,
  _preprocess,
  make_flow,
)
from flowjax_gen.nets.gated_attention import (
  GatedAttentionNet,
  check_gate_kernel_size,
)
from flowjax_gen.typing import compute_dtype_of

FLOWPP_COUPLINGS = ("mixture", "affine", "spline")


def _coupling(kind: str, make_net, num_components: int, dtype: str):
  if kind == "mixture":
    return logistic_mixture_coupling(
      make_net, mask="half", num_components=num_components, compute_dtype=dtype
    )
  if kind == "affine":
    return affine_coupling(make_net, mask="half", compute_dtype=dtype)
  return spline_coupling(make_net, mask="half", compute_dtype=dtype)


def _check_steps(steps: Sequence[int]) -> tuple[int, int, int]:
  steps = tuple(steps)
  if len(steps) != 3 or any(
    isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in steps
  ):
    raise ValueError(
      "steps must be three counts (column steps at full resolution, channel "
      "steps after the squeeze, column steps after them), e.g. (4, 2, 3); "
      f"got {steps!r}."
    )
  if sum(steps) == 0:
    raise ValueError(f"steps must hold at least one step; got {steps!r}.")
  return steps


def flowpp(
  event_shape: Sequence[int],
  *,
  steps: Sequence[int] = (4, 2, 3),
  features: int = 96,
  num_blocks: int = 10,
  attention: bool = True,
  num_heads: int = 4,
  gate_kernel_size: int = 1,
  coupling: str = "mixture",
  num_components: int = 32,
  preprocess: str = "logit",
  alpha: float = 0.05,
  remat: Union[bool, Callable[..., Any]] = False,
  compute_dtype: Optional[str] = None,
) -> Flow:
  """Flow++'s image flow (see the module docstring for its structure).

  Defaults are the paper's CIFAR-10 model (its code: 4 + 2 + 3 couplings,
  each conditioner 10 gated blocks of 96 channels with 4-head attention,
  32 mixture components, logit pre-processing; 3.08 bits/dim with
  variational dequantisation). The paper trained with dropout 0.2, which
  ``GatedAttentionNet`` does not have.

  Args:
    event_shape: ``(H, W, C)``, ``H`` even and ``W`` divisible by 4 (two
      column splits, one before and one after the squeeze).
    steps: the counts of column steps at full resolution, channel steps
      after the squeeze and column steps after those; each group is one
      ``scan``, so compile time does not grow with them. A zero skips a
      group.
    features: width of every conditioner.
    num_blocks: gated blocks per conditioner.
    attention: self-attention in every block (``False``: gated
      convolutions alone, the paper's ablation).
    num_heads: attention heads; they must divide ``features``.
    gate_kernel_size: the second convolution of each gated block, ``1``
      as in the paper's couplings (``3`` sees farther at 9 times that
      layer's cost; ``nets.GatedConv``).
    coupling: ``"mixture"`` (the paper), ``"affine"`` (``exp(tanh)``
      scale) or ``"spline"`` (rational-quadratic, 8 bins on [-4, 4]).
    num_components: mixture components ``K`` (``coupling="mixture"``).
    preprocess: ``"logit"`` (paper), ``"center"`` or ``"none"``.
    alpha: logit boundary margin (the paper's 0.05).
    remat: recompute step activations in the backward pass (see
      ``bijectors.scan``).
    compute_dtype: what its networks compute in, ``"float32"`` (``None``:
      the data's precision) or ``"bfloat16"`` (``typing.COMPUTE_DTYPES``);
      params, log-determinants and likelihoods stay in the data's
      precision, and the attention's softmax in float32.
  """
  shape = tuple(int(d) for d in event_shape)
  if len(shape) != 3 or min(shape) < 1:
    raise ValueError(
      f"event_shape must be (height, width, channels); got {event_shape!r}."
    )
  height, width, channels = shape
  if height % 2 or width % 4:
    raise ValueError(
      "flowpp needs an even height and a width divisible by 4 (a squeeze "
      f"and two column splits); got event_shape {shape}."
    )
  steps = _check_steps(steps)
  check_positive_int("features", features)
  check_positive_int("num_blocks", num_blocks)
  check_positive_int("num_heads", num_heads)
  check_gate_kernel_size(gate_kernel_size)
  check_positive_int("num_components", num_components)
  check_choice("coupling", coupling, FLOWPP_COUPLINGS)
  if not isinstance(attention, bool):
    raise ValueError(f"attention must be a bool; got {attention!r}.")
  if attention and features % num_heads:
    raise ValueError(
      f"num_heads ({num_heads}) must divide features ({features})."
    )
  dtype = compute_dtype_of(compute_dtype)
  make_net = functools.partial(
    GatedAttentionNet,
    features=features,
    num_blocks=num_blocks,
    attention=attention,
    num_heads=num_heads,
    gate_kernel_size=gate_kernel_size,
  )
  step = chain(
    actnorm(),
    conv1x1(),
    _coupling(coupling, make_net, num_components, dtype),
    reverse(),
  )

  def steps_of(count: int) -> list[Bijector]:
    return [scan(step, count, remat=remat)] if count else []

  def column_steps(count: int, grid: tuple[int, int, int]) -> list[Bijector]:
    if not count:
      return []
    h, w, c = grid
    paired = (h, w // 2, 2 * c)
    return [reshape(grid, paired), *steps_of(count), reshape(paired, grid)]

  squeezed = (height // 2, width // 2, 4 * channels)
  body = chain(
    *column_steps(steps[0], shape),
    squeeze(),
    *steps_of(steps[1]),
    *column_steps(steps[2], squeezed),
  )
  return make_flow(_prepend(_preprocess(preprocess, alpha), body), shape)
