"""Writes a dataset's train and test splits as a folder of ArrayRecord
files, for streamed training (``--config.input=stream``).

  python experiments/prepare_records.py --dataset=npz \
      --data_path=mnist.npz --output=records/mnist --num_shards=4
  python experiments/train.py --config=experiments/configs/glow_mnist.py \
      --config.input=stream --config.dataset=records \
      --config.data_path=records/mnist --workdir=workdirs/glow_mnist_stream

It reads each split whole, once, on one machine (``flowjax_gen.data.load``,
with its checks); the training processes then read only their records. A
TFDS dataset needs no conversion: ``tfds build NAME
--file_format=array_record`` prepares it, and ``--config.dataset=NAME``
streams it. Each record holds one example's arrays
(``flowjax_gen.data.records``).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

_DATASET = flags.DEFINE_string(
  "dataset", None, "digits, npz or a TFDS name (data.load).", required=True
)
_DATA_PATH = flags.DEFINE_string("data_path", None, "the .npz file.")
_OUTPUT = flags.DEFINE_string(
  "output", None, "folder to write the records to.", required=True
)
_NUM_SHARDS = flags.DEFINE_integer(
  "num_shards",
  1,
  "files per split (a split smaller than this gets one).",
  lower_bound=1,
)


def main(argv):
  del argv
  from flowjax_gen import data  # noqa: PLC0415

  try:
    for split in ("train", "test"):
      source = data.load(_DATASET.value, split, path=_DATA_PATH.value)
      shards = min(_NUM_SHARDS.value, len(source["image"]))
      paths = data.write_records(
        source, _OUTPUT.value, split, num_shards=shards
      )
      size = sum(os.path.getsize(p) for p in paths) / 2**20
      print(
        f"{split}: {len(source['image'])} examples in {len(paths)} files "
        f"({size:.1f} MiB) under {_OUTPUT.value}"
      )
  except (ValueError, OSError) as error:
    print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  app.run(main)
