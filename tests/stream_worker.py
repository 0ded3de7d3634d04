"""One process of a ``jax.distributed`` run (``scripts.run_processes``)
that builds a streamed run's ``Experiment`` and writes which records its
iterator handed out, step by step, and the global batches that
``shard_batch`` assembled from every process's part.

  python tests/stream_worker.py --records=FOLDER --steps=S --output=PREFIX \
      --coordinator_address=... --num_processes=2 --process_id=i
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "experiments"))

import distributed  # noqa: E402
from absl import app, flags  # noqa: E402

_RECORDS = flags.DEFINE_string("records", None, "records folder", required=True)
_STEPS = flags.DEFINE_integer("steps", 4, "batches to read")
_OUTPUT = flags.DEFINE_string("output", None, "output prefix", required=True)


def main(argv):
  del argv
  distributed.initialize()
  import jax  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415
  from configs import glow_digits  # noqa: PLC0415
  from jax.experimental import multihost_utils  # noqa: PLC0415

  from flowjax_gen.parallel import shard_batch  # noqa: PLC0415
  from flowjax_gen.training.experiment import Experiment  # noqa: PLC0415

  config = glow_digits.get_config("smoke").to_dict()
  config.update(
    input="stream",
    dataset="records",
    data_path=_RECORDS.value,
    batch_size=8,
    num_train_examples=0,
  )
  run = Experiment(config, workdir=_OUTPUT.value)
  local, assembled = [], []
  for _ in range(_STEPS.value):
    batch = next(run.iterator)
    local.append(batch["label"].tolist())
    placed = shard_batch(batch, run.mesh)
    assembled.append(
      np.asarray(multihost_utils.process_allgather(placed["label"], tiled=True))
      .ravel()
      .tolist()
    )
  path = f"{_OUTPUT.value}.{jax.process_index()}.json"
  with open(path, "w") as f:
    json.dump({"local": local, "global": assembled}, f)


if __name__ == "__main__":
  app.run(main)
