"""Objectives against closed forms."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from flowjax_gen import bijectors as fb
from flowjax_gen import distributions, objectives
from flowjax_gen.models import make_flow


def test_identity_flow_nll_equals_base_nll():
  flow = make_flow(fb.scalar_affine(), (5,))
  x = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
  objective = objectives.flow_nll(flow.log_prob, n_bits=None)
  loss, metrics = objective(
    flow.init(jax.random.key(0), x), {"image": x}, jax.random.key(1)
  )
  expected_nats = -stats.norm.logpdf(x).sum(axis=1)
  np.testing.assert_allclose(
    metrics["nll_nats"], expected_nats.mean(), rtol=1e-5
  )
  np.testing.assert_allclose(
    loss, expected_nats.mean() / (5 * math.log(2)), rtol=1e-5
  )


@pytest.mark.parametrize("n_bits", [1, 5, 8])
def test_uniform_model_scores_n_bits_per_dim(n_bits):
  # logit(alpha=0) followed by a standard logistic is the uniform density on
  # (0, 1)^D: log|det| = -log p - log(1 - p) cancels the logistic log-density.
  flow = make_flow(
    fb.logit(0.0), (4, 4, 3), base=distributions.standard_logistic()
  )
  pixels = np.random.default_rng(n_bits).integers(0, 256, (16, 4, 4, 3))
  objective = objectives.flow_nll(flow.log_prob, n_bits=n_bits)
  loss, metrics = objective(
    {}, {"image": pixels.astype(np.uint8)}, jax.random.key(0)
  )
  np.testing.assert_allclose(loss, n_bits, atol=1e-4)
  np.testing.assert_allclose(
    metrics["nll_nats"], 48 * n_bits * math.log(2), rtol=1e-5
  )


def test_dequantize_stays_in_its_bin():
  pixels = jnp.arange(256, dtype=jnp.uint8).reshape(1, 256)
  for n_bits in (3, 8):
    x = objectives.dequantize(jax.random.key(0), pixels, n_bits)
    bins = np.floor(np.asarray(pixels) / 2 ** (8 - n_bits))
    assert np.all(np.floor(np.asarray(x) * 2**n_bits) == bins)
    assert float(x.min()) >= 0.0 and float(x.max()) < 1.0
  centres = objectives.dequantize(None, pixels, 8)
  np.testing.assert_allclose(centres, (np.arange(256) + 0.5)[None] / 256)


def test_conditional_objective_one_hot_context():
  flow = make_flow(fb.learned_prior(), (2, 2, 1))
  images = np.full((4, 2, 2, 1), 128, np.uint8)
  labels = np.array([0, 1, 2, 1])
  params = flow.init(
    jax.random.key(0), jnp.zeros((4, 2, 2, 1)), jnp.zeros((4, 3))
  )
  params["context_kernel"] = params["context_kernel"].at[1, 0].set(0.3)
  objective = objectives.flow_nll(flow.log_prob, n_bits=8, num_classes=3)
  key = jax.random.key(1)
  _, metrics = objective(params, {"image": images, "label": labels}, key)
  # The dequantisation noise dequantize draws from the key.
  x = ((128 + np.asarray(jax.random.uniform(key, images.shape))) / 256)[
    ..., 0
  ].reshape(4, 4)
  mean = np.where(labels == 1, 0.3, 0.0)[:, None]
  expected = -stats.norm.logpdf(x - mean).sum(1) + 4 * 8 * math.log(2)
  np.testing.assert_allclose(metrics["nll_nats"], expected.mean(), rtol=1e-5)


@pytest.mark.parametrize("bad", [0, 9, 2.5, True, "8"])
def test_bad_n_bits_raise(bad):
  with pytest.raises(ValueError, match="n_bits"):
    objectives.flow_nll(lambda *a: 0.0, n_bits=bad)
