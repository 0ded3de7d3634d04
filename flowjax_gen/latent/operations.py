"""Encoding a dataset into a store, and arithmetic on latents.

``encode_dataset`` runs a codec over a whole split in jitted, data-parallel
batches and appends the encodings to an ``EncodingStore``; the rest works on
latent vectors ``z`` of shape ``(..., d)``:

    manipulate:   z + alpha dz                        for every alpha
    interpolate:  (1 - t) z0 + t z1                   (linear)
                  sin((1 - t) W) / sin W z0
                    + sin(t W) / sin W z1             (slerp, White 2016)
    analogy:      c + (b - a)                         "a is to b as c is to ?"

with ``W`` the angle between ``z0`` and ``z1``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from tqdm import tqdm

from flowjax_gen._checks import check_choice, check_positive_int
from flowjax_gen.latent.codecs import Codec
from flowjax_gen.latent.store import EncodingStore
from flowjax_gen.parallel import (
  batch_sharded,
  check_batch_size,
  data_mesh,
  process_slice,
  replicate,
  replicated,
  shard_batch,
)

INTERPOLATIONS = ("linear", "slerp")
METRICS = ("euclidean", "cosine")
# Below this angle (radians) slerp and linear interpolation agree to float
# precision, and the slerp weights would divide by ~0.
_MIN_ANGLE = 1e-4


def _prepare_store(
  path, ids, *, fingerprint, latent_size, names, info, resume, overwrite
) -> EncodingStore:
  """The store to append to: a new one, or an interrupted one to resume."""
  try:
    store = EncodingStore.open(path, allow_incomplete=True)
  except ValueError:
    store = None
  if store is None or overwrite:
    return EncodingStore.create(
      path,
      fingerprint=fingerprint,
      latent_size=latent_size,
      attribute_names=names,
      source=info,
      overwrite=overwrite,
    )
  if store.complete or not resume:
    state = "complete" if store.complete else "incomplete (resume=False)"
    raise ValueError(
      f"the encoding store at {path!r} exists and is {state}; pass "
      "overwrite=True to encode again."
    )
  store.check_compatible(fingerprint=fingerprint, latent_size=latent_size)
  done = store.num_examples
  stored = store.read_all(("id",))["id"] if done else ids[:0]
  if (
    store.attribute_names != names
    or done > len(ids)
    or not np.array_equal(stored, ids[:done])
  ):
    raise ValueError(
      f"cannot resume the encoding store at {path!r}: its {done} rows, ids "
      "or attribute names are not those of the data given; pass "
      "overwrite=True to encode again."
    )
  return store


def encode_dataset(
  codec: Codec,
  params: Any,
  source: Mapping[str, Any],
  store_path: str,
  *,
  fingerprint: str,
  batch_size: int,
  mesh: Optional[jax.sharding.Mesh] = None,
  attribute_names: Optional[Sequence[str]] = None,
  source_info: Optional[Mapping[str, Any]] = None,
  resume: bool = True,
  overwrite: bool = False,
  seed: int = 0,
) -> EncodingStore:
  """Encodes every example of ``source`` into the store at ``store_path``.

  Batches are sharded over ``mesh`` and encoded by one jitted program; the
  last partial batch is padded and the padding dropped. Each batch becomes
  one chunk. An interrupted encode (an incomplete store with the same
  fingerprint, attribute names and leading ids) resumes after the rows it
  holds. With several processes, each passes the same ``source``; process 0
  writes the store.

  Args:
    codec: the codec; ``params`` its params.
    source: ``{"image": (N, ...)}`` plus ``"attributes"`` (N, A) or
      ``"label"`` (N,), and optional ``"id"`` (default: the row index).
    store_path: the store directory.
    fingerprint: the model's fingerprint (``codecs.fingerprint``).
    batch_size: global batch, divisible by the device count.
    mesh: the data mesh (default: every device).
    attribute_names: names of the ``attributes`` columns (default
      ``attribute_0``, ...).
    source_info: free-form description recorded in the manifest.
    resume: continue an interrupted encode (else it raises).
    overwrite: replace an existing store.
    seed: key of a VAE codec that samples the posterior (folded with the
      first row of each batch).

  Returns:
    The complete store, opened.
  """
  images = np.asarray(source["image"])
  n = len(images)
  if tuple(images.shape[1:]) != tuple(codec.event_shape):
    raise ValueError(
      f"source images have shape {images.shape[1:]}; the codec encodes "
      f"{codec.event_shape}."
    )
  columns = {"ids": np.asarray(source.get("id", np.arange(n)))}
  if "attributes" in source:
    columns["attributes"] = np.asarray(source["attributes"])
    width = columns["attributes"].shape[1]
    names = list(attribute_names or (f"attribute_{i}" for i in range(width)))
  elif attribute_names is not None:
    raise ValueError("attribute_names given but source has no 'attributes'.")
  else:
    names = None
    if "label" in source:
      columns["labels"] = np.asarray(source["label"])
  for name, values in columns.items():
    if len(values) != n:
      raise ValueError(f"source has {len(values)} {name} for {n} images.")
  mesh = mesh or data_mesh()
  check_batch_size(batch_size, mesh)
  writer = jax.process_index() == 0
  start = 0
  if writer:
    store = _prepare_store(
      store_path,
      columns["ids"],
      fingerprint=fingerprint,
      latent_size=codec.latent_size,
      names=names,
      info=source_info,
      resume=resume,
      overwrite=overwrite,
    )
    start = store.num_examples
  if jax.process_count() > 1:
    start = int(multihost_utils.broadcast_one_to_all(np.int64(start)))
  encode = jax.jit(
    codec.encode,
    in_shardings=(replicated(mesh), batch_sharded(mesh), replicated(mesh)),
    out_shardings=replicated(mesh),
  )
  params = replicate(params, mesh)
  starts = range(start, n, batch_size)
  for begin in tqdm(starts, desc="encode", unit="batch", disable=not writer):
    rows = np.arange(begin, begin + batch_size)
    valid = rows < n
    rows = np.where(valid, rows, begin)  # padding, dropped below
    batch = shard_batch(process_slice({"image": images[rows]}), mesh)
    key = jax.random.fold_in(jax.random.key(seed), begin)
    z = np.asarray(encode(params, batch["image"], key))[valid]
    if writer:
      store.append(z, **{k: v[rows[valid]] for k, v in columns.items()})
  if writer:
    store.finalize()
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("encoding store complete")
  return EncodingStore.open(store_path)


def manipulate(z: Any, dz: Any, alphas: Sequence[float]) -> jax.Array:
  """``z + alpha dz`` for every alpha: ``(len(alphas), *z.shape)``."""
  scales = jnp.asarray(alphas, jnp.float32)
  z, dz = jnp.asarray(z), jnp.asarray(dz)
  if dz.shape[-1:] != z.shape[-1:]:
    raise ValueError(f"dz must have size {z.shape[-1]}; got shape {dz.shape}.")
  return z[None] + scales.reshape((-1,) + (1,) * z.ndim) * dz


def interpolate(
  z0: Any, z1: Any, ts: Sequence[float], kind: str = "linear"
) -> jax.Array:
  """Points between ``z0`` (``t = 0``) and ``z1`` (``t = 1``).

  ``kind="slerp"`` moves along the great circle (White 2016): with the angle
  ``W = 2 atan2(|u0 - u1|, |u0 + u1|)`` between the unit vectors ``u``
  (accurate for small and large angles), ``z(t) = sin((1 - t) W) / sin W z0
  + sin(t W) / sin W z1``, which keeps the norm of equal-norm endpoints.
  When ``W`` is near 0 or pi, where the weights are undefined, it falls back
  to the linear path. The endpoints are reproduced exactly by both.

  Args:
    z0, z1: latents of one shape ``(..., d)``.
    ts: positions along the path.
    kind: ``"linear"`` or ``"slerp"``.

  Returns:
    ``(len(ts), ..., d)``.
  """
  check_choice("kind", kind, INTERPOLATIONS)
  z0, z1 = jnp.asarray(z0), jnp.asarray(z1)
  if z0.shape != z1.shape:
    raise ValueError(f"z0 {z0.shape} and z1 {z1.shape} must have one shape.")
  t = jnp.asarray(ts, z0.dtype).reshape((-1,) + (1,) * z0.ndim)
  linear = (1 - t) * z0 + t * z1
  if kind == "linear":
    return linear
  u0 = z0 / jnp.linalg.norm(z0, axis=-1, keepdims=True)
  u1 = z1 / jnp.linalg.norm(z1, axis=-1, keepdims=True)
  omega = 2 * jnp.arctan2(
    jnp.linalg.norm(u0 - u1, axis=-1, keepdims=True),
    jnp.linalg.norm(u0 + u1, axis=-1, keepdims=True),
  )
  degenerate = (omega < _MIN_ANGLE) | (omega > jnp.pi - _MIN_ANGLE)
  sin_omega = jnp.where(degenerate, 1.0, jnp.sin(omega))
  slerp = (
    jnp.sin((1 - t) * omega) / sin_omega * z0
    + jnp.sin(t * omega) / sin_omega * z1
  )
  return jnp.where(degenerate, linear, slerp)


def analogy(a: Any, b: Any, c: Any) -> jax.Array:
  """``c + (b - a)``: "a is to b as c is to ?"."""
  return jnp.asarray(c) + (jnp.asarray(b) - jnp.asarray(a))


def sample_latents(
  codec: Codec, params: Any, key: jax.Array, n: int, temperature: float = 1.0
) -> jax.Array:
  """``n`` latents from the codec's prior with its scale times
  ``temperature`` (Glow's T; T < 1 trades diversity for fidelity)."""
  check_positive_int("n", n)
  if not temperature > 0:
    raise ValueError(f"temperature must be > 0; got {temperature!r}.")
  return codec.sample(params, key, n, temperature)


def nearest_neighbours(
  store: EncodingStore, queries: Any, k: int, metric: str = "euclidean"
) -> tuple[np.ndarray, np.ndarray]:
  """The ``k`` stored encodings closest to each query, streaming the store.

  A running top-``k`` (stable: ties go to the earlier row) is merged with
  each chunk's distances, computed in float64: euclidean ``|q - z|``, or
  cosine ``1 - q.z / (|q| |z|)``.

  Args:
    store: the store; queries ``(Q, d)``.
    k: neighbours per query, at most the store's size.
    metric: ``"euclidean"`` or ``"cosine"``.

  Returns:
    ``(ids, distances)``, each ``(Q, k)``, nearest first.
  """
  check_choice("metric", metric, METRICS)
  check_positive_int("k", k)
  if k > store.num_examples:
    raise ValueError(
      f"k must be <= the store's {store.num_examples} examples; got {k}."
    )
  q = np.asarray(queries, np.float64)
  if q.ndim != 2 or q.shape[1] != store.latent_size:
    raise ValueError(
      f"queries must have shape (Q, {store.latent_size}); got {q.shape}."
    )
  if metric == "cosine":
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
  best_d = np.zeros((len(q), 0))
  best_ids = None
  for chunk in store.iter_chunks(("z", "id")):
    z = chunk["z"].astype(np.float64)
    if metric == "cosine":
      d = 1.0 - q @ (z / np.linalg.norm(z, axis=1, keepdims=True)).T
    else:
      squared = (q * q).sum(1)[:, None] - 2 * q @ z.T + (z * z).sum(1)[None]
      d = np.sqrt(np.maximum(squared, 0.0))
    ids = np.broadcast_to(chunk["id"], d.shape)
    best_d = np.concatenate([best_d, d], axis=1)
    best_ids = ids if best_ids is None else np.concatenate([best_ids, ids], 1)
    order = np.argsort(best_d, axis=1, kind="stable")[:, :k]
    best_d = np.take_along_axis(best_d, order, axis=1)
    best_ids = np.take_along_axis(best_ids, order, axis=1)
  # 1 <= k <= num_examples, so the store had at least one chunk.
  assert best_ids is not None
  return best_ids, best_d
