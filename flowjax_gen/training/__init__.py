"""Training utilities: meshes, shardings and data-parallel steps."""

from flowjax_gen.parallel import (
  DATA_AXIS,
  batch_sharded,
  check_batch_size,
  data_mesh,
  data_parallel_init,
  loss_and_grad_step,
  replicate,
  replicated,
  shard_batch,
)

__all__ = [
  "DATA_AXIS",
  "batch_sharded",
  "check_batch_size",
  "data_mesh",
  "data_parallel_init",
  "loss_and_grad_step",
  "replicate",
  "replicated",
  "shard_batch",
]
