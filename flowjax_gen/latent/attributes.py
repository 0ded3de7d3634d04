"""Binary attributes and the latent directions they define.

An attribute vector is the difference of the mean encodings of the examples
that have a binary attribute and of those that do not (the recipe of Glow's
face manipulation, Kingma & Dhariwal 2018, §6, and of White 2016)::

    dz_a = (1 / |P_a|) sum_{i in P_a} z_i - (1 / |N_a|) sum_{i in N_a} z_i

with ``P_a`` the rows whose column ``a`` is 1 and ``N_a`` those where it is
0. The sums are accumulated in float64 over the store's chunks in one pass,
so the store is never loaded whole. A store with a ``label`` column gives
one-vs-rest vectors ``label_0``, ``label_1``, ... per class.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from flowjax_gen.latent.store import EncodingStore, StoreMismatchError

MNIST_ATTRIBUTES = (*(f"digit_{k}" for k in range(10)), "thick", "slanted")


def mnist_attributes(images: Any, labels: Any) -> tuple[np.ndarray, list[str]]:
  """Twelve binary attributes of grey-level digit images.

  * ``digit_0`` ... ``digit_9``: the one-hot label.
  * ``thick``: ink mass ``m = sum_p I_p / 255`` above the median of ``m``
    over the images given (thick strokes carry more ink).
  * ``slanted``: slant above its median, where the slant is the shear
    ``s = -mu_11 / mu_02`` that the classic deskewing undoes, from the
    central second-order moments of the intensity ``I`` at column ``x`` and
    row ``y``: ``mu_11 = sum (x - x_bar)(y - y_bar) I``, ``mu_02 = sum
    (y - y_bar)^2 I``. Rows grow downwards, so ``s > 0`` is a digit whose
    top leans to the right.

  The medians are of the set given: derive the attributes once, from the set
  that is encoded into one store.

  Args:
    images: ``(N, H, W)`` or ``(N, H, W, 1)`` pixels in 0..255.
    labels: ``(N,)`` digit classes in 0..9.

  Returns:
    ``(attributes, names)``: ``(N, 12)`` int32 in {0, 1} and the column
    names ``MNIST_ATTRIBUTES``.
  """
  pixels = np.asarray(images, np.float64)
  if pixels.ndim == 4 and pixels.shape[-1] == 1:
    pixels = pixels[..., 0]
  if pixels.ndim != 3:
    raise ValueError(
      "images must have shape (N, H, W) or (N, H, W, 1); got "
      f"{np.shape(images)}."
    )
  labels = np.asarray(labels)
  if labels.shape != pixels.shape[:1] or not np.isin(labels, range(10)).all():
    raise ValueError(
      f"labels must be {len(pixels)} digit classes in 0..9; got shape "
      f"{labels.shape} with values {np.unique(labels)[:12]}."
    )
  intensity = pixels / 255.0
  mass = intensity.sum(axis=(1, 2))
  grid = np.indices(pixels.shape[1:], dtype=np.float64)
  rows, cols = grid[0], grid[1]
  weight = np.maximum(mass, 1e-12)  # a blank image has no slant
  y_bar = (intensity * rows).sum(axis=(1, 2)) / weight
  x_bar = (intensity * cols).sum(axis=(1, 2)) / weight
  dy = rows[None] - y_bar[:, None, None]
  dx = cols[None] - x_bar[:, None, None]
  mu11 = (intensity * dx * dy).sum(axis=(1, 2))
  mu02 = (intensity * dy * dy).sum(axis=(1, 2))
  slant = -mu11 / np.maximum(mu02, 1e-12)
  one_hot = labels[:, None] == np.arange(10)[None, :]
  columns = [one_hot, (mass > np.median(mass))[:, None]]
  columns.append((slant > np.median(slant))[:, None])
  return np.concatenate(columns, axis=1).astype(np.int32), list(
    MNIST_ATTRIBUTES
  )


def attribute_vectors(
  store: EncodingStore,
  *,
  fingerprint: Optional[str] = None,
  latent_size: Optional[int] = None,
) -> dict[str, dict[str, Any]]:
  """Every attribute vector of a store, in one streaming pass.

  Args:
    store: a complete store with an ``attributes`` or ``label`` column.
    fingerprint: the model the vectors are for; a store made by another
      model raises ``StoreMismatchError``.
    latent_size: the latent size the vectors are for (checked likewise).

  Returns:
    ``{name: {"vector": (d,) float32, "num_positive", "num_negative"}}``.
  """
  store.check_compatible(fingerprint=fingerprint, latent_size=latent_size)
  column = next((c for c in ("attributes", "label") if c in store.columns), "")
  if not column:
    raise ValueError(
      f"the store at {store.path!r} has no attributes or label column; it "
      f"has {list(store.columns)}."
    )
  d = store.latent_size
  positive_sums = np.zeros((0, d))
  positive_counts = np.zeros(0, np.int64)
  total_sum, total = np.zeros(d), 0
  for chunk in store.iter_chunks(("z", column)):
    z, values = chunk["z"].astype(np.float64), chunk[column]
    if column == "label":
      if values.min() < 0:
        raise ValueError(f"labels must be >= 0; got {values.min()}.")
      values = values[:, None] == np.arange(max(values.max() + 1, 1))
    elif not np.isin(values, (0, 1)).all():
      names = np.asarray(store.attribute_names)
      bad = names[~np.isin(values, (0, 1)).all(axis=0)]
      raise ValueError(f"attribute columns {list(bad)} hold values not 0/1.")
    grow = values.shape[1] - len(positive_counts)
    if grow > 0:  # a label seen for the first time
      positive_sums = np.pad(positive_sums, ((0, grow), (0, 0)))
      positive_counts = np.pad(positive_counts, (0, grow))
    values = values.astype(np.float64)
    positive_sums[: values.shape[1]] += values.T @ z
    positive_counts[: values.shape[1]] += values.sum(axis=0).astype(np.int64)
    total_sum += z.sum(axis=0)
    total += len(z)
  names = store.attribute_names or [
    f"label_{k}" for k in range(len(positive_counts))
  ]
  vectors = {}
  for name, sums, count in zip(
    names, positive_sums, positive_counts, strict=True
  ):
    if count in (0, total):
      raise ValueError(
        f"attribute {name!r} has {count} positive and {total - count} "
        "negative examples; its vector needs both."
      )
    vector = sums / count - (total_sum - sums) / (total - count)
    vectors[name] = {
      "vector": vector.astype(np.float32),
      "num_positive": int(count),
      "num_negative": int(total - count),
    }
  return vectors


def attribute_vector(store: EncodingStore, name: str, **checks: Any):
  """The vector of attribute ``name`` (``attribute_vectors(store,
  **checks)[name]["vector"]``)."""
  vectors = attribute_vectors(store, **checks)
  if name not in vectors:
    raise ValueError(f"attribute must be one of {list(vectors)}; got {name!r}.")
  return vectors[name]["vector"]


def save_vectors(
  path: str, vectors: dict, *, fingerprint: str, latent_size: int
) -> None:
  """Writes ``attribute_vectors`` output to an ``.npz``: ``names``,
  ``vectors`` (K, d), ``num_positive``, ``num_negative``, ``fingerprint``
  and ``latent_size``."""
  names = list(vectors)
  np.savez(
    path,
    names=np.asarray(names, str),
    vectors=np.stack([vectors[n]["vector"] for n in names]),
    num_positive=np.asarray([vectors[n]["num_positive"] for n in names]),
    num_negative=np.asarray([vectors[n]["num_negative"] for n in names]),
    fingerprint=np.asarray(fingerprint),
    latent_size=np.asarray(latent_size),
  )


def load_vectors(
  path: str,
  *,
  fingerprint: Optional[str] = None,
  latent_size: Optional[int] = None,
) -> dict[str, np.ndarray]:
  """Reads a ``save_vectors`` file as ``{name: (d,) vector}``; raises
  ``StoreMismatchError`` if it was made for another model or latent size."""
  with np.load(path, allow_pickle=False) as f:
    made_for, size = str(f["fingerprint"]), int(f["latent_size"])
    vectors = dict(zip(f["names"].tolist(), f["vectors"], strict=True))
  if fingerprint is not None and fingerprint != made_for:
    raise StoreMismatchError(
      f"the vectors in {path!r} were computed for the model with fingerprint "
      f"{made_for}, not {fingerprint}."
    )
  if latent_size is not None and latent_size != size:
    raise StoreMismatchError(
      f"the vectors in {path!r} have size {size}, not {latent_size}."
    )
  return vectors
