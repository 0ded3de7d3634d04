"""Bad input raises ValueError naming the argument, the value and the rule."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax_gen import bijectors as fb
from flowjax_gen import models
from flowjax_gen.nets import MLP, GlowConvNet

KEY = jax.random.key(0)
CONV = functools.partial(GlowConvNet, hidden_channels=4)

CONSTRUCTION = [
  (lambda: models.glow((30, 30, 3), levels=3), r"divisible by 2\*\*levels"),
  (lambda: models.glow((32, 32), levels=1), "event_shape"),
  (lambda: models.glow((32, 32, 3), levels=0), "levels"),
  (lambda: models.glow((8, 8, 3), steps_per_level=-1), "steps_per_level"),
  (lambda: models.glow((8, 8, 3), permutation="lu"), "permutation"),
  (lambda: models.glow((8, 8, 3), coupling="quadratic"), "coupling"),
  (lambda: models.glow((8, 8, 3), preprocess="whiten"), "preprocess"),
  (
    lambda: models.realnvp((12, 12, 3), levels=4),
    r"2\*\*\(levels - 1\) = 8 \(levels=4\)",
  ),
  (lambda: models.nice((7,)), "even"),
  (lambda: models.nice((8,), prior="cauchy"), "prior"),
  (lambda: fb.affine_coupling(CONV, mask="diagonal"), "mask"),
  (lambda: fb.affine_coupling(CONV, scale_fn="softplus"), "scale_fn"),
  (lambda: fb.affine_coupling(CONV, parity=2), "parity"),
  (lambda: fb.affine_coupling("not a net"), "make_conditioner"),
  (lambda: fb.logit(0.7), "alpha"),
  (lambda: fb.scalar_affine(scale=0.0), "scale"),
  (lambda: fb.batch_norm(momentum=0.0), "momentum"),
  (lambda: fb.batch_norm(use_running_average="yes"), "use_running_average"),
  (lambda: fb.scan(fb.actnorm(), 0), "num_steps"),
  (fb.chain, "chain"),
  (lambda: fb.chain(fb.actnorm(), "squeeze"), "chain"),
  (lambda: fb.reshape((2, 3), (5,)), "same number of entries"),
  (lambda: fb.invert(fb.batch_norm()), "running statistics"),
  (lambda: fb.spline_coupling(MLP, num_bins=0), "num_bins"),
  (lambda: fb.spline_coupling(MLP, num_bins=1000), "num_bins must be below"),
  (lambda: fb.spline_coupling(MLP, bound=-1.0), "bound"),
  (lambda: fb.spline_coupling(MLP, mask="diagonal"), "mask"),
  (lambda: fb.rational_quadratic_spline(4, bound=float("inf")), "bound"),
  (lambda: fb.leaky_relu(0.0), "negative_slope"),
  (lambda: fb.leaky_relu(float("nan")), "negative_slope"),
  (lambda: fb.sinh_arcsinh(tailweight=0.0), "tailweight"),
  (lambda: fb.sinh_arcsinh(skewness=float("inf")), "skewness"),
  (lambda: fb.permutation([0, 0, 1]), "permutation of 0..n-1"),
  (lambda: fb.permutation([0.0, 1.0]), "permutation of 0..n-1"),
  (lambda: fb.concatenate([fb.exp()], sizes=[1, 2]), "one size per"),
  (lambda: fb.concatenate([fb.exp()], sizes=[0]), "sizes"),
  (lambda: fb.stack([]), "stack"),
  (lambda: models.nsf((5,)), "even"),
  (lambda: models.nsf((4, 2)), "event_shape"),
  (lambda: models.nsf((4,), permutation="random"), "permutation"),
  (lambda: models.maf((4,), transformer="cubic"), "transformer"),
  (lambda: models.maf((4,), num_layers=0), "num_layers"),
]


@pytest.mark.parametrize("make, message", CONSTRUCTION)
def test_bad_static_arguments_raise(make, message):
  with pytest.raises(ValueError, match=message):
    make()


def test_messages_name_given_and_allowed_values():
  with pytest.raises(ValueError) as info:
    fb.affine_coupling(CONV, mask="diagonal")
  assert "'diagonal'" in str(info.value) and "'checkerboard'" in str(info.value)
  with pytest.raises(ValueError) as info:
    models.glow((30, 30, 3), levels=3)
  assert "(30, 30, 3)" in str(info.value) and "8" in str(info.value)


SHAPES = [
  (lambda: fb.affine_coupling(CONV), (2, 4, 4, 3), "even"),
  (lambda: fb.additive_coupling(MLP, mask="alternating"), (2, 5), "even"),
  (lambda: fb.affine_coupling(CONV, mask="checkerboard"), (2, 6), "rank"),
  (fb.actnorm, (4,), "rank"),
  (fb.squeeze, (2, 5, 4, 1), "even height and width"),
  (fb.squeeze, (2, 8), "rank"),
  (fb.gaussian_split_prior, (2, 4, 4, 3), "even channel count"),
  (
    lambda: fb.multiscale([fb.actnorm(), fb.actnorm()]),
    (2, 4, 4, 3),
    "channels at the end of level 0",
  ),
]


@pytest.mark.parametrize("make, shape, message", SHAPES)
def test_bad_input_shapes_raise(make, shape, message):
  bijector = make()
  with pytest.raises(ValueError, match=message):
    x = jnp.ones(shape)
    params = bijector.init(KEY, x)
    bijector.forward_and_log_det(params, x)


def test_flow_rejects_wrong_event_shape_and_non_finite_data():
  flow = models.glow((8, 8, 1), levels=2, steps_per_level=1, hidden_channels=4)
  params = flow.init(
    KEY, jnp.full((2, 8, 8, 1), 0.5) + jnp.arange(2.0)[:, None, None, None]
  )
  with pytest.raises(
    ValueError, match=r"x must have shape \(batch, \*\(8, 8, 1"
  ):
    flow.log_prob(params, jnp.ones((2, 8, 8)))
  with pytest.raises(ValueError, match="got"):
    flow.log_prob(params, jnp.ones((8, 8, 1)))
  bad = np.full((2, 8, 8, 1), 0.5, np.float32)
  bad[1, 3, 3, 0] = np.nan
  models.check_data(bad[:1], (8, 8, 1), check_finite=True)
  with pytest.raises(ValueError, match="1 non-finite"):
    models.check_data(bad, (8, 8, 1), check_finite=True)
  with pytest.raises(ValueError, match="outside jit"):
    jax.jit(lambda v: models.check_data(v, (8, 8, 1), check_finite=True))(bad)
  with pytest.raises(ValueError, match="latents must hold 2"):
    flow.decode(params, (jnp.ones((2, 4, 4, 2)),))
