"""MADE masks, masked autoregressive layers (MAF) and their inverse (IAF)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from registry import perturb

from flowjax_gen import bijectors as fb
from flowjax_gen.nets import MADE


def _dependence(fn, x, *rest):
  """|d fn(x_n, *rest_n)_o / d x_nj| summed over n: (outputs, inputs)."""
  jacobian = jax.vmap(jax.jacfwd(fn))(x, *rest)
  return np.abs(np.asarray(jacobian)).sum(axis=0)


@pytest.mark.parametrize(
  "num_inputs, hidden, context_size",
  [
    (5, (16, 16), None),
    (5, (3,), None),
    (4, (), 2),
    (1, (8,), 3),
    (6, (7,), 2),
  ],
)
def test_made_outputs_depend_only_on_earlier_inputs(
  num_inputs, hidden, context_size
):
  num_params = 3
  net = MADE(num_params, hidden_features=hidden)
  keys = jax.random.split(jax.random.key(0), 4)
  x = jax.random.normal(keys[0], (4, num_inputs))
  context = None
  if context_size:
    context = jax.random.normal(keys[1], (4, context_size))
  params = perturb(net.init(keys[2], x, context), keys[3], scale=0.5)
  out = net.apply(params, x, context)
  assert out.shape == (4, num_params * num_inputs)
  if context is None:
    dependence = _dependence(lambda v: net.apply(params, v[None])[0], x)
  else:
    dependence = _dependence(
      lambda v, c: net.apply(params, v[None], c[None])[0], x, context
    )
  for p in range(num_params):
    block = dependence[p * num_inputs : (p + 1) * num_inputs]
    assert np.all(np.triu(block) == 0.0)  # output i ignores x_j for j >= i
    if hidden and min(hidden) >= num_inputs - 1:
      # Wide enough layers connect output i to every x_j with j < i.
      assert np.all(np.tril(block, k=-1)[np.tril_indices(num_inputs, -1)] > 0)


def test_made_starts_at_zero_and_reads_the_context():
  net = MADE(2, hidden_features=(8,))
  x = jax.random.normal(jax.random.key(0), (3, 4))
  context = jnp.eye(3)
  params = net.init(jax.random.key(1), x, context)
  np.testing.assert_array_equal(net.apply(params, x, context), 0.0)
  params = perturb(params, jax.random.key(2))
  first = net.apply(params, x, context)[:, 0]  # parameter 0 of feature 0
  assert float(jnp.std(first)) > 0  # only the context can move it


SMALL_MADE = functools.partial(MADE, hidden_features=(16, 16))


@pytest.mark.parametrize("transformer", ["affine", "spline"])
def test_maf_jacobian_is_lower_triangular_and_inverse_is_one_scan(transformer):
  bijector = fb.masked_autoregressive(
    SMALL_MADE, transformer=transformer, num_bins=4, bound=2.0
  )
  x = jax.random.normal(jax.random.key(0), (3, 5))
  params = perturb(bijector.init(jax.random.key(1), x), jax.random.key(2), 0.3)
  dependence = _dependence(
    lambda v: bijector.forward_and_log_det(params, v[None])[0][0], x
  )
  assert np.all(np.triu(dependence, k=1) == 0.0)
  assert np.all(np.diag(dependence) > 0)
  # Forward: one network pass, no loop. Inverse: one scan of D steps.
  forward_jaxpr = str(jax.make_jaxpr(bijector.forward_and_log_det)(params, x))
  inverse_jaxpr = jax.make_jaxpr(bijector.inverse_and_log_det)(params, x)
  assert "scan" not in forward_jaxpr
  scans = [e for e in inverse_jaxpr.eqns if e.primitive.name == "scan"]
  assert len(scans) == 1 and scans[0].params["length"] == 5


def test_iaf_is_the_inverted_maf():
  maf = fb.masked_autoregressive(SMALL_MADE)
  iaf = fb.invert(maf)
  z = jax.random.normal(jax.random.key(0), (4, 6))
  context = None
  params = perturb(iaf.init(jax.random.key(1), z), jax.random.key(2), 0.3)
  x, log_det = iaf.forward_and_log_det(params, z, context)
  x_maf, log_det_maf = maf.inverse_and_log_det(params, z, context)
  np.testing.assert_array_equal(x, x_maf)
  np.testing.assert_array_equal(log_det, log_det_maf)
  # IAF's inverse (density of its own samples) is MAF's one-pass forward.
  z_back, inverse_log_det = iaf.inverse_and_log_det(params, x, context)
  np.testing.assert_allclose(z_back, z, atol=1e-5)
  np.testing.assert_allclose(inverse_log_det, -log_det, atol=1e-4)
  inverse_jaxpr = str(jax.make_jaxpr(iaf.inverse_and_log_det)(params, x))
  assert "scan" not in inverse_jaxpr


def test_maf_jit_vmap_and_grad():
  bijector = fb.masked_autoregressive(SMALL_MADE, transformer="spline")
  x = jax.random.normal(jax.random.key(0), (2, 3, 4))
  params = perturb(bijector.init(jax.random.key(1), x[0]), jax.random.key(2))
  mapped = jax.jit(jax.vmap(bijector.inverse_and_log_det, in_axes=(None, 0)))
  x_back, _ = mapped(params, x)
  for i in range(2):
    expected, _ = bijector.inverse_and_log_det(params, x[i])
    np.testing.assert_allclose(x_back[i], expected, atol=1e-6)

  def loss(params):
    z, log_det = bijector.forward_and_log_det(params, x[0])
    return jnp.mean(0.5 * jnp.sum(z**2, axis=1) - log_det)

  grads = jax.tree.leaves(jax.jit(jax.grad(loss))(params))
  assert all(np.isfinite(np.asarray(g)).all() for g in grads)
  assert np.abs(np.asarray(grads[-1])).max() > 0


def test_rejects_non_vectors_and_bad_settings():
  bijector = fb.masked_autoregressive(SMALL_MADE)
  with pytest.raises(ValueError, match=r"batch of vectors .* got shape"):
    bijector.init(jax.random.key(0), jnp.ones((2, 3, 4)))
  with pytest.raises(ValueError, match="transformer"):
    fb.masked_autoregressive(SMALL_MADE, transformer="cubic")
  with pytest.raises(ValueError, match="scale_fn"):
    fb.masked_autoregressive(SMALL_MADE, scale_fn="relu")
  with pytest.raises(ValueError, match="num_bins"):
    fb.masked_autoregressive(SMALL_MADE, transformer="spline", num_bins=0)
  with pytest.raises(ValueError, match="make_conditioner"):
    fb.masked_autoregressive("made")
