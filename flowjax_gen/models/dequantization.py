"""Variational dequantisation (Ho et al. 2019, Flow++ §3.1).

Uniform dequantisation scores a flow on ``x + u`` with ``u ~ U[0, 1)^D``;
variational dequantisation learns the noise instead, a conditional density
``q(u | x)`` on ``[0, 1)^D`` trained jointly with the model, which gives the
bound (in units of the discrete bins; ``objectives.dequantization`` adds the
``2^-n`` scaling)::

    log P(x) >= E_{u ~ q(u | x)} [ log p(x + u) - log q(u | x) ]

with equality when ``q(u | x)`` is the model's own density on the bin of
``x``; ``q = U[0, 1)^D`` (``log q = 0``) is the uniform bound.

``q`` is a conditional flow. With ``eps`` drawn from a base density
``b`` and ``g`` a chain of affine couplings with checkerboard masks, each
conditioner reading ``ConvFeatures(x)`` as its context::

    u = sigmoid(g(eps; x))
    log q(u | x) = log b(eps) - log |det du / deps|
                 = log b(eps) - log |det dg / deps|
                   - sum(log sigmoid(h) + log sigmoid(-h)),   h = g(eps; x)

The base is the standard logistic by default: the sigmoid of a logistic
variable is uniform, and every coupling starts at the identity, so ``q``
starts as ``U[0, 1)^D`` and the variational bound starts at the uniform
one. Flow++ draws ``eps ~ N(0, I)`` (``base="normal"``), which starts
``q`` at a logit-normal density, about 0.28 bits/dim below the uniform
entropy.

In the library's direction (data -> latent) the bijector is ``u -> eps``:
``chain(invert(sigmoid()), couplings...)``; drawing ``u`` runs its inverse,
which also returns ``log |det du / deps|``, so a draw and its density cost
one pass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from flowjax_gen import distributions
from flowjax_gen._checks import check_choice, check_data, check_positive_int
from flowjax_gen.bijectors import affine_coupling, chain, invert, sigmoid
from flowjax_gen.bijectors.coupling import SCALE_FNS
from flowjax_gen.models.flows import Flow, make_flow
from flowjax_gen.nets.conditioners import ConvFeatures, GlowConvNet
from flowjax_gen.typing import apply_output

__all__ = ["BASES", "Dequantizer", "nested_flow", "variational_dequantizer"]

BASES = ("logistic", "normal")


class Dequantizer(NamedTuple):
  """A learned dequantising density ``q(u | x)`` on ``[0, 1)^D``.

  ``x`` is the discrete data on the model's scale: integer pixel values
  divided by the number of bins, ``x_int / 2^n`` in ``[0, 1)``.

  Attributes:
    init: ``(key, x) -> params``.
    sample: ``(params, key, x) -> (u, log_q)``: one reparameterised draw
      ``u`` in ``[0, 1)^D`` per example and ``log q(u | x)``, ``(batch,)``.
    log_prob: ``(params, u, x) -> log q(u | x)``, ``(batch,)``.
    flow: the flow of ``u`` given the context ``features(x)``: its params
      are ``params["flow"]``, its context ``features(params, x)``.
    features: ``(params, x) -> context`` of every coupling.
    event_shape: shape of one example, ``(H, W, C)``.
  """

  init: Callable[..., Any]
  sample: Callable[..., tuple[jax.Array, jax.Array]]
  log_prob: Callable[..., jax.Array]
  flow: Flow
  features: Callable[..., jax.Array]
  event_shape: tuple[int, ...]


def variational_dequantizer(
  event_shape: Sequence[int],
  *,
  num_couplings: int = 4,
  features: int = 32,
  num_blocks: int = 1,
  context_features: int = 16,
  scale_fn: str = "exp_tanh",
  base: str = "logistic",
) -> Dequantizer:
  """Flow++'s dequantiser ``q(u | x)``, a small conditional flow.

  ``num_couplings`` affine couplings with alternating checkerboard masks
  (every entry is transformed by every second coupling, whatever the number
  of channels), each with a Glow conditioner (3x3 conv, 1x1 conv, zero
  3x3 conv; ``features`` hidden channels) reading the untouched entries
  and the ``context_features`` channels of ``ConvFeatures(x - 1/2)``
  (``num_blocks`` residual blocks of ``features`` channels). Flow++'s
  dequantiser has the same structure (couplings conditioned on features of
  ``x``) with richer couplings (logistic-mixture CDFs, self-attention
  conditioners); these small networks, whose convolutions run as GEMMs on
  CPUs (``nets.convolution``), keep its cost a fraction of the model's.

  Args:
    event_shape: ``(H, W, C)`` of one image.
    num_couplings: number of couplings (>= 2, so every entry is moved).
    features: width of the coupling conditioners and of ``ConvFeatures``.
    num_blocks: residual blocks of ``ConvFeatures``.
    context_features: channels of the feature map of ``x``.
    scale_fn: coupling scale function (see ``bijectors.coupling``);
      ``"exp_tanh"`` starts every coupling at the identity.
    base: density of ``eps``, ``"logistic"`` (``q`` starts uniform) or
      ``"normal"`` (Flow++).
  """
  event_shape = tuple(int(d) for d in event_shape)
  if len(event_shape) != 3 or min(event_shape) < 1:
    raise ValueError(
      "variational dequantisation needs images, event_shape (height, "
      f"width, channels); got {event_shape!r}."
    )
  check_positive_int("num_couplings", num_couplings)
  if num_couplings < 2:
    raise ValueError(
      "num_couplings must be >= 2 (a checkerboard coupling moves half the "
      f"entries); got {num_couplings!r}."
    )
  for name, value in (
    ("features", features),
    ("num_blocks", num_blocks),
    ("context_features", context_features),
  ):
    check_positive_int(name, value)
  check_choice("scale_fn", scale_fn, SCALE_FNS)
  check_choice("base", base, BASES)
  make_net = functools.partial(GlowConvNet, hidden_channels=features)
  couplings = [
    affine_coupling(
      make_net, mask="checkerboard", parity=i % 2, scale_fn=scale_fn
    )
    for i in range(num_couplings)
  ]
  flow = make_flow(
    chain(invert(sigmoid()), *couplings),
    event_shape,
    base=distributions.standard_logistic()
    if base == "logistic"
    else distributions.standard_normal(),
  )
  feature_net = ConvFeatures(
    context_features, features=features, num_blocks=num_blocks
  )
  # The largest float32 below 1: sigmoid rounds to 1.0 for h > ~17, and u
  # must stay in [0, 1) so that x + u stays in the bin of x.
  below_one = float(np.nextafter(np.float32(1.0), np.float32(0.0)))

  def context_of(params, x):
    return apply_output(feature_net, params["features"], x - 0.5)

  def init(key, x):
    check_data(x, event_shape)
    features_key, flow_key = jax.random.split(key)
    params = {"features": feature_net.init(features_key, x - 0.5)}
    # No layer of the flow looks at its example's values (no actnorm):
    # the bin centres serve as the example.
    u = jnp.full(x.shape, 0.5, x.dtype)
    params["flow"] = flow.init(flow_key, u, context_of(params, x))
    return params

  def sample(params, key, x):
    check_data(x, event_shape)
    eps = flow.base.sample(key, jax.ShapeDtypeStruct(x.shape, x.dtype))
    u, log_det = flow.bijector.inverse_and_log_det(
      params["flow"], eps, context_of(params, x)
    )
    log_q = flow.base.log_prob(eps) - log_det
    return jnp.minimum(u, below_one), log_q

  def log_prob(params, u, x):
    return flow.log_prob(params["flow"], u, context_of(params, x))

  return Dequantizer(init, sample, log_prob, flow, context_of, event_shape)


def nested_flow(flow: Flow, name: str = "flow") -> Flow:
  """``flow`` with its params at ``params[name]`` of a larger params dict.

  A flow trained with a dequantiser keeps both params in one pytree
  (``{"flow": ..., "dequantizer": ...}``, so optimiser state, EMA,
  shardings and checkpoints cover both); this view lets every tool that
  takes a ``Flow`` and those params (encoding, sampling, evaluation) use it
  unchanged. ``init`` returns ``{name: flow params}``; ``update_stats``
  replaces that entry and keeps the others.
  """

  def read(fn):
    def on_entry(params, *args, **kwargs):
      return fn(params[name], *args, **kwargs)

    return on_entry

  def write(fn):
    if fn is None:
      return None

    def on_entry(params, *args, **kwargs):
      return {**params, name: fn(params[name], *args, **kwargs)}

    return on_entry

  def init(key, x, context=None):
    return {name: flow.init(key, x, context)}

  def bijector_init(key, x, context=None):
    return {name: flow.bijector.init(key, x, context)}

  bijector = flow.bijector._replace(
    init=bijector_init,
    forward_and_log_det=read(flow.bijector.forward_and_log_det),
    inverse_and_log_det=read(flow.bijector.inverse_and_log_det),
    update_stats=write(flow.bijector.update_stats),
  )
  return flow._replace(
    init=init,
    log_prob=read(flow.log_prob),
    encode=read(flow.encode),
    decode=read(flow.decode),
    sample=read(flow.sample),
    update_stats=write(flow.update_stats),
    bijector=bijector,
  )
