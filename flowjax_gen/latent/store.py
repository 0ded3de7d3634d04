"""An append-only store of encodings, written and read chunk by chunk.

A store is a directory::

    manifest.json        what the store holds and which chunks are in it
    chunk_000000.npz     z (n, d) float32, id (n,), and label (n,) or
    chunk_000001.npz     attributes (n, A) int32 (or neither)
    ...

The manifest records the format, the fingerprint of the model that made the
encodings (``codecs.fingerprint``), the latent size, the columns, the
attribute names, the chunks with their row counts, whether the store is
complete, and a free-form ``source`` description. A chunk is written under a
temporary name, flushed to disk and renamed; only then is the manifest
replaced (also by an atomic rename). A crash therefore leaves the previous
manifest, which never lists a partial chunk, and ``complete`` is set only
after the last chunk: an interrupted encode reads as incomplete, and opening
it for reading raises until the encode is resumed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional

import numpy as np

FORMAT = 1
MANIFEST = "manifest.json"
_CHUNK = "chunk_{:06d}.npz"


class StoreMismatchError(ValueError):
  """Encodings made by another model, or of another latent size."""


class IncompleteStoreError(ValueError):
  """The store's encode was interrupted before its last chunk."""


def _fsync_dir(path: str) -> None:
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def _write_atomic(path: str, write: Any) -> None:
  """Writes through ``write(file)`` to a temporary name, flushes it to disk
  and renames it over ``path``, so readers see the old or the new file."""
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    write(f)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)
  _fsync_dir(os.path.dirname(path) or ".")


def _id_array(ids: Any) -> np.ndarray:
  ids = np.asarray(ids)
  if np.issubdtype(ids.dtype, np.integer):
    return ids.astype(np.int64)
  if ids.dtype.kind in "US":
    return ids.astype(str)
  raise ValueError(f"ids must be integers or strings; got dtype {ids.dtype}.")


class EncodingStore:
  """A store directory (see the module docstring); use ``create``/``open``."""

  def __init__(self, path: str, manifest: dict):
    self.path = path
    self.manifest = manifest

  @classmethod
  def create(
    cls,
    path: str,
    *,
    fingerprint: str,
    latent_size: int,
    attribute_names: Optional[Sequence[str]] = None,
    source: Optional[Mapping[str, Any]] = None,
    overwrite: bool = False,
  ) -> EncodingStore:
    """A new, empty store at ``path``.

    Args:
      path: the store directory; created if missing.
      fingerprint: identifies the model making the encodings.
      latent_size: ``d``, the length of every encoding.
      attribute_names: names of the ``attributes`` columns, if the store
        holds attributes (else it holds a ``label`` or nothing).
      source: free-form JSON description of the data.
      overwrite: replace a store at ``path`` (only its own files go).
    """
    manifest_path = os.path.join(path, MANIFEST)
    if os.path.exists(manifest_path):
      if not overwrite:
        raise ValueError(
          f"an encoding store exists at {path!r}; pass overwrite=True to "
          "replace it."
        )
      # The manifest goes first: a store without one never reads as valid.
      os.remove(manifest_path)
      for name in os.listdir(path):
        if name.startswith("chunk_") and ".npz" in name:
          os.remove(os.path.join(path, name))
    elif os.path.isdir(path) and os.listdir(path):
      raise ValueError(
        f"{path!r} is a non-empty directory without {MANIFEST}; an encoding "
        "store needs its own directory."
      )
    os.makedirs(path, exist_ok=True)
    names = None if attribute_names is None else list(attribute_names)
    manifest = {
      "format": FORMAT,
      "fingerprint": fingerprint,
      "latent_size": int(latent_size),
      "columns": {},
      "attribute_names": names,
      "num_examples": 0,
      "chunks": [],
      "complete": False,
      "source": dict(source or {}),
    }
    store = cls(path, manifest)
    store._write_manifest()
    return store

  @classmethod
  def open(cls, path: str, *, allow_incomplete: bool = False) -> EncodingStore:
    """The store at ``path``; raises ``IncompleteStoreError`` for one whose
    encode did not finish unless ``allow_incomplete``."""
    manifest_path = os.path.join(path, MANIFEST)
    if not os.path.isfile(manifest_path):
      raise ValueError(f"no encoding store at {path!r} (no {MANIFEST}).")
    with open(manifest_path) as f:
      manifest = json.load(f)
    if manifest.get("format") != FORMAT:
      raise ValueError(
        f"{manifest_path}: format must be {FORMAT}; got "
        f"{manifest.get('format')!r}."
      )
    if not manifest["complete"] and not allow_incomplete:
      raise IncompleteStoreError(
        f"the encoding store at {path!r} is incomplete "
        f"({manifest['num_examples']} examples in {len(manifest['chunks'])} "
        "chunks): its encode was interrupted. Run the encode again to "
        "resume it, or open with allow_incomplete=True."
      )
    return cls(path, manifest)

  @property
  def fingerprint(self) -> str:
    return self.manifest["fingerprint"]

  @property
  def latent_size(self) -> int:
    return self.manifest["latent_size"]

  @property
  def attribute_names(self) -> Optional[list[str]]:
    return self.manifest["attribute_names"]

  @property
  def num_examples(self) -> int:
    return self.manifest["num_examples"]

  @property
  def complete(self) -> bool:
    return self.manifest["complete"]

  @property
  def columns(self) -> dict[str, str]:
    """Column name -> dtype (``"str"`` for string ids)."""
    return self.manifest["columns"]

  def check_compatible(
    self,
    *,
    fingerprint: Optional[str] = None,
    latent_size: Optional[int] = None,
  ) -> None:
    """Raises ``StoreMismatchError`` if the store was made by another model
    (``fingerprint``) or holds latents of another size."""
    if fingerprint is not None and fingerprint != self.fingerprint:
      raise StoreMismatchError(
        f"the encoding store at {self.path!r} was made by the model with "
        f"fingerprint {self.fingerprint}, not {fingerprint}; encode the data "
        "again with this checkpoint."
      )
    if latent_size is not None and latent_size != self.latent_size:
      raise StoreMismatchError(
        f"the encoding store at {self.path!r} holds latents of size "
        f"{self.latent_size}, not {latent_size}."
      )

  def append(
    self,
    z: Any,
    ids: Any,
    labels: Optional[Any] = None,
    attributes: Optional[Any] = None,
  ) -> None:
    """Writes one chunk of ``n`` rows and lists it in the manifest.

    Args:
      z: ``(n, latent_size)`` encodings (stored as float32).
      ids: ``(n,)`` example ids, integers or strings.
      labels: ``(n,)`` integer labels (stores without attribute names).
      attributes: ``(n, A)`` 0/1 columns, ``A = len(attribute_names)``.
    """
    if self.complete:
      raise ValueError(f"the encoding store at {self.path!r} is complete.")
    names = self.attribute_names
    if (names is None) != (attributes is None) or (
      names and labels is not None
    ):
      holds = f"attributes {names}" if names else "labels (or nothing)"
      raise ValueError(f"the store at {self.path!r} holds {holds}.")
    rows = np.shape(z)[0] if np.ndim(z) else 0
    arrays = {"z": np.asarray(z, np.float32), "id": _id_array(ids)}
    expected = {"z": (rows, self.latent_size), "id": (rows,)}
    if labels is not None:
      arrays["label"] = np.asarray(labels, np.int32)
      expected["label"] = (rows,)
    if attributes is not None and names is not None:  # both or neither (above)
      arrays["attributes"] = np.asarray(attributes, np.int32)
      expected["attributes"] = (rows, len(names))
    for name, values in arrays.items():
      if values.shape != expected[name]:
        raise ValueError(
          f"{name} must have shape {expected[name]}; got {values.shape}."
        )
    columns = {
      k: "str" if v.dtype.kind == "U" else str(v.dtype)
      for k, v in arrays.items()
    }
    if self.manifest["chunks"] and columns != self.columns:
      raise ValueError(
        f"chunk columns {columns} differ from the store's {self.columns}."
      )
    name = _CHUNK.format(len(self.manifest["chunks"]))
    _write_atomic(
      os.path.join(self.path, name), lambda f: np.savez(f, **arrays)
    )
    self.manifest["columns"] = columns
    self.manifest["chunks"].append({"file": name, "rows": rows})
    self.manifest["num_examples"] += rows
    self._write_manifest()

  def finalize(self) -> None:
    """Marks the store complete; nothing can be appended afterwards."""
    self.manifest["complete"] = True
    self._write_manifest()

  def iter_chunks(
    self, columns: Optional[Sequence[str]] = None
  ) -> Iterator[dict[str, np.ndarray]]:
    """Yields ``{column: array}`` one chunk at a time, in store order.

    Args:
      columns: the columns to read (default: all); others are not loaded.
    """
    columns = list(self.columns if columns is None else columns)
    unknown = sorted(set(columns) - set(self.columns))
    if unknown:
      raise ValueError(
        f"columns {unknown} are not in the store; it has {list(self.columns)}."
      )
    for chunk in self.manifest["chunks"]:
      path = os.path.join(self.path, chunk["file"])
      with np.load(path, allow_pickle=False) as arrays:
        out = {name: arrays[name] for name in columns}
      for name, values in out.items():
        if len(values) != chunk["rows"]:
          raise ValueError(
            f"{path}: column {name!r} has {len(values)} rows; the manifest "
            f"lists {chunk['rows']}. The store is damaged."
          )
      yield out

  def read_all(
    self, columns: Optional[Sequence[str]] = None
  ) -> dict[str, np.ndarray]:
    """Every row of ``columns`` in memory (for small stores)."""
    parts: dict[str, list[np.ndarray]] = {}
    for chunk in self.iter_chunks(columns):
      for name, values in chunk.items():
        parts.setdefault(name, []).append(values)
    return {name: np.concatenate(values) for name, values in parts.items()}

  def _write_manifest(self) -> None:
    text = json.dumps(self.manifest, indent=1).encode()
    _write_atomic(os.path.join(self.path, MANIFEST), lambda f: f.write(text))
