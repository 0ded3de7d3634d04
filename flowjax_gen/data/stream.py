"""A checkpointable batch stream over records on disk, read through grain.

The order. Global position ``g = e * N + i`` (epoch ``e``, ``i < N``) holds
record ``shuffle_e(i)``, where ``shuffle_e`` is grain's index shuffle (a
Feistel permutation computed per index, so no ``N``-long permutation is kept
in memory) seeded by ``seed + e``. Global batch ``s`` is positions
``[s * B, (s + 1) * B)``: batches run across epoch boundaries, so every
record is seen once per epoch and none is dropped. Process ``p`` of ``P``
reads the contiguous slice ``[s * B + p * B / P, s * B + (p + 1) * B / P)``
of it and nothing else, so the processes read disjoint records whose union
is the epoch, and their slices concatenated (what
``parallel.shard_batch`` assembles) are the single-process batch. Random
flips are drawn for the whole global batch (from ``seed`` and ``s``) and
sliced like it. None of it depends on ``P`` or on the number of reader
threads and worker processes.

The position is the number of global batches handed out, saved with the
model as ``{"batch", "seed", "num_records"}`` (``get_state``). Because the
order is a function of the global position alone, a run resumed on another
number of processes, or with other worker counts, continues with the same
global batches; a state saved with another seed or another number of
records (the data changed) is refused.

This is a grain ``MapDataset`` of global batch numbers from ``s`` on, mapped
to this process's part (record indices from the shuffle, one parallel
ArrayRecord read for the part, checks and flips vectorised over it), handed
to grain's threaded prefetch (``ReadOptions``) and, with ``workers > 0``,
to worker processes (``mp_prefetch``). The position is kept here rather than in
grain's iterator state because grain's state depends on the worker count,
while this one is two integers any process count can resume from.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import numpy as np

from flowjax_gen.data.pipeline import check_process_share, flip_share
from flowjax_gen.data.records import RecordSource


def _positions(num_records: int, seed: int):
  """Global position -> record: grain's per-epoch index shuffle."""
  import grain  # noqa: PLC0415

  return grain.MapDataset.range(num_records).shuffle(seed=seed).repeat()


class _ReadBatch:
  """Global batch ``s`` -> this process's part of it, read and flipped.

  A class rather than a closure so that grain's worker processes can
  unpickle it; the position map is rebuilt in each process."""

  def __init__(self, iterator: StreamIterator):
    self.records = iterator.records
    self.seed = iterator.seed
    self.batch_size = iterator.batch_size
    self.local = iterator.batch_size // iterator.process_count
    self.offset = iterator.process_index * self.local
    self.random_flip = iterator.random_flip
    self._positions = None

  def __getstate__(self) -> dict:
    return {**self.__dict__, "_positions": None}

  def __call__(self, batch_index: int) -> dict[str, np.ndarray]:
    if self._positions is None:
      self._positions = _positions(len(self.records), self.seed)
    first = batch_index * self.batch_size + self.offset
    records = [
      int(cast(int, self._positions[g]))
      for g in range(first, first + self.local)
    ]
    batch = self.records.take(records)
    if self.random_flip:
      batch["image"] = flip_share(
        batch["image"], [self.seed, batch_index], self.batch_size, self.offset
      )
    return batch


class StreamIterator:
  """Infinite iterator of per-process batches read from a ``RecordSource``.

  Args:
    records: The split to stream.
    batch_size: The global batch size, summed over processes.
    seed: Seed of the shuffle and the flips, in ``[0, 2**32)``.
    process_index: This process's index in ``[0, process_count)``.
    process_count: Number of processes sharing each global batch.
    random_flip: Mirror images (rank 3 per example) along their width with
      probability 1/2 each.
    threads: Threads reading batches ahead (grain ``ReadOptions``).
    prefetch: Batches read ahead per process.
    workers: Worker processes reading batches (grain ``mp_prefetch``); 0
      reads in this process's threads.

  Raises:
    ValueError: For a batch that does not split over the processes, or
      other inconsistent settings.
  """

  def __init__(
    self,
    records: RecordSource,
    *,
    batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    random_flip: bool = False,
    threads: int = 2,
    prefetch: int = 4,
    workers: int = 0,
  ):
    check_process_share(batch_size, process_index, process_count)
    if not 0 <= seed < 2**32:
      raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    if threads < 0 or prefetch < 0 or workers < 0:
      raise ValueError(
        f"threads ({threads}), prefetch ({prefetch}) and workers "
        f"({workers}) must be non-negative"
      )
    self.records = records
    self.batch_size = batch_size
    self.seed = seed
    self.process_index = process_index
    self.process_count = process_count
    self.random_flip = random_flip
    self.threads, self.prefetch, self.workers = threads, prefetch, workers
    self._batch = 0
    self._iterator: Iterator[dict] | None = None

  @property
  def num_records(self) -> int:
    return len(self.records)

  def record_indices(self, count: int) -> np.ndarray:
    """The records at the first ``count`` global positions (the head of
    epoch 0's order), e.g. for a data-dependent initialisation."""
    positions = _positions(self.num_records, self.seed)
    return np.asarray([positions[i] for i in range(count)], np.int64)

  def _batches(self):
    """This process's batches, from the current position on."""
    import grain  # noqa: PLC0415

    # Global batch numbers from the position on; no end in practice.
    numbers = grain.MapDataset.range(self._batch, 2**62)
    dataset = numbers.map(_ReadBatch(self)).to_iter_dataset(
      grain.ReadOptions(
        num_threads=self.threads, prefetch_buffer_size=self.prefetch
      )
    )
    if self.workers:
      _absl_flags_parsed()
      dataset = dataset.mp_prefetch(
        grain.MultiprocessingOptions(num_workers=self.workers)
      )
    return iter(dataset)

  def get_state(self) -> dict[str, int]:
    """The position of the next batch, as plain ints for a checkpoint."""
    return {
      "batch": self._batch,
      "seed": self.seed,
      "num_records": self.num_records,
    }

  def set_state(self, state: dict[str, Any]) -> None:
    """Restores a position saved by ``get_state`` (by any process count).

    Raises:
      ValueError: If the state is malformed (e.g. an in-memory iterator's),
        was saved with another seed, or over another number of records.
    """
    missing = {"batch", "seed", "num_records"} - set(state)
    if missing:
      raise ValueError(
        f"the data position {state} is not a streamed input's (it lacks "
        f"{sorted(missing)})"
      )
    if int(state["seed"]) != self.seed:
      raise ValueError(
        f"the data position has seed={int(state['seed'])} but this stream "
        f"has seed={self.seed}"
      )
    if int(state["num_records"]) != self.num_records:
      raise ValueError(
        f"the data position was saved over {int(state['num_records'])} "
        f"records, but the {self.records.describe()} has {self.num_records}: "
        "the data changed, so the order it fixed is gone"
      )
    if int(state["batch"]) < 0:
      raise ValueError(f"the data position is negative: {state}")
    self.close()
    self._batch = int(state["batch"])

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    if self._iterator is None:
      self._iterator = self._batches()
    batch = next(self._iterator)
    self._batch += 1
    return batch

  def close(self) -> None:
    """Stops the reader threads or workers; the next batch restarts them
    at the current position."""
    iterator, self._iterator = self._iterator, None
    close = getattr(iterator, "close", None)
    if close is not None:
      close()


def _absl_flags_parsed() -> None:
  """grain's worker processes read absl flags of grain's own; a program
  that does not parse flags (a notebook, a test) gets their defaults."""
  from absl import flags  # noqa: PLC0415

  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
