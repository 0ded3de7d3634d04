"""Every bijector and full flow model, as small non-trivial test cases."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from flowjax_gen import bijectors as fb
from flowjax_gen import models
from flowjax_gen.nets import (
  MADE,
  MLP,
  GatedAttentionNet,
  GlowConvNet,
  ResNet,
  ZeroConv,
)

SMALL_MLP = functools.partial(MLP, hidden_features=(16,))
SMALL_MADE = functools.partial(MADE, hidden_features=(16, 16))
SMALL_CONV = functools.partial(GlowConvNet, hidden_channels=8)
SMALL_RESNET = functools.partial(ResNet, num_blocks=1, features=8)
SMALL_GATED = functools.partial(
  GatedAttentionNet, features=8, num_blocks=1, num_heads=2
)
IMAGE = (4, 4, 2)
VECTOR = (6,)


class Case(NamedTuple):
  """A bijector, the event shape of its inputs and the input range."""

  make: Callable[[], fb.Bijector]
  event_shape: tuple
  context_size: Optional[int] = None
  unit_interval: bool = False  # inputs must lie in (0, 1)
  open_interval: bool = False  # inputs must lie in (-1, 1)
  batch_dependent: bool = False


def _glow_model(**kw):
  return models.glow(
    (8, 8, 1), levels=2, steps_per_level=2, hidden_channels=8, **kw
  ).bijector


def _flowpp_model(**kw):
  return models.flowpp(
    (4, 4, 1),
    steps=(1, 1, 1),
    features=8,
    num_blocks=1,
    num_heads=2,
    num_components=2,
    **kw,
  ).bijector


def _spline_coupling(make_net, **kw):
  return fb.spline_coupling(make_net, num_bins=4, bound=1.5, **kw)


def _autoregressive(**kw):
  return fb.masked_autoregressive(SMALL_MADE, **kw)


CASES = {
  "shift": Case(lambda: fb.shift(0.3), IMAGE),
  "scalar_affine": Case(
    lambda: fb.scalar_affine(shift=0.5, scale=-2.0), VECTOR
  ),
  "scale": Case(fb.scale, VECTOR),
  "sigmoid": Case(fb.sigmoid, VECTOR),
  "logit": Case(lambda: fb.logit(0.05), IMAGE, unit_interval=True),
  "additive_half": Case(lambda: fb.additive_coupling(SMALL_MLP), VECTOR),
  "additive_alternating": Case(
    lambda: fb.additive_coupling(SMALL_MLP, mask="alternating", parity=1),
    VECTOR,
  ),
  "affine_half_sigmoid": Case(
    lambda: fb.affine_coupling(SMALL_CONV, scale_fn="sigmoid"), IMAGE
  ),
  "affine_half_exp_tanh_parity1": Case(
    lambda: fb.affine_coupling(SMALL_CONV, parity=1, scale_fn="exp_tanh"), IMAGE
  ),
  "affine_checkerboard": Case(
    lambda: fb.affine_coupling(
      SMALL_RESNET, mask="checkerboard", scale_fn="exp"
    ),
    IMAGE,
  ),
  "affine_checkerboard_parity1": Case(
    lambda: fb.affine_coupling(SMALL_RESNET, mask="checkerboard", parity=1),
    IMAGE,
  ),
  "affine_alternating": Case(
    lambda: fb.affine_coupling(SMALL_MLP, mask="alternating"), VECTOR
  ),
  "affine_conditional": Case(
    lambda: fb.affine_coupling(SMALL_CONV), IMAGE, context_size=3
  ),
  "actnorm": Case(fb.actnorm, IMAGE),
  "actnorm_vector": Case(fb.actnorm, VECTOR),
  "conv1x1": Case(fb.conv1x1, (2, 2, 4)),
  "conv1x1_lu": Case(fb.conv1x1_lu, (2, 2, 4)),
  "reverse": Case(fb.reverse, IMAGE),
  "shuffle": Case(lambda: fb.shuffle(3), VECTOR),
  "squeeze": Case(fb.squeeze, IMAGE),
  "unsqueeze": Case(fb.unsqueeze, (2, 2, 8)),
  "reshape": Case(lambda: fb.reshape(IMAGE, (32,)), IMAGE),
  "batch_norm_eval": Case(
    lambda: fb.batch_norm(use_running_average=True), IMAGE
  ),
  "split_prior": Case(fb.gaussian_split_prior, IMAGE),
  "split_prior_conditional": Case(
    lambda: fb.gaussian_split_prior(ZeroConv), IMAGE, context_size=3
  ),
  "learned_prior": Case(fb.learned_prior, IMAGE),
  "learned_prior_conditional": Case(fb.learned_prior, IMAGE, context_size=3),
  "chain": Case(
    lambda: fb.chain(
      fb.actnorm(), fb.conv1x1(), fb.affine_coupling(SMALL_CONV)
    ),
    IMAGE,
  ),
  "invert_chain": Case(
    lambda: fb.invert(fb.chain(fb.scale(), fb.shift(1.0))), VECTOR
  ),
  "scan": Case(
    lambda: fb.scan(
      models.glow_step(hidden_channels=8, permutation="conv1x1_lu"), 3
    ),
    IMAGE,
  ),
  "scan_remat": Case(
    lambda: fb.scan(fb.chain(fb.actnorm(), fb.reverse()), 2, remat=True), IMAGE
  ),
  "multiscale": Case(
    lambda: fb.multiscale(
      [
        fb.chain(
          fb.squeeze(),
          fb.affine_coupling(SMALL_CONV),
          fb.gaussian_split_prior(),
        ),
        fb.chain(fb.squeeze(), fb.affine_coupling(SMALL_CONV)),
      ]
    ),
    (8, 8, 1),
  ),
  "nice_model": Case(
    lambda: (
      models.nice((4, 4, 1), num_couplings=4, hidden_features=(16, 16)).bijector
    ),
    (4, 4, 1),
  ),
  "realnvp_model": Case(
    lambda: (
      models.realnvp(
        (8, 8, 1), levels=2, num_blocks=1, features=8, use_running_average=True
      ).bijector
    ),
    (8, 8, 1),
    unit_interval=True,
  ),
  "glow_model": Case(_glow_model, (8, 8, 1)),
  "glow_model_additive_lu": Case(
    lambda: _glow_model(coupling="additive", permutation="conv1x1_lu"),
    (8, 8, 1),
  ),
  "glow_model_conditional": Case(_glow_model, (8, 8, 1), context_size=3),
  "glow_model_spline": Case(
    lambda: _glow_model(coupling="spline", num_bins=4, bound=1.5), (8, 8, 1)
  ),
  # Splines use a bound of 1.5 so that normal inputs land both inside the
  # bins and in the identity tails.
  "spline": Case(lambda: fb.rational_quadratic_spline(4, bound=1.5), VECTOR),
  "spline_image": Case(
    lambda: fb.rational_quadratic_spline(3, bound=1.0), IMAGE
  ),
  "spline_coupling_half": Case(lambda: _spline_coupling(SMALL_MLP), VECTOR),
  "spline_coupling_alternating_parity1": Case(
    lambda: _spline_coupling(SMALL_MLP, mask="alternating", parity=1), VECTOR
  ),
  "spline_coupling_channels": Case(
    lambda: _spline_coupling(SMALL_CONV, parity=1), IMAGE
  ),
  "spline_coupling_checkerboard": Case(
    lambda: _spline_coupling(SMALL_RESNET, mask="checkerboard"), IMAGE
  ),
  "spline_coupling_conditional": Case(
    lambda: _spline_coupling(SMALL_MLP), VECTOR, context_size=3
  ),
  "mixture_cdf": Case(lambda: fb.logistic_mixture_cdf(3), VECTOR),
  "mixture_cdf_image": Case(lambda: fb.logistic_mixture_cdf(2), IMAGE),
  "mixture_coupling_half": Case(
    lambda: fb.logistic_mixture_coupling(SMALL_MLP, num_components=3), VECTOR
  ),
  "mixture_coupling_channels": Case(
    lambda: fb.logistic_mixture_coupling(SMALL_CONV, parity=1), IMAGE
  ),
  "mixture_coupling_checkerboard": Case(
    lambda: fb.logistic_mixture_coupling(SMALL_RESNET, mask="checkerboard"),
    IMAGE,
  ),
  "mixture_coupling_conditional": Case(
    lambda: fb.logistic_mixture_coupling(SMALL_MLP, num_components=2),
    VECTOR,
    context_size=3,
  ),
  "flowpp_model": Case(_flowpp_model, (4, 4, 1), unit_interval=True),
  "flowpp_model_affine_conditional": Case(
    lambda: _flowpp_model(coupling="affine", attention=False),
    (4, 4, 1),
    context_size=3,
    unit_interval=True,
  ),
  "spline_coupling_gated_attention": Case(
    lambda: _spline_coupling(SMALL_GATED, mask="checkerboard"), IMAGE
  ),
  "maf_affine": Case(_autoregressive, VECTOR),
  "maf_affine_exp": Case(lambda: _autoregressive(scale_fn="exp"), VECTOR),
  "maf_spline": Case(
    lambda: _autoregressive(transformer="spline", num_bins=4, bound=1.5),
    VECTOR,
  ),
  "maf_conditional": Case(_autoregressive, VECTOR, context_size=3),
  "maf_spline_conditional": Case(
    lambda: _autoregressive(transformer="spline", num_bins=3, bound=1.5),
    VECTOR,
    context_size=3,
  ),
  "iaf": Case(lambda: fb.invert(_autoregressive()), VECTOR),
  "iaf_spline": Case(
    lambda: fb.invert(_autoregressive(transformer="spline", bound=1.5)),
    VECTOR,
  ),
  "tanh": Case(fb.tanh, VECTOR),
  "invert_tanh": Case(lambda: fb.invert(fb.tanh()), VECTOR, open_interval=True),
  "softplus": Case(fb.softplus, IMAGE),
  "exp": Case(fb.exp, VECTOR),
  "leaky_relu": Case(lambda: fb.leaky_relu(0.3), VECTOR),
  "sinh_arcsinh_fixed": Case(
    lambda: fb.sinh_arcsinh(skewness=0.5, tailweight=0.7), VECTOR
  ),
  "sinh_arcsinh_learned": Case(
    lambda: fb.sinh_arcsinh(skewness=-0.3, tailweight=1.4, learned=True),
    IMAGE,
  ),
  "permutation": Case(lambda: fb.permutation([2, 0, 5, 1, 4, 3]), VECTOR),
  "concatenate": Case(
    lambda: fb.concatenate(
      [fb.sinh_arcsinh(learned=True), fb.affine_coupling(SMALL_MLP), fb.exp()],
      sizes=[1, 4, 1],
    ),
    VECTOR,
  ),
  "stack": Case(
    lambda: fb.stack(
      [fb.tanh(), fb.leaky_relu(0.5)]
      + [fb.rational_quadratic_spline(4, bound=1.5)] * 4
    ),
    VECTOR,
  ),
  "nsf_model": Case(
    lambda: (
      (
        models.nsf(VECTOR, num_layers=2, hidden_features=(8,), num_bins=4)
      ).bijector
    ),
    VECTOR,
  ),
  "maf_model": Case(
    lambda: (
      models.maf(
        VECTOR, num_layers=2, hidden_features=(8, 8), transformer="spline"
      ).bijector
    ),
    VECTOR,
  ),
}


def perturb(params, key, scale=0.1):
  """Adds noise to every float leaf so zero-initialised layers stop being
  identities; fixed leaves (LU permutation and signs) are kept, and
  variances are scaled rather than shifted so they stay positive.

  The noise is drawn on the host (numpy, seeded from ``key``): one JAX
  random program per leaf shape would cost a compilation each.
  """
  paths_and_leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  if not paths_and_leaves:
    return params
  treedef = jax.tree.structure(params)
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).tolist())
  new = []
  for path, leaf in paths_and_leaves:
    names = {getattr(p, "key", None) for p in path}
    noise = scale * rng.standard_normal(np.shape(leaf))
    if "fixed" in names:
      new.append(leaf)
    elif names & {"running_var"}:
      new.append(leaf * np.exp(noise).astype(leaf.dtype))
    else:
      new.append(leaf + noise.astype(leaf.dtype))
  return jax.tree.unflatten(treedef, new)


def make_inputs(case: Case, key, batch=3, dtype=jnp.float32):
  """A batch of inputs (and context) in the case's input range."""
  k1, k2 = jax.random.split(key)
  shape = (batch,) + case.event_shape
  if case.unit_interval:
    x = jax.random.uniform(k1, shape, dtype, 0.05, 0.95)
  elif case.open_interval:
    x = jax.random.uniform(k1, shape, dtype, -0.95, 0.95)
  else:
    x = jax.random.normal(k1, shape, dtype)
  context = None
  if case.context_size:
    labels = jax.random.randint(k2, (batch,), 0, case.context_size)
    context = jax.nn.one_hot(labels, case.context_size, dtype=dtype)
  return x, context


@functools.cache
def jitted(name: str) -> fb.Bijector:
  """The case's bijector with jitted functions, built once per session so
  every test reuses the compiled code."""
  bijector = CASES[name].make()
  return fb.Bijector(*(None if fn is None else jax.jit(fn) for fn in bijector))


def build(name: str, key, batch=3, dtype=jnp.float32):
  """(jitted bijector, perturbed params, x, context) for a case."""
  case = CASES[name]
  bijector = jitted(name)
  k_init, k_noise, k_x = jax.random.split(key, 3)
  x, context = make_inputs(case, k_x, batch, dtype)
  params = bijector.init(k_init, x, context)
  params = jax.tree.map(lambda p: jnp.asarray(p, dtype), params)
  return bijector, perturb(params, k_noise), x, context
