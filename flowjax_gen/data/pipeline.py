"""A deterministic, checkpointable batch iterator over an in-memory source.

Epoch ``e`` visits the examples in the order
``np.random.default_rng([seed, e]).permutation(N)`` (the identity without
shuffling). Global batches are consecutive ``batch_size`` slices of that
order, and process ``p`` of ``P`` takes the contiguous slice
``[p * batch_size // P, (p + 1) * batch_size // P)`` of every global batch,
so the processes' slices concatenated are exactly the single-process batch
and the data order does not depend on how many hosts train. The position is
two ints, ``(epoch, step_in_epoch)`` (plus the seed, checked on restore),
saved next to the model in the orbax checkpoint; restoring it replays the
same batches as an uninterrupted run, random flips included.

Why not grain here: for sources that already sit in memory as numpy arrays
the index arithmetic above is the whole job, with a state small enough to
read in a checkpoint. Sets that do not fit in memory stream from disk
through grain (``stream.StreamIterator``), with the same guarantees: the
global batches do not depend on the process count, and the position is
saved with the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

# SeedSequence zero-pads short entropy lists, so [seed, e] would collide with
# [seed, e, 0]; a trailing stream tag keeps the flip draws independent of the
# epoch permutations.
_FLIP_STREAM = 1


def check_process_share(
  batch_size: int, process_index: int, process_count: int
) -> None:
  """Raises unless a global batch splits evenly over the processes."""
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  if process_count <= 0 or not 0 <= process_index < process_count:
    raise ValueError(
      f"need 0 <= process_index ({process_index}) < "
      f"process_count ({process_count})"
    )
  if batch_size % process_count:
    raise ValueError(
      f"batch_size={batch_size} is not divisible by "
      f"process_count={process_count}"
    )


def flip_share(
  images: np.ndarray, entropy: list[int], global_size: int, start: int
) -> np.ndarray:
  """Mirrors NHWC ``images`` (this process's examples ``start`` onwards of
  a global batch of ``global_size``) along their width, each with
  probability 1/2. The draws are made for the whole global batch from
  ``default_rng(entropy + [_FLIP_STREAM])`` and then sliced, so an
  example's flip does not depend on how many processes share the batch."""
  rng = np.random.default_rng([*entropy, _FLIP_STREAM])
  flip = rng.random(global_size)[start : start + len(images)] < 0.5
  return np.where(flip[:, None, None, None], images[:, :, ::-1], images)


class BatchIterator:
  """Infinite iterator of per-process batches (dicts of numpy arrays).

  With ``drop_remainder=True`` each epoch yields ``N // batch_size`` full
  batches and the last ``N % batch_size`` examples of its order are skipped
  (a different subset each epoch when shuffling). With ``False`` the epoch
  ends with one smaller batch, so every example is seen exactly once; its
  size must then divide by ``process_count`` so that the processes keep
  equal shares.
  """

  def __init__(
    self,
    source: dict[str, np.ndarray],
    *,
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    process_index: int = 0,
    process_count: int = 1,
    drop_remainder: bool = True,
    random_flip: bool = False,
  ):
    """Validates the arguments; see the class and module docstrings.

    Args:
      source: Arrays sharing one leading (example) axis.
      batch_size: The global batch size, summed over processes.
      seed: Non-negative seed of the shuffle and the flips.
      shuffle: Whether to permute the examples anew every epoch.
      process_index: This process's index in ``[0, process_count)``.
      process_count: Number of processes sharing each global batch.
      drop_remainder: Whether to skip each epoch's last partial batch.
      random_flip: Whether to mirror ``"image"`` (rank 4, NHWC) along its
        width with probability 1/2 per example.

    Raises:
      ValueError: For an empty or ragged source, or inconsistent settings.
    """
    if not source:
      raise ValueError("source must contain at least one array")
    lengths = {k: len(v) for k, v in source.items()}
    n = next(iter(lengths.values()))
    if n == 0 or any(m != n for m in lengths.values()):
      raise ValueError(f"source arrays need one non-zero length: {lengths}")
    if seed < 0:
      raise ValueError(f"seed must be non-negative, got {seed}")
    check_process_share(batch_size, process_index, process_count)
    if drop_remainder and batch_size > n:
      raise ValueError(
        f"batch_size={batch_size} exceeds the {n} examples "
        "(drop_remainder=True would yield no batches)"
      )
    remainder = n % batch_size
    if not drop_remainder and remainder % process_count:
      raise ValueError(
        f"the last batch of {remainder} examples (N={n}, "
        f"batch_size={batch_size}) does not split over "
        f"process_count={process_count}; use "
        "drop_remainder=True"
      )
    if random_flip and ("image" not in source or source["image"].ndim != 4):
      raise ValueError("random_flip needs an NHWC 'image' array of rank 4")
    self._source = source
    self._num_examples = n
    self.batch_size = batch_size
    self.seed = seed
    self.shuffle = shuffle
    self.process_index = process_index
    self.process_count = process_count
    self.drop_remainder = drop_remainder
    self.random_flip = random_flip
    self._epoch = 0
    self._step = 0
    self._order: tuple[int, np.ndarray] | None = None

  @property
  def steps_per_epoch(self) -> int:
    """Global batches per epoch, counting a final partial batch if kept."""
    if self.drop_remainder:
      return self._num_examples // self.batch_size
    return -(-self._num_examples // self.batch_size)

  def get_state(self) -> dict[str, int]:
    """The position of the next batch, as plain ints for a checkpoint."""
    return {
      "epoch": self._epoch,
      "step_in_epoch": self._step,
      "seed": self.seed,
    }

  def set_state(self, state: dict[str, Any]) -> None:
    """Restores a position saved by ``get_state``.

    Raises:
      ValueError: If the state is malformed, was saved with another seed, or
        points past the end of an epoch.
    """
    missing = {"epoch", "step_in_epoch", "seed"} - set(state)
    if missing:
      raise ValueError(f"iterator state lacks {sorted(missing)}: {state}")
    if int(state["seed"]) != self.seed:
      raise ValueError(
        f"iterator state has seed={int(state['seed'])} but "
        f"this iterator has seed={self.seed}"
      )
    epoch, step = int(state["epoch"]), int(state["step_in_epoch"])
    if epoch < 0 or not 0 <= step < self.steps_per_epoch:
      raise ValueError(
        f"iterator state out of range: epoch={epoch}, "
        f"step_in_epoch={step}, steps_per_epoch="
        f"{self.steps_per_epoch}"
      )
    self._epoch, self._step = epoch, step

  def close(self) -> None:
    """Nothing to stop (the batches come from memory); here so that the
    loop closes either iterator alike."""

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    epoch, step = self._epoch, self._step
    start = step * self.batch_size
    indices = self._epoch_order(epoch)[start : start + self.batch_size]
    share = len(indices) // self.process_count
    lo = self.process_index * share
    batch = {k: v[indices[lo : lo + share]] for k, v in self._source.items()}
    if self.random_flip:
      batch["image"] = flip_share(
        batch["image"], [self.seed, epoch, step], len(indices), lo
      )
    self._step += 1
    if self._step == self.steps_per_epoch:
      self._epoch, self._step = epoch + 1, 0
    return batch

  def _epoch_order(self, epoch: int) -> np.ndarray:
    if self._order is None or self._order[0] != epoch:
      if self.shuffle:
        order = np.random.default_rng([self.seed, epoch]).permutation(
          self._num_examples
        )
      else:
        order = np.arange(self._num_examples)
      self._order = (epoch, order)
    return self._order[1]
