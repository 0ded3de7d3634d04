"""Masked autoregressive layers: MAF (Papamakarios et al. 2017) and, through
``invert``, IAF (Kingma et al. 2016); affine or spline transformers.

For a vector ``x`` of ``D`` features, a MADE conditioner (``nets.MADE``)
computes every ``theta_i = NN(x_{<i}, c)`` in one pass, and each feature is
mapped by an elementwise transformer (``bijectors.transformers``)::

    forward:  y_i = tau(x_i; theta_i(x_{<i}, c))          one network pass
    inverse:  x_i = tau^{-1}(y_i; theta_i(x_{<i}, c)),  i = 1..D in turn
    log_det = sum_i log |d tau / d x_i|

The Jacobian is triangular, so the log-det is the sum of the diagonal.

Cost: forward (data -> latent, density evaluation: MAF's fast direction)
is one conditioner pass. The inverse (sampling a MAF) needs ``x_{<i}``
before ``theta_i``: it runs ``D`` conditioner passes, sequentially, in one
``lax.scan``; pass ``k`` fixes feature ``k`` (the later features are
recomputed, and exact after their own pass). ``invert(masked_autoregressive
(...))`` is an IAF: sampling becomes the one-pass direction and density
evaluation of arbitrary points the ``D``-pass one.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from flowjax_gen._checks import check_choice
from flowjax_gen.bijectors import transformers
from flowjax_gen.bijectors.base import Bijector, event_sum
from flowjax_gen.bijectors.checks import checked
from flowjax_gen.bijectors.spline import DEFAULT_BOUND
from flowjax_gen.typing import COMPUTE_DTYPES, Context, apply_output

TRANSFORMERS = ("affine", "spline")

MADEFactory = Callable[[int], nn.Module]


def _check_vectors(name: str, x: jax.Array) -> None:
  if x.ndim != 2:
    raise ValueError(
      f"{name} must be a batch of vectors (batch, features) for a masked "
      f"autoregressive layer; got shape {x.shape}."
    )


@checked
def masked_autoregressive(
  make_conditioner: MADEFactory,
  *,
  transformer: str = "affine",
  scale_fn: str = "exp_tanh",
  num_bins: int = 8,
  bound: float = DEFAULT_BOUND,
  compute_dtype: str = "float32",
) -> Bijector:
  """A masked autoregressive layer on ``(batch, D)`` vectors (MAF).

  params: the MADE's. Forward (data -> latent) is one network pass; the
  inverse is ``D`` sequential passes in a ``lax.scan`` (see the module
  docstring). ``invert(...)`` of it is an IAF.

  Args:
    make_conditioner: ``num_params -> flax Module`` called as
      ``module(x, context)``, returning ``num_params * D`` outputs
      (parameter-major) of which output ``p * D + i`` depends on
      ``x_{<i}`` only, e.g. ``functools.partial(nets.MADE,
      hidden_features=(64, 64))``. Autoregressiveness is the module's
      promise; a plain MLP would give wrong log-dets and inverses.
    transformer: ``"affine"`` (``y_i = x_i s_i + t_i``) or ``"spline"``
      (rational-quadratic, ``num_bins`` bins on ``[-bound, bound]``).
    scale_fn: affine scale, one of ``transformers.SCALE_FNS``; the default
      ``exp_tanh`` keeps each layer's scale in (1/e, e).
    num_bins: ``K`` for the spline transformer.
    bound: ``B`` for the spline transformer.
    compute_dtype: what the MADE computes in, one of
      ``typing.COMPUTE_DTYPES`` (``apply_output``); its params, outputs
      and the log-det stay in the data's precision.
  """
  check_choice("transformer", transformer, TRANSFORMERS)
  check_choice("compute_dtype", compute_dtype, COMPUTE_DTYPES)
  if not callable(make_conditioner):
    raise ValueError(
      "make_conditioner must be callable as "
      f"make_conditioner(num_params); got {make_conditioner!r}."
    )
  if transformer == "affine":
    tau = transformers.affine(scale_fn)
  else:
    tau = transformers.spline(num_bins, bound)
  net = make_conditioner(tau.num_params)

  def theta(params, x, context):
    h = apply_output(net, params, x, context, compute_dtype=compute_dtype)
    return transformers.parameters(h, tau)

  def total(log_deriv, like):
    # A volume-preserving transformer reports no log-derivative (None).
    return event_sum(
      jnp.zeros_like(like) if log_deriv is None else log_deriv, 1
    )

  def init(key, x, context: Context = None):
    _check_vectors("x", x)
    return net.init(key, x, context)

  def forward(params, x, context: Context = None):
    _check_vectors("x", x)
    y, log_deriv = tau.forward(theta(params, x, context), x)
    return y, total(log_deriv, x)

  def inverse(params, y, context: Context = None):
    _check_vectors("y", y)

    def step(carry, _):
      x, _ = carry
      return tau.inverse(theta(params, x, context), y), None

    start = (jnp.zeros_like(y), jnp.zeros_like(y))
    (x, log_deriv), _ = jax.lax.scan(step, start, length=y.shape[-1])
    return x, total(log_deriv, y)

  return Bijector(init, forward, inverse)
