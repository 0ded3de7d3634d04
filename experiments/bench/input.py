"""Input throughput: examples per second one process reads from records on
disk through ``flowjax_gen.data.StreamIterator``, the streamed input of
training (``--config.input=stream``).

For each image shape and worker count: a synthetic records folder of
``RECORDS`` random uint8 images (written once per shape, in a temporary
folder), batches of ``BATCH`` with random flips, as one process of one
reads them. The first batch (worker start-up, file opening) is timed
apart; the rate is over the next ``batches`` batches, which cross epoch
boundaries so the reshuffles are included: the median of ``REPEATS`` such
passes, each in a fresh iterator (the machine's noise moves one pass by
up to a factor of two).
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time

import numpy as np

from flowjax_gen import data

SHAPES = ((28, 28, 1), (32, 32, 3), (64, 64, 3))
WORKERS = (0, 2)
RECORDS = 4096
BATCH = 64
REPEATS = 3


def _write(folder: str, shape: tuple[int, ...]) -> None:
  rng = np.random.default_rng(0)
  source = {
    "image": rng.integers(0, 256, (RECORDS, *shape), dtype=np.uint8),
    "label": rng.integers(0, 10, RECORDS).astype(np.int32),
  }
  data.write_records(source, folder, "train", num_shards=4)


def throughput(
  folder: str, workers: int, batches: int, threads: int = 2
) -> dict[str, float]:
  """Start-up seconds and examples/s of one process reading ``folder``."""
  records = data.RecordSource("records", "train", path=folder)
  stream = data.StreamIterator(
    records,
    batch_size=BATCH,
    seed=0,
    random_flip=True,
    threads=threads,
    workers=workers,
  )
  start = time.perf_counter()
  next(stream)
  first = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(batches):
    next(stream)
  elapsed = time.perf_counter() - start
  stream.close()
  return {"first_batch_s": first, "examples_per_s": batches * BATCH / elapsed}


def run(batches: int = 300) -> list[dict]:
  """Every shape with every worker count; rows for the report."""
  rows = []
  with tempfile.TemporaryDirectory() as root:
    for shape in SHAPES:
      folder = os.path.join(root, "x".join(map(str, shape)))
      _write(folder, shape)
      for workers in WORKERS:
        passes = [throughput(folder, workers, batches) for _ in range(REPEATS)]
        rows.append(
          {
            "shape": list(shape),
            "workers": workers,
            "megabytes_per_example": math.prod(shape) / 1e6,
            "first_batch_s": statistics.median(
              p["first_batch_s"] for p in passes
            ),
            "examples_per_s": statistics.median(
              p["examples_per_s"] for p in passes
            ),
            "passes": passes,
          }
        )
  return rows


def table(rows: list[dict], feeds: dict[str, float]) -> str:
  """The rows as text, with the rates the training steps need
  (``feeds``: a label to examples/s)."""
  lines = [
    f"== input: examples/s of one process reading records (batch {BATCH}, "
    f"random flips, 2 reader threads; median of {REPEATS} passes)",
    "shape        workers  first batch s   examples/s      MB/s",
  ]
  for row in rows:
    shape = "x".join(map(str, row["shape"]))
    rate = row["examples_per_s"]
    lines.append(
      f"{shape:<12} {row['workers']:>7} {row['first_batch_s']:>14.2f} "
      f"{rate:>12.0f} {rate * row['megabytes_per_example']:>9.1f}"
    )
  for label, need in feeds.items():
    lines.append(f"  needed by {label}: {need:.0f} examples/s")
  return "\n".join(lines)
