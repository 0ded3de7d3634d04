"""Multi-process start-up shared by the experiment scripts.

Flags (or the environment variables ``FLOWJAX_COORDINATOR``,
``FLOWJAX_NUM_PROCESSES``, ``FLOWJAX_PROCESS_ID``) give the coordinator
address, the process count and this process's id; with them set,
``jax.distributed.initialize`` joins the processes into one runtime (on TPU
pods and most GPU clusters JAX can also discover them itself:
``--distributed=auto``). On CPU the processes talk through gloo collectives.
"""

from __future__ import annotations

import os

import jax
from absl import flags

COORDINATOR = flags.DEFINE_string(
  "coordinator_address",
  os.environ.get("FLOWJAX_COORDINATOR", ""),
  "host:port of process 0 for multi-process runs.",
)
NUM_PROCESSES = flags.DEFINE_integer(
  "num_processes",
  int(os.environ.get("FLOWJAX_NUM_PROCESSES", "1")),
  "number of processes in a multi-process run.",
)
PROCESS_ID = flags.DEFINE_integer(
  "process_id",
  int(os.environ.get("FLOWJAX_PROCESS_ID", "0")),
  "this process's id in 0..num_processes-1.",
)
DISTRIBUTED = flags.DEFINE_enum(
  "distributed",
  "flags",
  ["flags", "auto"],
  "'flags': use the three flags above (single process when no coordinator "
  "is given); 'auto': let jax.distributed discover the cluster.",
)
NUM_CPU_DEVICES = flags.DEFINE_integer(
  "num_cpu_devices",
  0,
  "simulate this many CPU devices per process (testing data parallelism "
  "without accelerators); 0 leaves the platform's devices alone.",
)


def initialize() -> None:
  """Starts the multi-process runtime if the flags ask for one."""
  if NUM_CPU_DEVICES.value:
    jax.config.update("jax_num_cpu_devices", NUM_CPU_DEVICES.value)
  if DISTRIBUTED.value == "auto":
    jax.distributed.initialize()
    return
  if NUM_PROCESSES.value < 1:
    raise ValueError(
      f"--num_processes must be >= 1; got {NUM_PROCESSES.value}."
    )
  if NUM_PROCESSES.value == 1:
    return
  if not COORDINATOR.value:
    raise ValueError(
      "--coordinator_address is required when --num_processes > 1."
    )
  if not 0 <= PROCESS_ID.value < NUM_PROCESSES.value:
    raise ValueError(
      f"--process_id must be in 0..{NUM_PROCESSES.value - 1}; "
      f"got {PROCESS_ID.value}."
    )
  if jax.config.jax_platforms in (None, "", "cpu"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(
    coordinator_address=COORDINATOR.value,
    num_processes=NUM_PROCESSES.value,
    process_id=PROCESS_ID.value,
  )
