"""Full precision where invertibility depends on it: every matmul on a
bijector's own data path (1x1 convolutions, their inverses, the products
of LU factors) is ``Precision.HIGHEST`` whatever the default matmul
precision, so ``decode(encode(x))`` stays exact on TPUs (bfloat16 passes at
the default) and GPUs (TF32)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxprs import equations
from registry import perturb

from flowjax_gen import bijectors as fb
from flowjax_gen import models
from flowjax_gen.models import make_flow

HIGHEST = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)


def dot_precisions(jaxpr) -> list:
  """The ``precision`` of every ``dot_general`` in ``jaxpr`` and the
  programs nested in it."""
  return [
    e.params["precision"]
    for e in equations(jaxpr)
    if e.primitive.name == "dot_general"
  ]


def test_every_matmul_of_the_linear_layers_is_highest_in_both_directions():
  step = fb.chain(fb.actnorm(), fb.conv1x1_lu())
  flow = make_flow(
    fb.chain(fb.conv1x1(), fb.squeeze(), fb.scan(step, 2)), (4, 4, 2)
  )
  x = jax.random.uniform(jax.random.key(0), (3, 4, 4, 2))
  params = perturb(flow.init(jax.random.key(1), x), jax.random.key(2))
  latents = flow.encode(params, x)
  with jax.default_matmul_precision("bfloat16"):
    for function, argument in ((flow.encode, x), (flow.decode, latents)):
      precisions = dot_precisions(
        jax.make_jaxpr(function)(params, argument).jaxpr
      )
      assert precisions and all(p == HIGHEST for p in precisions), precisions


def test_glow_round_trip_at_bfloat16_default_precision():
  """The 1x1 convolutions of a Glow are HIGHEST (its conditioners keep the
  default), and the float32 round trip stays below 1e-4."""
  flow = models.glow((8, 8, 1), levels=2, steps_per_level=2, hidden_channels=8)
  x = jax.random.uniform(jax.random.key(3), (4, 8, 8, 1))
  params = perturb(flow.init(jax.random.key(4), x), jax.random.key(5))
  with jax.default_matmul_precision("bfloat16"):
    encode = jax.make_jaxpr(flow.encode)(params, x).jaxpr
    highest = [p for p in dot_precisions(encode) if p == HIGHEST]
    # Per level, the scanned step's channel mix (the scan holds one copy
    # for all K steps; Glow's default 1x1 convolution is the full W).
    assert len(highest) >= 2, dot_precisions(encode)
    back = jax.jit(flow.decode)(params, jax.jit(flow.encode)(params, x))
  back = np.asarray(back)
  assert np.isfinite(back).all()
  np.testing.assert_allclose(back, np.asarray(x), atol=1e-4)
  assert jnp.float32 == back.dtype
