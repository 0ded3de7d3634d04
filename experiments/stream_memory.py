"""A training process's peak resident memory and time to step 1, against
the size of its dataset, for streamed and in-memory input.

  python experiments/stream_memory.py --folder=/tmp/stream_memory \
      --sizes=20000,200000 --output=docs/results/stream_memory.json

Writes synthetic 32x32x3 uint8 sets of each size (random pixels, so they
neither compress nor repeat) once, as a records folder and as an ``.npz``,
then trains a small Glow on each for ``--steps`` steps, one fresh process
per (input, size), and reports each process's peak resident set size
(``getrusage`` ``ru_maxrss``) and the seconds from its start to the end of
step 1. With streamed input a process holds the batches in flight, not the
set, so both figures should stay flat as the set grows; in memory they grow
with it.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time

# Time to step 1 counts from here: the interpreter has started, nothing of
# JAX or the data is loaded yet.
_START = time.time()

from absl import app, flags  # noqa: E402

_FOLDER = flags.DEFINE_string(
  "folder", "/tmp/stream_memory", "where the synthetic sets are written."
)
_SIZES = flags.DEFINE_list(
  "sizes", ["20000", "200000"], "train-split sizes (records)."
)
_INPUTS = flags.DEFINE_list("inputs", ["stream", "memory"], "inputs to run.")
_STEPS = flags.DEFINE_integer("steps", 20, "training steps per run.")
_OUTPUT = flags.DEFINE_string("output", None, "JSON report path.")
_CHILD = flags.DEFINE_string(
  "child", None, "internal: run one measurement, INPUT:SIZE."
)

_SHAPE = (32, 32, 3)
_TEST_SIZE = 1000


def _write_sets(folder: str, size: int) -> None:
  """The records folder and the ``.npz`` of one size, unless present."""
  import numpy as np  # noqa: PLC0415

  from flowjax_gen import data  # noqa: PLC0415

  records, npz = _paths(folder, size)
  if os.path.isdir(records) and os.path.isfile(npz):
    return
  rng = np.random.default_rng(size)
  splits = {}
  for split, n in (("train", size), ("test", _TEST_SIZE)):
    splits[split] = {
      "image": rng.integers(0, 256, (n, *_SHAPE), dtype=np.uint8),
      "label": rng.integers(0, 10, n).astype(np.int32),
    }
    data.write_records(splits[split], records, split, num_shards=4)
  np.savez(
    npz,
    x_train=splits["train"]["image"],
    y_train=splits["train"]["label"],
    x_test=splits["test"]["image"],
    y_test=splits["test"]["label"],
  )


def _paths(folder: str, size: int) -> tuple[str, str]:
  return (
    os.path.join(folder, f"records_{size}"),
    os.path.join(folder, f"set_{size}.npz"),
  )


def _measure(kind: str, size: int) -> dict:
  """Trains in this process and returns its figures."""
  import tempfile  # noqa: PLC0415

  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  from configs import glow_digits  # noqa: PLC0415

  from flowjax_gen.training import loop, reporting  # noqa: PLC0415

  records, npz = _paths(_FOLDER.value, size)
  config = glow_digits.get_config("").to_dict()
  config["model_kwargs"].update(levels=2, steps_per_level=2, hidden_channels=16)
  config.update(
    input=kind,
    dataset="records" if kind == "stream" else "npz",
    data_path=records if kind == "stream" else npz,
    num_steps=_STEPS.value,
    batch_size=64,
    init_batch_size=256,
    eval_batch_size=500,
    log_every=1,
    eval_every=10**6,
    checkpoint_every=10**6,
    num_samples=4,
  )
  with tempfile.TemporaryDirectory() as workdir:
    loop.train_and_evaluate(config, workdir)
    first = reporting.read_metrics(workdir)[0]
  return {
    "input": kind,
    "train_records": size,
    "train_mib": size * math.prod(_SHAPE) / 2**20,
    "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "seconds_to_step_1": first["time"] - _START,
  }


def main(argv):
  del argv
  if _CHILD.value:
    kind, size = _CHILD.value.split(":")
    print("RESULT " + json.dumps(_measure(kind, int(size))))
    return 0
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  sizes = [int(s) for s in _SIZES.value]
  os.makedirs(_FOLDER.value, exist_ok=True)
  for size in sizes:
    _write_sets(_FOLDER.value, size)
  rows = []
  for kind in _INPUTS.value:
    for size in sizes:
      child = subprocess.run(
        [
          sys.executable,
          os.path.abspath(__file__),
          f"--folder={_FOLDER.value}",
          f"--steps={_STEPS.value}",
          f"--child={kind}:{size}",
        ],
        capture_output=True,
        text=True,
        check=False,
      )
      lines = [
        line for line in child.stdout.splitlines() if line.startswith("RESULT ")
      ]
      if child.returncode or not lines:
        print(child.stderr[-3000:], file=sys.stderr)
        return 1
      row = json.loads(lines[-1][len("RESULT ") :])
      rows.append(row)
      print(
        f"{kind:>6} {size:>7} records ({row['train_mib']:6.0f} MiB of "
        f"pixels): peak RSS {row['max_rss_mib']:6.0f} MiB, step 1 after "
        f"{row['seconds_to_step_1']:5.1f} s"
      )
  for kind in _INPUTS.value:
    mine = [r for r in rows if r["input"] == kind]
    small, large = mine[0], mine[-1]
    print(
      f"{kind}: {large['train_records'] / small['train_records']:.0f}x the "
      f"records, {large['max_rss_mib'] / small['max_rss_mib']:.3f}x the peak "
      f"RSS, {large['seconds_to_step_1'] / small['seconds_to_step_1']:.2f}x "
      "the time to step 1"
    )
  if _OUTPUT.value:
    from long_run_report import cpu_model_name  # noqa: PLC0415

    report = {
      "command": " ".join(
        ["python", "experiments/stream_memory.py", *sys.argv[1:]]
      ),
      "cpu": cpu_model_name(),
      "rows": rows,
    }
    with open(_OUTPUT.value, "w") as f:
      json.dump(report, f, indent=2)
  return 0


if __name__ == "__main__":
  app.run(main)
