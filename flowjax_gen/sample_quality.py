"""Sample quality in a classifier's feature space: Fréchet distance and KID.

Both figures compare real images with generated ones through an embedding
``phi``. Here ``phi`` is the penultimate layer of the library's own small
classifier (``models.classifier``) trained on the same dataset, NOT the
ImageNet Inception-v3 network of FID (Heusel et al. 2017) and KID (Bińkowski
et al. 2018). The figures therefore compare models of this library on this
dataset (with one classifier checkpoint) only; they are not Inception
FID/KID and are not comparable with published numbers or across datasets::

    clf = models.classifier((28, 28, 1))          # trained on the same data
    feature_fn = functools.partial(clf.features, clf_params)
    sample_quality(feature_fn, test_images / 255.0, samples)

Fréchet distance (Dowson & Landau 1982; FID's formula). Fit Gaussians
``N(mu_a, S_a)`` and ``N(mu_b, S_b)`` to the two sets of features; then::

    d^2 = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)

the squared 2-Wasserstein distance between the two Gaussians. Both square
roots come from symmetric eigendecompositions; ``S_a^1/2 S_b S_a^1/2`` is
symmetric positive semi-definite with the eigenvalues of ``S_a S_b``, so the
trace equals FID's ``tr sqrt(S_a S_b)`` without a non-symmetric ``sqrtm``.

Kernel distance (KID, Bińkowski et al. 2018). The unbiased estimate of the
squared maximum mean discrepancy (Gretton et al. 2012, eq. 3) with the cubic
polynomial kernel ``k(x, y) = (x^T y / d + 1)^3`` on ``d`` features, for
``x_1..x_m`` and ``y_1..y_n``::

    MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1))
            + sum_{i != j} k(y_i, y_j) / (n (n - 1))
            - 2 sum_{i, j} k(x_i, y_j) / (m n)

averaged over random subsets of ``m = n`` examples of each set (reported
with its standard deviation over subsets). Unlike the Fréchet distance it
has no bias that depends on the sample size, so it can be slightly negative
when the two sets come from one distribution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import jax
import numpy as np

from flowjax_gen._checks import check_positive_int


def _check_features(name: str, features: Any, min_count: int) -> np.ndarray:
  f = np.asarray(features, np.float64)
  if f.ndim != 2 or f.shape[1] < 1:
    raise ValueError(
      f"{name} must have shape (num_examples, num_features); got {f.shape}."
    )
  if f.shape[0] < min_count:
    raise ValueError(
      f"{name} needs at least {min_count} examples; got {f.shape[0]}."
    )
  if not np.all(np.isfinite(f)):
    raise ValueError(f"{name} holds non-finite values (NaN or inf).")
  return f


class FeatureStatistics:
  """Streaming mean and covariance of features, accumulated in float64.

  Keeps ``n``, ``s = sum_i f_i`` and ``S = sum_i f_i f_i^T``, so a large
  sample can be embedded batch by batch without being held in memory::

      mean = s / n,    covariance = (S - n mean mean^T) / (n - 1)

  (float64 keeps the cancellation in ``S - n mean mean^T`` harmless for
  features whose mean is not many orders of magnitude above their spread).
  """

  def __init__(self) -> None:
    self.count = 0
    self._sum: Optional[np.ndarray] = None
    self._outer: Optional[np.ndarray] = None

  def update(self, features: Any) -> FeatureStatistics:
    """Adds a ``(batch, num_features)`` array; returns ``self``."""
    f = _check_features("features", features, min_count=1)
    if self._sum is None:
      self._sum = np.zeros(f.shape[1])
      self._outer = np.zeros((f.shape[1], f.shape[1]))
    elif f.shape[1] != self._sum.shape[0]:
      raise ValueError(
        f"features must have {self._sum.shape[0]} columns like the earlier "
        f"updates; got shape {f.shape}."
      )
    self.count += f.shape[0]
    self._sum += f.sum(axis=0)
    self._outer += f.T @ f
    return self

  @property
  def mean(self) -> np.ndarray:
    """``(num_features,)`` sample mean."""
    if self._sum is None:
      raise ValueError("mean needs at least 1 example; got 0.")
    return self._sum / self.count

  @property
  def covariance(self) -> np.ndarray:
    """``(num_features, num_features)`` unbiased covariance (ddof 1)."""
    if self.count < 2:
      raise ValueError(
        f"covariance needs at least 2 examples; got {self.count}."
      )
    mean = self.mean
    return (self._outer - self.count * np.outer(mean, mean)) / (self.count - 1)


def _symmetric_eigh(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  # Symmetrise so that eigh (which reads one triangle) sees the same matrix
  # whichever triangle holds the round-off.
  return np.linalg.eigh((matrix + matrix.T) / 2)


def _check_gaussian(name: str, mean: Any, cov: Any) -> tuple[np.ndarray, ...]:
  """Validated ``(mean, cov, cov^1/2)`` in float64."""
  mean = np.asarray(mean, np.float64)
  cov = np.asarray(cov, np.float64)
  if mean.ndim != 1 or cov.shape != mean.shape * 2:
    raise ValueError(
      f"mean_{name} must have shape (d,) and cov_{name} shape (d, d); got "
      f"{mean.shape} and {cov.shape}."
    )
  if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))):
    raise ValueError(f"mean_{name} or cov_{name} holds non-finite values.")
  eigenvalues, eigenvectors = _symmetric_eigh(cov)
  # Round-off leaves tiny negative eigenvalues (clipped below); clearly
  # negative ones mean the matrix is not a covariance at all.
  if eigenvalues[0] < -1e-6 * max(np.max(np.abs(eigenvalues)), 1e-300):
    raise ValueError(
      f"cov_{name} must be positive semi-definite; its smallest eigenvalue "
      f"is {eigenvalues[0]:.3g}."
    )
  root = eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))
  return mean, cov, root @ eigenvectors.T


def frechet_distance(mean_a: Any, cov_a: Any, mean_b: Any, cov_b: Any) -> float:
  """Squared Fréchet (2-Wasserstein) distance between two Gaussians.

  ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)``, see the
  module docstring; symmetric in ``a`` and ``b`` and 0 for equal arguments.

  Raises:
    ValueError: for mismatched shapes, non-finite values or covariances
      that are clearly not positive semi-definite.
  """
  mean_a, cov_a, root_a = _check_gaussian("a", mean_a, cov_a)
  mean_b, cov_b, _ = _check_gaussian("b", mean_b, cov_b)
  if mean_a.shape != mean_b.shape:
    raise ValueError(
      f"both Gaussians must have the same dimension; got {mean_a.shape[0]} "
      f"and {mean_b.shape[0]}."
    )
  cross, _ = _symmetric_eigh(root_a @ cov_b @ root_a)
  trace_root = np.sum(np.sqrt(np.clip(cross, 0.0, None)))
  diff = mean_a - mean_b
  value = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root
  # The distance is non-negative; round-off can leave about -1e-12 * scale.
  return float(max(value, 0.0))


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
  d = x.shape[1]
  k_xx = (x @ x.T / d + 1.0) ** 3
  k_yy = (y @ y.T / d + 1.0) ** 3
  k_xy = (x @ y.T / d + 1.0) ** 3
  m, n = len(x), len(y)
  within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
  within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
  return float(within_x + within_y - 2.0 * k_xy.sum() / (m * n))


def _check_kid_settings(
  num_subsets: Any, subset_size: Any, names: tuple[str, str]
) -> None:
  check_positive_int(names[0], num_subsets)
  check_positive_int(names[1], subset_size)
  if subset_size < 2:
    raise ValueError(f"{names[1]} must be >= 2; got {subset_size}.")


def kernel_distance(
  features_a: Any,
  features_b: Any,
  *,
  num_subsets: int = 10,
  subset_size: int = 1000,
  seed: int = 0,
) -> tuple[float, float]:
  """KID: unbiased cubic-kernel MMD^2 averaged over random subsets.

  Each subset draws ``m = min(subset_size, len(a), len(b))`` examples of
  each set without replacement (``numpy`` generator seeded with ``seed``).

  Returns:
    ``(mean, std)`` of the ``num_subsets`` estimates (std with ddof 0).
  """
  a = _check_features("features_a", features_a, min_count=2)
  b = _check_features("features_b", features_b, min_count=2)
  if a.shape[1] != b.shape[1]:
    raise ValueError(
      f"features_a and features_b must have the same number of features; "
      f"got {a.shape[1]} and {b.shape[1]}."
    )
  _check_kid_settings(num_subsets, subset_size, ("num_subsets", "subset_size"))
  m = min(subset_size, len(a), len(b))
  rng = np.random.default_rng(seed)
  estimates = [
    _mmd2_unbiased(
      a[rng.choice(len(a), m, replace=False)],
      b[rng.choice(len(b), m, replace=False)],
    )
    for _ in range(num_subsets)
  ]
  return float(np.mean(estimates)), float(np.std(estimates))


def compute_features(
  feature_fn: Callable[[jax.Array], jax.Array],
  images: Any,
  *,
  batch_size: int,
) -> np.ndarray:
  """Embeds ``images`` batch by batch with one compiled ``feature_fn``.

  ``feature_fn`` maps ``(B, *event)`` to ``(B, num_features)``. Batches
  have ``min(batch_size, len(images))`` examples; the last partial batch is
  padded (repeating its last image) so that it reuses the compiled program,
  and the padding's features are dropped.
  """
  check_positive_int("batch_size", batch_size)
  count = len(images)
  if count < 1:
    raise ValueError("images must hold at least 1 example; got 0.")
  size = min(batch_size, count)
  embed = jax.jit(feature_fn)
  chunks = []
  for start in range(0, count, size):
    batch = np.asarray(images[start : start + size])
    valid = len(batch)
    pad = [(0, size - valid)] + [(0, 0)] * (batch.ndim - 1)
    features = np.asarray(embed(np.pad(batch, pad, mode="edge")))
    if features.ndim != 2 or features.shape[0] != size:
      raise ValueError(
        f"feature_fn must return (batch, num_features) = ({size}, F); got "
        f"shape {features.shape}."
      )
    chunks.append(features[:valid])
  return np.concatenate(chunks)


def _check_images(name: str, images: Any) -> np.ndarray:
  x = np.asarray(images)
  if x.ndim < 2 or len(x) < 2:
    raise ValueError(
      f"{name} must be a batch of at least 2 images; got shape {x.shape}."
    )
  if not np.issubdtype(x.dtype, np.floating):
    raise ValueError(
      f"{name} must be float images in [0, 1]; got dtype {x.dtype} "
      f"(divide 8-bit pixels by 255, as Classifier.inputs does)."
    )
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name} holds non-finite values (NaN or inf).")
  low, high = float(x.min()), float(x.max())
  if low < 0.0 or high > 1.0:
    raise ValueError(
      f"{name} must lie in [0, 1] (clip generated samples); got values in "
      f"[{low:.4g}, {high:.4g}]."
    )
  return x


def sample_quality(
  feature_fn: Callable[[jax.Array], jax.Array],
  real_images: Any,
  fake_images: Any,
  *,
  batch_size: int = 500,
  kid_subsets: int = 10,
  kid_subset_size: int = 1000,
  seed: int = 0,
) -> dict[str, float]:
  """Fréchet and kernel distances between real and generated images.

  Args:
    feature_fn: ``(B, *event) -> (B, F)`` features of float images, e.g.
      ``functools.partial(clf.features, clf_params)``.
    real_images: ``(N, *event)`` float images in ``[0, 1]``.
    fake_images: ``(M, *event)`` generated float images in ``[0, 1]``.
    batch_size: images per call of ``feature_fn``.
    kid_subsets: number of KID subsets.
    kid_subset_size: examples per KID subset (clipped to ``min(N, M)``).
    seed: seed of the KID subsets.

  Returns:
    ``{"frechet_distance", "kernel_distance", "kernel_distance_std",
    "num_real", "num_fake"}``; see the module docstring for what they are
    (and are not).
  """
  check_positive_int("batch_size", batch_size)
  _check_kid_settings(
    kid_subsets, kid_subset_size, ("kid_subsets", "kid_subset_size")
  )
  real_images = _check_images("real_images", real_images)
  fake_images = _check_images("fake_images", fake_images)
  if real_images.shape[1:] != fake_images.shape[1:]:
    raise ValueError(
      f"real_images and fake_images must have the same image shape; got "
      f"{real_images.shape[1:]} and {fake_images.shape[1:]}."
    )
  real = compute_features(feature_fn, real_images, batch_size=batch_size)
  fake = compute_features(feature_fn, fake_images, batch_size=batch_size)
  stats_real = FeatureStatistics().update(real)
  stats_fake = FeatureStatistics().update(fake)
  kid, kid_std = kernel_distance(
    real,
    fake,
    num_subsets=kid_subsets,
    subset_size=kid_subset_size,
    seed=seed,
  )
  return {
    "frechet_distance": frechet_distance(
      stats_real.mean,
      stats_real.covariance,
      stats_fake.mean,
      stats_fake.covariance,
    ),
    "kernel_distance": kid,
    "kernel_distance_std": kid_std,
    "num_real": len(real),
    "num_fake": len(fake),
  }
