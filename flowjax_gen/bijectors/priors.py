"""Learned Gaussian priors written as bijectors (Glow's split and top priors).

A learned Gaussian prior ``z ~ N(mu, diag(sigma^2))`` is the same model as a
standard-normal latent ``eps = (z - mu) / sigma`` reached through one more
affine bijector, with log-det ``-sum(log sigma)``. Writing the priors this way
keeps every flow's base distribution a fixed standard density, makes
``encode`` return whitened latents, and makes temperature sampling
(``eps ~ N(0, T^2)``, i.e. ``z ~ N(mu, (T sigma)^2)`` as in Glow) one rule for
every model.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp

from flowjax_gen._checks import check_min_rank
from flowjax_gen.bijectors.base import Bijector, num_positions
from flowjax_gen.bijectors.checks import checked
from flowjax_gen.nets.conditioners import ZeroConv
from flowjax_gen.typing import Context


@checked
def gaussian_split_prior(
  make_net: Callable[[int], nn.Module] = ZeroConv,
) -> Bijector:
  """Conditional prior on the factored-out half of the channels (Glow §3).

  The input is ``[h, z]`` split along the channels; ``(mu, log_sigma) =
  NN(h, c)`` with a zero-initialised ``NN`` (Glow: one ``Conv2dZeros``)::

      forward:  [h, z] -> [h, (z - mu) * exp(-log_sigma)]
      inverse:  [h, e] -> [h, e * exp(log_sigma) + mu]
      log_det = -sum(log_sigma)

  Placed as the last member of a multi-scale level, just before the
  factor-out of ``z``.
  """

  def net_and_halves(x):
    if x.shape[-1] % 2:
      raise ValueError(
        "gaussian_split_prior needs an even channel count; "
        f"got {x.shape[-1]} channels."
      )
    half = x.shape[-1] // 2
    return make_net(2 * half), x[..., :half], x[..., half:]

  def moments(net, params, h, context):
    mean, log_sigma = jnp.split(net.apply(params, h, context), 2, axis=-1)
    return mean, log_sigma

  def init(key, x, context: Context = None):
    check_min_rank("x", x, 2, "a batch of events with channels last")
    net, h, _ = net_and_halves(x)
    return net.init(key, h, context)

  def forward(params, x, context: Context = None):
    net, h, z = net_and_halves(x)
    mean, log_sigma = moments(net, params, h, context)
    eps = (z - mean) * jnp.exp(-log_sigma)
    log_det = -jnp.sum(log_sigma.reshape(x.shape[0], -1), axis=1)
    return jnp.concatenate([h, eps], axis=-1), log_det

  def inverse(params, y, context: Context = None):
    net, h, eps = net_and_halves(y)
    mean, log_sigma = moments(net, params, h, context)
    z = eps * jnp.exp(log_sigma) + mean
    log_det = jnp.sum(log_sigma.reshape(y.shape[0], -1), axis=1)
    return jnp.concatenate([h, z], axis=-1), log_det

  return Bijector(init, forward, inverse)


@checked
def learned_prior() -> Bijector:
  """Learned (optionally class-conditional) prior on the top latent (Glow).

  ``mu`` and ``log_sigma`` are per channel, zero-initialised; with a context
  ``c`` (one-hot class or vector) they gain a zero-initialised linear term,
  ``[mu, log_sigma] = [mu_0, s_0] + c W`` (Glow's ``learntop`` + ``ycond``)::

      forward:  e = (z - mu) * exp(-log_sigma)
      inverse:  z = e * exp(log_sigma) + mu
      log_det = -P * sum(log_sigma)

  with ``P`` positions per example.
  """

  def init(key, x, context: Context = None):
    del key
    check_min_rank("x", x, 2, "a batch of events with channels last")
    channels = x.shape[-1]
    params = {
      "mean": jnp.zeros((channels,), x.dtype),
      "log_sigma": jnp.zeros((channels,), x.dtype),
    }
    if context is not None:
      width = context.reshape(context.shape[0], -1).shape[1]
      params["context_kernel"] = jnp.zeros((width, 2 * channels), x.dtype)
    return params

  def moments(params, x, context):
    mean, log_sigma = params["mean"][None], params["log_sigma"][None]
    if "context_kernel" in params:
      if context is None:
        raise ValueError(
          "this prior was initialised with a context; pass "
          "context= to every call."
        )
      shift = context.reshape(context.shape[0], -1).astype(x.dtype)
      d_mean, d_log_sigma = jnp.split(shift @ params["context_kernel"], 2, -1)
      mean, log_sigma = mean + d_mean, log_sigma + d_log_sigma
    spatial = (1,) * (x.ndim - 2)
    shape = (mean.shape[0],) + spatial + (x.shape[-1],)
    log_det = num_positions(x) * jnp.sum(log_sigma, axis=-1)
    return mean.reshape(shape), log_sigma.reshape(shape), log_det

  def forward(params, x, context: Context = None):
    mean, log_sigma, log_det = moments(params, x, context)
    y = (x - mean) * jnp.exp(-log_sigma)
    return y, jnp.broadcast_to(-log_det, x.shape[:1])

  def inverse(params, y, context: Context = None):
    mean, log_sigma, log_det = moments(params, y, context)
    x = y * jnp.exp(log_sigma) + mean
    return x, jnp.broadcast_to(log_det, y.shape[:1])

  return Bijector(init, forward, inverse)
