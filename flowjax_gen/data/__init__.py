"""Data: in-memory array sources, records on disk, and checkpointable
batch iterators over either.

``load`` returns one split as a dict of numpy arrays (``"image"`` plus
``"label"`` or ``"attributes"``); ``BatchIterator`` turns it into an infinite,
deterministic, per-process stream of batches whose position is saved with
the model. ``RecordSource`` reads a split stored as ArrayRecord (a TFDS
dataset, or a folder ``write_records`` wrote) one example at a time, and
``StreamIterator`` streams it through grain, each process reading only its
part of each batch.
"""

from flowjax_gen.data.pipeline import BatchIterator
from flowjax_gen.data.records import RECORDS, RecordSource, write_records
from flowjax_gen.data.sources import (
  PIXEL_RANGE,
  TOY_DENSITIES,
  BadDataError,
  attribute_names,
  event_shape,
  is_discrete,
  load,
)
from flowjax_gen.data.splits import Split, num_examples, take
from flowjax_gen.data.stream import StreamIterator

__all__ = [
  "PIXEL_RANGE",
  "RECORDS",
  "TOY_DENSITIES",
  "BadDataError",
  "BatchIterator",
  "RecordSource",
  "Split",
  "StreamIterator",
  "attribute_names",
  "event_shape",
  "is_discrete",
  "load",
  "num_examples",
  "take",
  "write_records",
]
