"""Data parallelism: one ``jit``-ed step on a 1-D device mesh named ``data``.

The batch is sharded along its first axis over every device (of every
process), params are replicated, and the compiler inserts the all-reduce of
gradients: what ``pmap`` gave, done as current JAX recommends (``pmap`` has
been built on ``jit`` + ``shard_map`` and in maintenance mode since JAX 0.8).

Mesh axis type. ``jax.make_mesh`` in JAX 0.10 makes *Explicit* axes by
default, where shardings are part of array types and some contractions over a
sharded axis need an explicit ``out_sharding``. We build our meshes with
``AxisType.Auto`` on purpose: the models here are written without sharding
annotations, and with Auto axes the GSPMD partitioner propagates the batch
sharding through every op and chooses collectives itself, which is what pure
data parallelism wants. Users who bring an Explicit mesh get the same step:
every sharding here is built on ``as_auto(mesh)`` (same devices, Auto axes),
so arrays are placed and steps compiled the same way whichever kind of mesh
was passed in, and the tests run the steps under both.

Multi-host: after ``jax.distributed.initialize`` every process calls the same
functions; ``shard_batch`` assembles the global batch from each process's
slice with ``jax.make_array_from_process_local_data``. Random numbers use
JAX's partitionable threefry, so they do not depend on the device count, and
data-dependent initialisation (actnorm) runs under ``jit`` on the one global
batch, so params do not either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

__all__ = [
  "DATA_AXIS",
  "as_auto",
  "batch_sharded",
  "check_batch_size",
  "data_mesh",
  "data_parallel_init",
  "loss_and_grad_step",
  "process_slice",
  "replicate",
  "replicated",
  "shard_batch",
]

DATA_AXIS = "data"


def data_mesh(
  # ``jax.Device`` is an alias of a jaxlib extension class without type
  # stubs, so pyright does not accept it as a type expression.
  devices: Optional[Sequence[jax.Device]] = None,  # pyright: ignore[reportInvalidTypeForm]
  *,
  axis_type: AxisType = AxisType.Auto,
) -> Mesh:
  """A 1-D mesh named ``data`` over ``devices`` (default: all devices)."""
  devices = list(jax.devices() if devices is None else devices)
  if not devices:
    raise ValueError("devices must hold at least one device.")
  return jax.make_mesh(
    (len(devices),), (DATA_AXIS,), axis_types=(axis_type,), devices=devices
  )


def as_auto(mesh: Mesh) -> Mesh:
  """The same devices and axis names with every axis of type ``Auto``."""
  if all(t == AxisType.Auto for t in mesh.axis_types):
    return mesh
  return Mesh(
    mesh.devices,
    mesh.axis_names,
    axis_types=(AxisType.Auto,) * len(mesh.axis_names),
  )


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding that places a full copy on every device (params, metrics)."""
  return NamedSharding(as_auto(mesh), PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Sharding that splits the leading (batch) axis over the ``data`` axis."""
  return NamedSharding(as_auto(mesh), PartitionSpec(DATA_AXIS))


def check_batch_size(global_batch_size: int, mesh: Mesh) -> None:
  """Raises ``ValueError`` unless the global batch divides over the mesh."""
  devices = mesh.devices.size
  if global_batch_size % devices:
    raise ValueError(
      f"global batch size {global_batch_size} must be divisible "
      f"by the number of devices ({devices})."
    )


def process_slice(batch: dict) -> dict:
  """This process's part of a global host batch: the contiguous slice
  ``[i * B / P, (i + 1) * B / P)`` for process ``i`` of ``P``, the layout
  ``shard_batch`` assembles back into the global batch."""
  count, index = jax.process_count(), jax.process_index()
  if count == 1:
    return batch
  size = len(next(iter(batch.values()))) // count
  return {k: v[index * size : (index + 1) * size] for k, v in batch.items()}


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """Places a host batch on the mesh, split along the batch axis.

  With one process, ``batch`` is the global batch. With several, it is this
  process's slice (``global / process_count`` examples, in process order) and
  the global array is assembled from every process's slice.
  """
  sharding = batch_sharded(mesh)
  if jax.process_count() == 1:
    leaves = jax.tree.leaves(batch)
    if leaves:
      check_batch_size(np.shape(leaves[0])[0], mesh)
    return jax.device_put(batch, sharding)
  return jax.tree.map(
    lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
    batch,
  )


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places a pytree (params, optimiser state) fully on every device."""
  return jax.device_put(tree, replicated(mesh))


def data_parallel_init(init_fn: Callable[..., Any], mesh: Mesh) -> Callable:
  """``init_fn(key, batch, ...)`` jitted with replicated outputs.

  Data-dependent initialisation sees the global batch, so the params are the
  same whatever the number of devices or processes.
  """
  return jax.jit(init_fn, out_shardings=replicated(mesh))


def loss_and_grad_step(
  objective: Callable[..., tuple[jax.Array, dict]], mesh: Mesh
) -> Callable:
  """``(params, batch, key) -> ((loss, metrics), grads)``, one jitted step.

  ``objective(params, batch, key) -> (loss, metrics)`` is differentiated
  with respect to ``params``; the batch arrives sharded over ``data``,
  params, loss, metrics and gradients leave replicated.
  """
  value_and_grad = jax.value_and_grad(objective, has_aux=True)
  return jax.jit(
    value_and_grad,
    in_shardings=(replicated(mesh), batch_sharded(mesh), replicated(mesh)),
    out_shardings=replicated(mesh),
  )
