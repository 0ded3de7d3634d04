"""Sample-quality metrics against direct formulas; the feature classifier."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import linalg

from flowjax_gen import data
from flowjax_gen.models.classifier import classifier
from flowjax_gen.objectives.classification import (
  classification_objective,
  classification_per_example,
)
from flowjax_gen.sample_quality import (
  FeatureStatistics,
  compute_features,
  frechet_distance,
  kernel_distance,
  sample_quality,
)


def random_gaussian(rng, d):
  mean = rng.normal(size=d)
  factor = rng.normal(size=(d, d))
  return mean, factor @ factor.T / d + 0.1 * np.eye(d)


def scipy_frechet(mean_a, cov_a, mean_b, cov_b):
  # The usual FID implementation: a non-symmetric sqrtm of S_a S_b.
  root = linalg.sqrtm(cov_a @ cov_b).real
  diff = mean_a - mean_b
  return diff @ diff + np.trace(cov_a + cov_b - 2 * root)


def direct_mmd2(x, y):
  """Unbiased MMD^2 with the cubic kernel, pair by pair."""
  d = x.shape[1]

  def k(u, v):
    return (u @ v / d + 1.0) ** 3

  m, n = len(x), len(y)
  xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
  yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
  xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
  return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2 * xy / (m * n)


def test_frechet_distance_of_identical_statistics_is_zero():
  mean, cov = random_gaussian(np.random.default_rng(0), 16)
  assert frechet_distance(mean, cov, mean, cov) == pytest.approx(0, abs=1e-9)


@pytest.mark.parametrize("d", [2, 7, 32])
def test_frechet_distance_matches_sqrtm_formula_and_is_symmetric(d):
  rng = np.random.default_rng(d)
  a, b = random_gaussian(rng, d), random_gaussian(rng, d)
  expected = scipy_frechet(*a, *b)
  np.testing.assert_allclose(frechet_distance(*a, *b), expected, rtol=1e-7)
  np.testing.assert_allclose(frechet_distance(*b, *a), expected, rtol=1e-7)


def test_frechet_distance_in_one_dimension():
  # W2^2 between N(m_a, s_a^2) and N(m_b, s_b^2) is (m_a-m_b)^2+(s_a-s_b)^2.
  got = frechet_distance([1.0], [[4.0]], [-0.5], [[0.25]])
  assert got == pytest.approx(1.5**2 + (2.0 - 0.5) ** 2, rel=1e-12)


def test_frechet_distance_handles_singular_covariances():
  # Dead ReLU units give zero-variance features: a singular covariance.
  mean, cov = random_gaussian(np.random.default_rng(1), 4)
  cov[0, :] = cov[:, 0] = 0.0
  other = cov.copy()
  other[0, 0] = 1.0
  assert frechet_distance(mean, cov, mean, other) == pytest.approx(1.0)


def test_streaming_statistics_equal_numpy_on_the_concatenation():
  rng = np.random.default_rng(0)
  chunks = [rng.normal(3.0, 2.0, size=(n, 5)) for n in (1, 17, 64, 3)]
  stats = FeatureStatistics()
  for chunk in chunks:
    stats.update(chunk.astype(np.float32))
  everything = np.concatenate(chunks).astype(np.float32).astype(np.float64)
  assert stats.count == 85
  np.testing.assert_allclose(stats.mean, everything.mean(0), rtol=1e-12)
  np.testing.assert_allclose(
    stats.covariance, np.cov(everything, rowvar=False), rtol=1e-10
  )


def test_kernel_distance_equals_direct_unbiased_mmd():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(12, 3)), rng.normal(0.5, 1.0, size=(12, 3))
  # One subset holding all the data (subset_size is clipped to 12).
  mean, std = kernel_distance(x, y, num_subsets=1, subset_size=50)
  np.testing.assert_allclose(mean, direct_mmd2(x, y), rtol=1e-10)
  assert std == 0.0


def test_kernel_distance_separates_distributions():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(2, 600, 16))
  same, same_std = kernel_distance(a, b, subset_size=300)
  shifted, _ = kernel_distance(a, b + 0.5, subset_size=300)
  assert abs(same) < 3 * same_std + 1e-3
  assert shifted > 0.1 and shifted > 50 * abs(same)


def test_compute_features_pads_the_last_batch():
  images = np.random.default_rng(0).uniform(size=(23, 4, 4, 1))

  def feature_fn(x):
    return jnp.stack([x.mean((1, 2, 3)), x.max((1, 2, 3))], axis=-1)

  got = compute_features(feature_fn, images, batch_size=10)
  np.testing.assert_allclose(got, feature_fn(images), rtol=1e-6)
  assert compute_features(feature_fn, images[:3], batch_size=10).shape == (3, 2)


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3)])
def test_classifier_shapes(shape):
  clf = classifier(shape, num_classes=7, channels=(8, 16), features=24)
  x = jnp.full((3, *shape), 0.5)
  params = clf.init(jax.random.key(0), x)
  assert clf.logits(params, x).shape == (3, 7)
  features = clf.features(params, x)
  assert features.shape == (3, clf.num_features) == (3, 24)
  assert bool(jnp.all(features >= 0))  # after the ReLU
  assert clf.event_shape == shape and clf.num_classes == 7


def test_classification_objective_jits_with_finite_grads():
  clf = classifier((8, 8, 1), channels=(8,), features=16)
  rng = np.random.default_rng(0)
  batch = {
    "image": rng.integers(0, 256, (5, 8, 8, 1)).astype(np.uint8),
    "label": rng.integers(0, 10, 5),
  }
  params = clf.init(jax.random.key(0), clf.inputs(batch))
  objective = jax.jit(classification_objective(clf))
  (loss, metrics), grads = jax.value_and_grad(objective, has_aux=True)(
    params, batch, jax.random.key(1)
  )
  assert set(metrics) == {"cross_entropy", "accuracy", "error"}
  assert np.isfinite(loss) and loss == metrics["cross_entropy"]
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  values = classification_per_example(clf)(params, batch, jax.random.key(1))
  assert {k: v.shape for k, v in values.items()} == {
    "cross_entropy": (5,),
    "accuracy": (5,),
    "error": (5,),
  }
  np.testing.assert_allclose(values["cross_entropy"].mean(), loss, rtol=1e-6)


@pytest.fixture(scope="module")
def digits_classifier():
  """A small classifier trained for 150 Adam steps on the 8x8 digits."""
  train = data.load("digits", "train")
  clf = classifier((8, 8, 1), channels=(16, 32), features=64)
  params = clf.init(jax.random.key(0), clf.inputs(train)[:2])
  optimizer = optax.adam(3e-3)
  objective = classification_objective(clf)

  @jax.jit
  def step(params, opt_state, batch):
    grads, _ = jax.grad(objective, has_aux=True)(params, batch, None)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state

  opt_state = optimizer.init(params)
  rng = np.random.default_rng(0)
  epochs = [rng.permutation(len(train["label"])) for _ in range(7)]
  order = np.concatenate(epochs)[: 150 * 64]
  for indices in order.reshape(150, 64):
    batch = {k: v[indices] for k, v in train.items()}
    params, opt_state = step(params, opt_state, batch)
  return clf, params


def test_classifier_learns_digits(digits_classifier):
  clf, params = digits_classifier
  test = data.load("digits", "test")
  per_example = jax.jit(classification_per_example(clf))
  values = per_example(params, test, None)
  assert float(values["accuracy"].mean()) > 0.85


def test_sample_quality_ranks_real_above_noise(digits_classifier):
  clf, params = digits_classifier
  feature_fn = functools.partial(clf.features, params)
  train = np.asarray(clf.inputs(data.load("digits", "train")))
  test = np.asarray(clf.inputs(data.load("digits", "test")))
  noise = np.random.default_rng(0).uniform(size=test.shape).astype(np.float32)
  real = sample_quality(feature_fn, train, test, batch_size=128)
  fake = sample_quality(feature_fn, train, noise, batch_size=128)
  assert real["num_real"] == 1500 and real["num_fake"] == 297
  assert fake["frechet_distance"] > 5 * real["frechet_distance"]
  assert fake["kernel_distance"] > 5 * max(real["kernel_distance"], 1e-4)
  same = sample_quality(feature_fn, test, test, batch_size=128)
  assert same["frechet_distance"] == pytest.approx(0.0, abs=1e-6)


def test_bad_inputs_raise():
  rng = np.random.default_rng(0)
  mean, cov = random_gaussian(rng, 3)
  with pytest.raises(ValueError, match="same dimension"):
    frechet_distance(mean, cov, mean[:2], cov[:2, :2])
  with pytest.raises(ValueError, match="cov_b"):
    frechet_distance(mean, cov, mean, cov[:2])
  with pytest.raises(ValueError, match="positive semi-definite"):
    frechet_distance(mean, cov, mean, -cov)
  stats = FeatureStatistics().update(rng.normal(size=(1, 3)))
  with pytest.raises(ValueError, match="at least 2 examples"):
    _ = stats.covariance
  with pytest.raises(ValueError, match="3 columns"):
    stats.update(rng.normal(size=(4, 2)))
  with pytest.raises(ValueError, match="at least 1 example"):
    _ = FeatureStatistics().mean
  x = rng.normal(size=(10, 3))
  with pytest.raises(ValueError, match="features_b needs at least 2"):
    kernel_distance(x, x[:1])
  with pytest.raises(ValueError, match="same number of features"):
    kernel_distance(x, x[:, :2])
  with pytest.raises(ValueError, match="non-finite"):
    kernel_distance(x, np.full((4, 3), np.nan))
  with pytest.raises(ValueError, match="subset_size must be >= 2; got 1"):
    kernel_distance(x, x, subset_size=1)
  with pytest.raises(ValueError, match="batch_size"):
    compute_features(lambda v: v, x, batch_size=0)
  images = rng.uniform(size=(4, 8, 8, 1)).astype(np.float32)
  with pytest.raises(ValueError, match="dtype uint8"):
    sample_quality(None, (images * 255).astype(np.uint8), images)
  with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
    sample_quality(None, images, images * 255)
  with pytest.raises(ValueError, match="same image shape"):
    sample_quality(None, images, images[:, :4])
  with pytest.raises(ValueError, match="kid_subsets"):
    sample_quality(None, images, images, kid_subsets=0)
  with pytest.raises(ValueError, match="event_shape"):
    classifier((8, 8))
  with pytest.raises(ValueError, match="num_classes must be >= 2; got 1"):
    classifier((8, 8, 1), num_classes=1)
  with pytest.raises(ValueError, match="channels"):
    classifier((8, 8, 1), channels=())
  with pytest.raises(ValueError, match="features"):
    classifier((8, 8, 1), features=0)
  clf = classifier((8, 8, 1))
  with pytest.raises(ValueError, match="shape"):
    clf.init(jax.random.key(0), jnp.zeros((2, 28, 28, 1)))
