"""Random access to the examples of a split stored as records on disk.

``RecordSource(name, split)`` is a sequence of examples (dicts of numpy
arrays, the keys of an in-memory source: ``"image"`` and ``"label"`` or
``"attributes"``) read one at a time, so a split larger than a host's memory
can be trained on. Two kinds of storage:

* ``name="records"`` with ``path=FOLDER``: ArrayRecord files
  ``FOLDER/{split}-NNNNN-of-MMMMM.array_record`` (several shards are read
  as one sequence, in file-name order), one example per record, each record
  a msgpack map ``{name: [numpy dtype string, shape, raw bytes]}`` of the
  example's arrays (``decode_example``; 10x faster to decode than an
  ``.npz`` archive). ``write_records`` writes them from an in-memory
  source, e.g. a ``.npz`` file too large to load on every host.
* any other name: a TFDS dataset prepared as ArrayRecord in TFDS's data
  directory (``tfds build NAME --file_format=array_record``), read through
  ``tfds.data_source``; features are converted as ``sources.load`` converts
  them (CelebA's boolean attributes become one int32 vector in sorted
  attribute-name order).

Every example read is checked the way ``sources.load`` checks a whole split
(NaN/inf anywhere, image values outside ``value_range``) and refused with a
``BadDataError`` naming the record, so bad data stop a run at the batch that
holds them rather than after a full pass before step 1.

A source is picklable: it pickles its arguments and opens the files again
in the process that unpickles it, so grain's worker processes can read it.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from typing import Any, Optional, cast

import msgpack
import numpy as np

from flowjax_gen.data.sources import (
  PIXEL_RANGE,
  BadDataError,
  Source,
  bad_examples,
  tfds_records,
)

RECORDS = "records"
_SUFFIX = ".array_record"


def record_files(folder: str, split: str) -> list[str]:
  """The ArrayRecord files of ``split`` in ``folder``, in read order."""
  return sorted(glob.glob(os.path.join(folder, f"{split}-*{_SUFFIX}")))


def encode_example(example: Mapping[str, np.ndarray]) -> bytes:
  """One example as msgpack: ``{name: [dtype, shape, raw bytes]}``."""
  fields = {}
  for name, value in example.items():
    array = np.asarray(value)  # tobytes() is C order whatever the strides
    fields[name] = [array.dtype.str, list(array.shape), array.tobytes()]
  return cast(bytes, msgpack.packb(fields))


def decode_example(record: bytes) -> dict[str, np.ndarray]:
  """The arrays of one record written by ``encode_example``."""
  fields = msgpack.unpackb(record)
  return {
    name: np.frombuffer(raw, np.dtype(dtype)).reshape(shape)
    for name, (dtype, shape, raw) in fields.items()
  }


def write_records(
  source: Source, folder: str, split: str, *, num_shards: int = 1
) -> list[str]:
  """Writes an in-memory source as ``num_shards`` ArrayRecord files.

  Examples go to the shards in order (the first ``ceil(N / num_shards)`` to
  shard 0, and so on), so the files read back in order give the source.

  Returns:
    The paths written.
  """
  from array_record.python import (  # noqa: PLC0415
    array_record_module,  # pyright: ignore[reportAttributeAccessIssue]
  )

  n = len(source["image"])
  if num_shards <= 0 or num_shards > n:
    raise ValueError(f"num_shards must be in 1..{n}, got {num_shards}")
  os.makedirs(folder, exist_ok=True)
  bounds = np.linspace(0, n, num_shards + 1).astype(int)
  paths = []
  for shard in range(num_shards):
    name = f"{split}-{shard:05d}-of-{num_shards:05d}{_SUFFIX}"
    path = os.path.join(folder, name)
    # group_size:1 makes every record its own chunk: random access then
    # reads (and decompresses) one example, not a group of them.
    writer = array_record_module.ArrayRecordWriter(path, "group_size:1")
    for i in range(bounds[shard], bounds[shard + 1]):
      writer.write(encode_example({k: v[i] for k, v in source.items()}))
    writer.close()
    paths.append(path)
  return paths


class RecordSource(Sequence):
  """The examples of one split, read from disk one at a time and checked.

  Args:
    name: ``"records"`` (a folder of ``write_records`` files at ``path``)
      or a TFDS dataset name.
    split: ``"train"`` or ``"test"``.
    path: The folder, for ``name="records"`` only.
    data_dir: TFDS data directory (TFDS's default when ``None``).
    num_examples: Read only the first ``num_examples`` records.
    value_range: Bounds every ``"image"`` value must lie in; ``None``
      checks integer images against 0..255 and float ones for finiteness.
    pixel_levels: Return float images as uint8, refusing non-integer
      values: with ``n_bits > 0`` the objectives take pixel levels as
      integers.

  Raises:
    ValueError: For a missing folder, an empty split, or a TFDS dataset
      that is not prepared (never downloaded).
  """

  def __init__(
    self,
    name: str,
    split: str,
    *,
    path: Optional[str] = None,
    data_dir: Optional[str] = None,
    num_examples: Optional[int] = None,
    value_range: Optional[tuple[float, float]] = None,
    pixel_levels: bool = False,
  ):
    self._args: dict[str, Any] = dict(
      name=name,
      split=split,
      path=path,
      data_dir=data_dir,
      num_examples=num_examples,
      value_range=value_range,
      pixel_levels=pixel_levels,
    )
    self.name, self.split = name, split
    self.value_range = value_range
    self.pixel_levels = pixel_levels
    self._reader: Any = None
    self._decode: Any = None
    self._open()
    total = len(self._reader)
    self._length = total if num_examples is None else min(num_examples, total)
    if self._length == 0:
      raise ValueError(f"the {self.describe()} holds no records")

  def describe(self) -> str:
    """E.g. ``train split of records in /data/mnist``."""
    if self.name == RECORDS:
      return f"{self.split} split of records in {self._args['path']}"
    return f"{self.split} split of tfds dataset {self.name!r}"

  def _open(self) -> None:
    if self.name == RECORDS:
      self._reader, self._decode = self._open_folder(), decode_example
    else:
      self._reader, self._decode = self._open_tfds(), _from_tfds

  def _open_folder(self):
    import grain  # noqa: PLC0415

    folder = self._args["path"]
    if not folder or not os.path.isdir(folder):
      raise ValueError(
        f'name="records" needs path=<folder of ArrayRecord files>; got '
        f"{folder!r}, which is not a folder"
      )
    files = record_files(folder, self.split)
    if not files:
      raise ValueError(
        f"{folder} has no {self.split}-*{_SUFFIX} files (write them with "
        "flowjax_gen.data.write_records or experiments/prepare_records.py)"
      )
    return grain.sources.ArrayRecordDataSource(files)

  def _open_tfds(self):
    return tfds_records(
      self.name,
      self.split,
      self._args["data_dir"],
      alternative="or write the data as records "
      "(experiments/prepare_records.py) and pass --config.dataset=records",
    )

  def __len__(self) -> int:
    return self._length

  def __getitem__(self, index):  # type: ignore[override]
    if not isinstance(index, (int, np.integer)):
      raise TypeError(f"a record index must be an int, got {index!r}")
    return {k: v[0] for k, v in self.take([int(index)]).items()}

  def read(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
    """The records at ``indices``, read and stacked into one batch as they
    are stored, unchecked (``data.load`` checks a whole split at once).

    Raises:
      IndexError: For an index outside ``[0, len(self))``.
    """
    indices = [int(i) for i in indices]
    for index in indices:
      if not 0 <= index < self._length:
        raise IndexError(f"record {index} of {self._length}")
    if self.name == RECORDS:
      # One call reads them all, in parallel (ArrayRecord's own threads).
      raw = self._reader.__getitems__(indices)
    else:
      # One at a time: ``__getitems__`` is broken under
      # ``tfds.testing.mock_data`` in TFDS 4.9.10.
      raw = [self._reader[i] for i in indices]
    examples = [self._decode(record) for record in raw]
    if "image" not in examples[0]:
      raise ValueError(
        f"{self.describe()}: expected an 'image' feature, got "
        f"{sorted(examples[0])}"
      )
    return {k: np.stack([ex[k] for ex in examples]) for k in examples[0]}

  def take(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
    """The records at ``indices``, read, checked and stacked into one
    batch.

    Raises:
      IndexError: For an index outside ``[0, len(self))``.
      BadDataError: For a record with NaN/inf values, image values outside
        ``value_range``, or (with ``pixel_levels``) non-integer levels;
        the message names the first such record.
    """
    indices = [int(i) for i in indices]
    batch = self.read(indices)
    self._check(batch, indices)
    return batch

  def _check(self, batch: dict[str, np.ndarray], indices: list[int]) -> None:
    """Refuses a batch holding a bad record (named); with
    ``pixel_levels``, makes float images uint8."""
    non_finite, outside = bad_examples(batch, self.value_range)
    image = batch["image"]
    levels = self.pixel_levels and not np.issubdtype(image.dtype, np.integer)
    off_grid = np.zeros(len(indices), bool)
    if levels:
      flat = image.reshape(len(indices), -1)
      off_grid = (flat != np.floor(flat)).any(axis=1) & ~non_finite
    for mask, what in (
      (non_finite, "NaN/inf values"),
      (
        outside,
        "image values outside [{}, {}]".format(
          *(self.value_range or PIXEL_RANGE)
        ),
      ),
      (
        off_grid,
        "image values that are not pixel levels (integers "
        "0..255; n_bits = 0 models continuous values)",
      ),
    ):
      if mask.any():
        raise BadDataError(
          f"{self.describe()}: record {indices[int(np.argmax(mask))]} holds "
          f"{what}. Fix the data; streamed input cannot drop examples, "
          "since every process must agree on each global batch."
        )
    if levels:
      batch["image"] = image.astype(np.uint8)

  def __getstate__(self) -> dict:
    return self._args | {"length": self._length}

  def __setstate__(self, state: dict) -> None:
    state = dict(state)
    length = state.pop("length")
    self.__init__(**state)
    self._length = length


def _from_tfds(example: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """A TFDS example's features as ``sources.load`` converts them."""
  out = {"image": np.asarray(example["image"])}
  if "label" in example:
    out["label"] = np.asarray(example["label"], np.int32)
  if "attributes" in example:
    names = sorted(example["attributes"])
    out["attributes"] = np.asarray(
      [example["attributes"][a] for a in names], np.int32
    )
  return out
