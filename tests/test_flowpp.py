"""Flow++'s conditioner (``nets.GatedAttentionNet``) and model factory
(``models.flowpp``); the bijector contract covers both through
``tests/registry.py``."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from registry import perturb

from flowjax_gen import models
from flowjax_gen.bijectors import actnorm, affine_coupling, chain
from flowjax_gen.bijectors.checks import unchecked
from flowjax_gen.nets import GatedAttentionNet


def _digit_like_batch(key, shape=(16, 28, 14, 2)):
  """A constant background with bright strokes, as MNIST after the logit:
  layer norms see many positions whose channels are all equal."""
  strokes = jax.random.uniform(key, shape) > 0.8
  noise = jax.random.uniform(jax.random.fold_in(key, 1), shape)
  return jnp.where(strokes, 2.5 + noise, -2.9 + 0.01 * noise)


def test_an_init_compiled_whole_keeps_zero_layers_exact():
  """A coupling whose last layer starts at zero is the identity, also when
  init and forward are one compiled program."""
  net = functools.partial(GatedAttentionNet, features=32, num_blocks=1)
  step = unchecked(chain(actnorm(), affine_coupling(net, mask="half")))
  norm = unchecked(actnorm())
  x = _digit_like_batch(jax.random.key(0))

  @jax.jit
  def init_and_forward(key, x):
    return step.forward_and_log_det(step.init(key, x), x)[0]

  expected = norm.forward_and_log_det(norm.init(None, x), x)[0]
  for seed in range(3):
    y = np.asarray(init_and_forward(jax.random.key(seed), x))
    np.testing.assert_allclose(y, np.asarray(expected), rtol=1e-5, atol=1e-5)
  # XLA's CPU backend (jaxlib 0.10) miscompiles a fused dot of a broadcast
  # constant (a zero kernel fresh from init) with an operand computed in
  # the same fusion (a layer norm): garbage of ~1e15 instead of zeros, on
  # some buffers and not others. bijectors.as_inputs keeps fresh params
  # out of constant folding; every member's params pass through it.
  text = init_and_forward.lower(jax.random.key(0), x).as_text()
  assert text.count("optimization_barrier") >= 2


def test_flowpp_init_leaves_unit_variance_latents():
  """Every coupling starts as the identity and every actnorm normalises the
  batch it sees, so the init batch leaves with finite, unit-scale latents."""
  flow = models.flowpp(
    (16, 16, 1), steps=(2, 1, 1), features=8, num_blocks=1, num_components=2
  )
  x = jax.nn.sigmoid(_digit_like_batch(jax.random.key(1), (16, 16, 16, 1)))
  params = flow.init(jax.random.key(2), x)
  latents = np.asarray(flow.encode(params, x))
  assert np.isfinite(latents).all()
  std = latents.reshape(-1, latents.shape[-1]).std(axis=0)
  np.testing.assert_allclose(std, 1.0, atol=0.25)
  assert np.isfinite(np.asarray(flow.log_prob(params, x))).all()


@pytest.mark.parametrize(
  "attention, gate_kernel_size", [(True, 1), (False, 1), (False, 3)]
)
def test_receptive_field_of_one_block(attention, gate_kernel_size):
  """With attention the output at the centre depends on every input
  position; without it one block's convolutions see a square of
  ``gate_kernel_size + 6`` pixels (the docstring's ``(k + 1) B + 5``)."""
  net = GatedAttentionNet(
    2,
    features=8,
    num_blocks=1,
    attention=attention,
    gate_kernel_size=gate_kernel_size,
  )
  x = jax.random.normal(jax.random.key(3), (1, 13, 13, 1))
  params = perturb(net.init(jax.random.key(4), x), jax.random.key(5), 0.3)

  def centre(x):
    return net.apply(params, x)[0, 6, 6].sum()

  grad = np.asarray(jax.grad(centre)(x))[0, :, :, 0]
  reach = (gate_kernel_size + 6) // 2
  for offset in range(7):
    seen = grad[6 + offset, 6 - offset] != 0.0
    assert seen == (attention or offset <= reach), offset


@pytest.mark.parametrize(
  "kwargs, message",
  [
    ({"steps": (1, 1)}, "three counts"),
    ({"steps": (0, 0, 0)}, "at least one step"),
    ({"num_heads": 3}, "divide features"),
    ({"coupling": "additive"}, "coupling"),
    ({"attention": 1}, "bool"),
    ({"gate_kernel_size": 2}, "odd positive"),
    ({"gate_kernel_size": 0}, "odd positive"),
  ],
)
def test_flowpp_refuses_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    models.flowpp((8, 8, 1), features=8, **kwargs)


def test_flowpp_refuses_a_width_it_cannot_split():
  with pytest.raises(ValueError, match="divisible by 4"):
    models.flowpp((8, 6, 1))


def test_attention_refuses_heads_that_do_not_divide_the_width():
  net = GatedAttentionNet(2, features=6, num_blocks=1, num_heads=4)
  with pytest.raises(ValueError, match="heads"):
    net.init(jax.random.key(0), jnp.zeros((1, 4, 4, 1)))
