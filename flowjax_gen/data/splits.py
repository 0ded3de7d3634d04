"""What training and evaluation need of a split, whichever way it is read:
an in-memory source (a dict of arrays) or a ``RecordSource`` on disk."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np

from flowjax_gen.data.records import RecordSource
from flowjax_gen.data.sources import Source

Split = Union[Source, RecordSource]
Indices = Union[Sequence[int], np.ndarray]


def num_examples(split: Split) -> int:
  """The number of examples in the split."""
  if isinstance(split, RecordSource):
    return len(split)
  return len(split["image"])


def take(
  split: Split, indices: Indices, keys: Sequence[str] = ("image", "label")
) -> dict[str, np.ndarray]:
  """The examples at ``indices`` as one batch, with the arrays in ``keys``
  that the split holds (records are read from disk, only these)."""
  if isinstance(split, RecordSource):
    batch = split.take(indices)
  else:
    rows = np.asarray(indices)
    return {k: np.asarray(v)[rows] for k, v in split.items() if k in keys}
  return {k: v for k, v in batch.items() if k in keys}
