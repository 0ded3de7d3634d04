"""VAE model and bounds: closed forms, bound ordering, likelihood masses."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from flowjax_gen.distributions import discretized_logistic_log_prob
from flowjax_gen.models.vae import vae
from flowjax_gen.nets.decoders import ConvDecoder, MLPDecoder
from flowjax_gen.nets.encoders import ConvEncoder, MLPEncoder
from flowjax_gen.objectives import vae as objectives

SIGMA = 0.5  # the linear-Gaussian model's fixed observation noise


class LinearEncoder(nn.Module):
  out_features: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.out_features)(x.reshape(x.shape[0], -1))


class LinearGaussianDecoder(nn.Module):
  """``z -> [W z + b, log SIGMA]`` per pixel (means, then log-stds)."""

  output_shape: tuple[int, int, int]

  @nn.compact
  def __call__(self, z):
    shape = (z.shape[0], *self.output_shape[:-1], self.output_shape[-1] // 2)
    mean = nn.Dense(math.prod(shape[1:]))(z).reshape(shape)
    return jnp.concatenate([mean, jnp.full(shape, math.log(SIGMA))], -1)


class IdentityDecoder(nn.Module):
  """The latents are the likelihood parameters (one pixel)."""

  output_shape: tuple[int, int, int]

  def __call__(self, z):
    return z.reshape((z.shape[0], *self.output_shape))


def linear_gaussian(exact_posterior):
  """A 2-latent, 6-pixel linear-Gaussian VAE in float64 and a batch ``x``.

  ``W = Q diag(d)`` has orthogonal columns, so the true posterior
  ``N(S W^T (x - b) / s^2, S)``, ``S = (I + W^T W / s^2)^-1``, is diagonal.
  """
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=(6, 2)))
  w, b = q * np.array([1.5, 0.7]), rng.normal(size=6)
  model = vae(
    (2, 3, 1),
    latent_size=2,
    likelihood="gaussian",
    encoder=LinearEncoder,
    decoder=LinearGaussianDecoder,
  )
  if exact_posterior:
    post_var = 1.0 / (1.0 + np.sum(w**2, axis=0) / SIGMA**2)
    m = post_var[:, None] * w.T / SIGMA**2
    kernel = np.concatenate([m.T, np.zeros((6, 2))], axis=1)
    bias = np.concatenate([-m @ b, 0.5 * np.log(post_var)])
  else:
    kernel, bias = 0.3 * rng.normal(size=(6, 4)), 0.3 * rng.normal(size=4)
  params = {
    "encoder": {"params": {"Dense_0": {"kernel": kernel, "bias": bias}}},
    "decoder": {"params": {"Dense_0": {"kernel": w.T, "bias": b}}},
  }
  x = rng.normal(size=(3, 2, 3, 1))
  return model, jax.tree.map(jnp.asarray, params), jnp.asarray(x), (w, b)


def elbo_samples(model, params, x, num):
  keys = jax.random.split(jax.random.key(1), num)
  fn = jax.jit(jax.vmap(lambda k: objectives.elbo(model, params, x, k)["elbo"]))
  return np.asarray(fn(keys))


def test_linear_gaussian_elbo_matches_closed_form():
  with jax.enable_x64(True):
    model, params, x, (w, b) = linear_gaussian(exact_posterior=False)
    mean, log_std = (np.asarray(v) for v in model.encode(params, x))
    x_flat = np.asarray(x).reshape(3, 6)
    # E_q log N(x; W z + b, s^2 I) = log N(x; W m + b, s^2 I)
    #   - tr(W diag(exp(2 log_std)) W^T) / (2 s^2)
    trace = np.exp(2 * log_std) @ np.sum(w**2, axis=0)
    at_mean = stats.norm.logpdf(x_flat, mean @ w.T + b, SIGMA).sum(1)
    expected_rec = at_mean - trace / (2 * SIGMA**2)
    expected_kl = 0.5 * np.sum(
      mean**2 + np.exp(2 * log_std) - 1 - 2 * log_std, axis=1
    )
    samples = elbo_samples(model, params, x, 4000)
  stderr = samples.std(0) / math.sqrt(len(samples))
  error = np.abs(samples.mean(0) - (expected_rec - expected_kl))
  assert np.all(error < 4 * stderr), (error, stderr)


def test_exact_posterior_bounds_equal_marginal_likelihood():
  with jax.enable_x64(True):
    model, params, x, (w, b) = linear_gaussian(exact_posterior=True)
    x_flat = np.asarray(x).reshape(3, 6)
    cov = w @ w.T + SIGMA**2 * np.eye(6)
    log_px = stats.multivariate_normal(b, cov).logpdf(x_flat)

    @jax.jit
    def bounds(key):
      return [
        objectives.elbo(model, params, x, key)["elbo"],
        objectives.iwae_bound(model, params, x, key, 1),
        objectives.iwae_bound(model, params, x, key, 20, chunk_size=6),
      ]

    elbo, iwae_1, iwae_20 = (
      np.asarray(v)
      for v in jax.vmap(bounds)(jax.random.split(jax.random.key(0), 4000))
    )
  # At the true posterior every importance weight equals p(x).
  np.testing.assert_allclose(iwae_1, np.broadcast_to(log_px, iwae_1.shape))
  np.testing.assert_allclose(iwae_20, np.broadcast_to(log_px, iwae_1.shape))
  # The ELBO estimator (closed-form KL) is unbiased for ELBO = log p(x).
  stderr = np.std(elbo, 0) / math.sqrt(len(elbo))
  assert np.all(np.abs(np.mean(elbo, 0) - log_px) < 4 * stderr)


def test_gaussian_kl_matches_monte_carlo():
  rng = np.random.default_rng(0)
  mean, log_std = rng.normal(size=(3, 4)), 0.5 * rng.normal(size=(3, 4))
  eps = rng.normal(size=(100_000, 3, 4))
  z = mean + np.exp(log_std) * eps
  log_q = np.sum(stats.norm.logpdf(eps) - log_std, axis=-1)
  log_ratio = log_q - np.sum(stats.norm.logpdf(z), axis=-1)
  stderr = log_ratio.std(0) / math.sqrt(len(eps))
  kl = objectives.gaussian_kl(jnp.asarray(mean), jnp.asarray(log_std))
  error = np.abs(log_ratio.mean(0) - kl)
  assert np.all(error < 4 * stderr), (error, stderr)


@pytest.fixture(scope="module")
def digits():
  """A small random VAE (Bernoulli, MLP) and 8x8 digit-like images (8-bit
  multiples of 16, as the digits source), binarised at 1/2."""
  pixels = np.random.default_rng(0).integers(0, 16, (32, 8, 8, 1)) * 16
  batch = {"image": pixels.astype(np.uint8)}
  model = vae((8, 8, 1), latent_size=4, hidden_features=(32, 16))
  x = model.inputs(batch, None)
  return model, jax.jit(model.init)(jax.random.key(0), x), x, batch


def test_iwae_is_above_elbo_and_grows_with_k(digits):
  model, params, x, _ = digits

  def bounds(key):
    elbo = objectives.elbo(model, params, x, key)["elbo"]
    iwae = [objectives.iwae_bound(model, params, x, key, k) for k in (1, 5, 50)]
    return jnp.stack([elbo, *iwae])

  keys = jax.random.split(jax.random.key(1), 16)
  per_key = np.mean(jax.jit(jax.vmap(bounds))(keys), axis=2)  # (16, 4)
  elbo, iwae_1, iwae_5, iwae_50 = per_key.mean(0)
  # E[L_1] is the ELBO: equal up to Monte-Carlo error.
  diff = per_key[:, 1] - per_key[:, 0]
  stderr = diff.std() / math.sqrt(len(diff))
  assert abs(diff.mean()) < 4 * stderr, (iwae_1, elbo, stderr)
  assert elbo < iwae_5 < iwae_50, (elbo, iwae_5, iwae_50)


def test_chunked_iwae_equals_unchunked(digits):
  model, params, x, _ = digits

  @jax.jit
  def bounds(key):
    return [
      objectives.iwae_bound(model, params, x, key, 7, chunk_size=chunk)
      for chunk in (None, 1, 3)  # 3 leaves a remainder chunk of 1
    ]

  whole, *chunked = bounds(jax.random.key(3))
  for bound in chunked:
    np.testing.assert_allclose(bound, whole, rtol=1e-5)


@jax.jit
def logistic_log_probs(mean, log_scale):
  """``log P(x)`` for every level ``x``, for each ``n_bits`` in 1..8."""
  return [
    discretized_logistic_log_prob(
      jnp.arange(2**n, dtype=jnp.float32)[:, None], mean, log_scale, n
    )
    for n in range(1, 9)
  ]


def test_discretized_logistic_sums_to_one():
  mean, log_scale = (
    np.array(v, np.float32).ravel()
    for v in np.meshgrid([-3.0, -1.0, 0.1, 0.99, 4.0], [-7.0, -3.0, 1.0])
  )
  for log_p in logistic_log_probs(mean, log_scale):
    total = jax.nn.logsumexp(log_p, axis=0)
    np.testing.assert_allclose(total, 0.0, atol=2e-5)


def test_logistic_likelihood_matches_cdf_differences():
  # One pixel whose decoder output is the latent: (mean, log-scale).
  model = vae(
    (1, 1, 1), latent_size=2, likelihood="logistic", decoder=IdentityDecoder
  )
  levels = jnp.arange(256, dtype=jnp.float32).reshape(-1, 1, 1, 1)
  # Bin edges c -/+ 1/255 around c = 2 x / 255 - 1; the edge bins are tails.
  edges = np.linspace(-1, 1, 256)[:, None] + np.array([-1, 1]) / 255
  edges[0, 0], edges[-1, 1] = -np.inf, np.inf
  for mean, log_scale in ((0.3, -3.0), (0.99, -1.0), (-0.5, -9.0)):
    z = jnp.broadcast_to(jnp.array([mean, log_scale]), (256, 2))
    log_p = model.log_likelihood({"decoder": {}}, levels, z)
    # Log-scales below min_log_scale = -7 are clamped.
    cdf = stats.logistic.cdf(edges, mean, math.exp(max(log_scale, -7.0)))
    mass = cdf[:, 1] - cdf[:, 0]
    keep = mass > 1e-6
    np.testing.assert_allclose(np.exp(log_p)[keep], mass[keep], rtol=1e-3)


def test_bernoulli_sums_to_one():
  model = vae((1, 1, 1), latent_size=1, decoder=IdentityDecoder)
  logits = jnp.array([-30.0, -2.0, 0.0, 0.7, 30.0])[:, None]
  both = [
    model.log_likelihood({"decoder": {}}, jnp.full((5, 1, 1, 1), v), logits)
    for v in (0.0, 1.0)
  ]
  np.testing.assert_allclose(jnp.logaddexp(*both), 0.0, atol=1e-6)


def test_inputs_preprocess_8_bit_pixels():
  image = jnp.arange(256, dtype=jnp.uint8).reshape(1, 16, 16, 1)
  batch = {"image": image}
  binary = vae((16, 16, 1)).inputs(batch, None)
  np.testing.assert_array_equal(binary.ravel(), np.arange(256) >= 128)
  draws = vae((16, 16, 1)).inputs(
    {"image": jnp.full((400, 16, 16, 1), 64)}, jax.random.key(0)
  )
  assert set(np.unique(draws)) == {0.0, 1.0}
  assert abs(float(draws.mean()) - 64 / 255) < 0.01
  levels = vae((16, 16, 1), likelihood="logistic", n_bits=3).inputs(batch, None)
  np.testing.assert_array_equal(levels.ravel(), np.arange(256) // 32)
  deq = vae((16, 16, 1), likelihood="gaussian", n_bits=5).inputs(
    batch, jax.random.key(1)
  )
  np.testing.assert_array_equal(np.floor(deq * 32).ravel(), np.arange(256) // 8)


@pytest.mark.parametrize(
  "likelihood, network, kwargs",
  [
    ("bernoulli", "mlp", {"beta": 0.5}),
    ("gaussian", "mlp", {"num_samples": 4}),
    ("logistic", "conv", {}),
  ],
)
def test_objective_and_per_example_jit(digits, likelihood, network, kwargs):
  _, _, _, batch = digits
  model = vae(
    (8, 8, 1),
    latent_size=3,
    likelihood=likelihood,
    network=network,
    hidden_features=(16, 8),
    channels=(4, 8),
    n_bits=5,
  )
  params = jax.jit(model.init)(jax.random.key(0), model.inputs(batch, None))
  objective = objectives.vae_objective(model, **kwargs)
  per_example_fn = objectives.vae_per_example(
    model, num_importance_samples=6, chunk_size=4
  )

  @jax.jit  # one program per model, so each configuration compiles once
  def run(params, batch, key):
    (loss, metrics), grads = jax.value_and_grad(objective, has_aux=True)(
      params, batch, key
    )
    per_example = per_example_fn(params, batch, key)
    images = model.sample(params, key, 5, temperature=0.7)
    recon = model.reconstruct(params, model.inputs(batch, None))
    return loss, metrics, grads, per_example, images, recon

  loss, metrics, grads, per_example, images, recon = run(
    params, batch, jax.random.key(1)
  )
  assert np.isfinite(loss) and loss > 0
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  np.testing.assert_allclose(
    metrics["negative_elbo_nats"],
    metrics["reconstruction_nats"] + metrics["kl_nats"],
    rtol=1e-5,
  )
  keys = {"elbo_bits_per_dim", "negative_elbo_nats", "kl_nats"}
  assert {k: v.shape for k, v in per_example.items()} == {
    k: (32,) for k in keys | {"bits_per_dim", "nll_nats"}
  }
  nats_to_bits = 1 / (64 * math.log(2))
  for bits, nats in (
    ("bits_per_dim", "nll_nats"),
    ("elbo_bits_per_dim", "negative_elbo_nats"),
  ):
    np.testing.assert_allclose(
      per_example[bits], per_example[nats] * nats_to_bits, rtol=1e-5
    )
  for out, n in ((images, 5), (recon, 32)):
    assert out.shape == (n, 8, 8, 1)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.mark.parametrize(
  "likelihood, offset_bits",
  [("bernoulli", 0), ("gaussian", 5), ("logistic", 0)],
)
def test_nll_offset_only_for_dequantised_density(likelihood, offset_bits):
  model = vae((4, 4, 2), likelihood=likelihood, n_bits=5)
  nats, bits = objectives.vae_nll(model, jnp.array([0.0, -32 * math.log(2)]))
  np.testing.assert_allclose(bits, [offset_bits, offset_bits + 1], rtol=1e-6)
  np.testing.assert_allclose(nats, bits * 32 * math.log(2), rtol=1e-6)


@pytest.mark.parametrize("size", [8, 28, 32])
def test_conv_nets_fit_image_sizes(size):
  x = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
  z = jax.ShapeDtypeStruct((2, 5), jnp.float32)
  key = jax.random.key(0)
  for enc in (MLPEncoder(10), ConvEncoder(10)):
    out = jax.eval_shape(lambda v, e=enc: e.apply(e.init(key, v), v), x)
    assert out.shape == (2, 10)
  for dec in (MLPDecoder((size, size, 6)), ConvDecoder((size, size, 6))):
    out = jax.eval_shape(lambda v, d=dec: d.apply(d.init(key, v), v), z)
    assert out.shape == (2, size, size, 6)


@pytest.mark.parametrize(
  "make, match",
  [
    (lambda: vae((8, 8, 1), likelihood="poisson"), "likelihood.*poisson"),
    (lambda: vae((8, 8, 1), network="rnn"), "network.*rnn"),
    (lambda: vae((8, 8, 1), latent_size=0), "latent_size.*0"),
    (lambda: vae((8, 8, 1), n_bits=9), "n_bits.*9"),
    (lambda: vae((8, 8, 1), n_bits=None), "n_bits.*None"),
    (lambda: vae((8, 8)), "event_shape.*8, 8"),
    (lambda: vae((8, 8, 1), min_log_scale=math.nan), "min_log_scale.*nan"),
    (lambda: vae((10, 12, 1), network="conv"), r"divisible.*\(10, 12, 1\)"),
    (lambda: vae((8, 8, 1)).sample({}, jax.random.key(0), 0), "n.*0"),
    (lambda: objectives.vae_objective(vae((8, 8, 1)), beta=-1), "beta.*-1"),
    (
      lambda: objectives.vae_objective(vae((8, 8, 1)), num_samples=0),
      "num_samples.*0",
    ),
    (
      lambda: objectives.vae_objective(vae((8, 8, 1)), beta=2, num_samples=5),
      "beta.*num_samples",
    ),
    (
      lambda: objectives.vae_per_example(
        vae((8, 8, 1)), num_importance_samples=0
      ),
      "num_importance_samples.*0",
    ),
  ],
)
def test_bad_arguments_raise(make, match):
  with pytest.raises(ValueError, match=match):
    make()


def test_bad_iwae_arguments_raise(digits):
  model, params, x, _ = digits
  for kwargs, match in (
    ({"num_samples": 0}, "num_samples.*0"),
    ({"num_samples": 3, "chunk_size": 0}, "chunk_size.*0"),
  ):
    with pytest.raises(ValueError, match=match):
      objectives.iwae_bound(model, params, x, jax.random.key(0), **kwargs)
