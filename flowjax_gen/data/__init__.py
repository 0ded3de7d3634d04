"""Data: in-memory array sources and a checkpointable batch iterator.

``load`` returns one split as a dict of numpy arrays (``"image"`` plus
``"label"`` or ``"attributes"``); ``BatchIterator`` turns it into an infinite,
deterministic, per-process stream of batches whose position is saved with
the model.
"""

from flowjax_gen.data.pipeline import BatchIterator
from flowjax_gen.data.sources import (
  PIXEL_RANGE,
  BadDataError,
  attribute_names,
  event_shape,
  is_discrete,
  load,
)

__all__ = [
  "PIXEL_RANGE",
  "BadDataError",
  "BatchIterator",
  "attribute_names",
  "event_shape",
  "is_discrete",
  "load",
]
