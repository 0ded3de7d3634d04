"""The report of a run trained over several processes (killed, restarted,
rolled back): its curve as JSON and two PNGs with the restarts marked.

    python experiments/long_run_report.py --workdir=workdirs/RUN \\
        --output_prefix=docs/results/RUN \\
        [--legs=legs.json] [--command="python experiments/train.py ..."]

Everything comes from the workdir: ``metrics.jsonl`` (one record per logged
step; a resumed run rewinds it to its checkpoint, so no step appears twice)
and ``rollbacks.jsonl`` (the records a roll-back took out of the log). A
restart is where ``elapsed_s`` falls (``reporting.restarts``); training
minutes are summed over the runs (``reporting.training_minutes``), without
the downtime between runs and without the steps a killed run made after
its last kept record. ``--legs`` adds what only the person who ran the
legs knows (a JSON list of objects such as ``{"leg": "leg1", "start":
"2026-12-03T22:29:07Z", "end": "...", "exit_status": 137, "ended_by":
"kill -9 by hand"}``), copied as given.

Writes ``<prefix>_curve.json``, ``<prefix>_step.png`` and
``<prefix>_wall_time.png``.
"""

from __future__ import annotations

import json
import os
import subprocess

from absl import app, flags

from flowjax_gen.training import reporting
from flowjax_gen.training.loop import ROLLBACKS_FILE

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "The run's workdir.", required=True)
flags.DEFINE_string(
  "output_prefix", None, "Path prefix of the three outputs.", required=True
)
flags.DEFINE_string("legs", None, "JSON list describing each leg (optional).")
flags.DEFINE_string("command", None, "The command every leg ran (optional).")
flags.DEFINE_string(
  "metric",
  None,
  "Metric to plot; default: bits_per_dim_variational where the records "
  "have it, else bits_per_dim.",
)

MINUTES_DEFINITION = (
  "training wall time summed over the runs (reporting.training_minutes): "
  "each resumed run's elapsed_s restarts at 0; downtime and the steps a "
  "killed run did after its last kept record are not counted"
)
TRAIN_FIELDS = ("loss", "grad_norm", "steps_per_s", "skipped")
TEST_PREFIXES = ("bits_per_dim", "nll_nats")


def cpu_model_name() -> str:
  """``lscpu``'s model name (``/proc/cpuinfo``'s where lscpu is missing)."""
  try:
    text = subprocess.run(
      ["lscpu"], capture_output=True, text=True, check=True
    ).stdout
    key = "Model name:"
  except (OSError, subprocess.CalledProcessError):
    with open("/proc/cpuinfo") as f:
      text = f.read()
    key = "model name"
  for line in text.splitlines():
    if line.startswith(key):
      return line.split(":", 1)[1].strip()
  return "unknown"


def read_rollbacks(workdir: str) -> list[dict]:
  """Each roll-back with the training minutes its dropped records had
  taken (the discarded branch's own runs, summed the same way)."""
  path = os.path.join(workdir, ROLLBACKS_FILE)
  if not os.path.exists(path):
    return []
  entries = []
  with open(path) as f:
    for line in f:
      if not line.strip():
        continue
      entry = json.loads(line)
      dropped = sorted(
        entry.pop("dropped_records"), key=lambda r: r.get("time", 0.0)
      )
      minutes = [
        m for m in reporting.training_minutes(dropped) if m is not None
      ]
      entry["dropped_steps"] = [r["step"] for r in dropped]
      entry["discarded_training_minutes"] = (
        round(minutes[-1], 2) if minutes else 0.0
      )
      entries.append(entry)
  return entries


def curve(workdir: str) -> dict:
  """The run's records, restarts and roll-backs, with training minutes."""
  records = reporting.read_metrics(workdir)
  if not records:
    raise ValueError(f"{workdir} has no metrics log to report.")
  minutes = reporting.training_minutes(records)
  train, test = [], []
  for record, minute in zip(records, minutes, strict=True):
    at = {"step": record["step"], "training_minutes": _round(minute)}
    if record.get("split") == "train":
      train.append(at | {k: record[k] for k in TRAIN_FIELDS if k in record})
    elif record.get("split") == "test":
      test.append(
        at | {k: v for k, v in record.items() if k.startswith(TEST_PREFIXES)}
      )
  restarts = [
    r | {"training_minutes": _round(r["training_minutes"])}
    for r in reporting.restarts(records)
  ]
  return {
    "minutes_definition": MINUTES_DEFINITION,
    "restarts": restarts,
    "rollbacks": read_rollbacks(workdir),
    "test": test,
    "train": train,
    "lscpu_model_name": cpu_model_name(),
  }


def _round(minute):
  return None if minute is None else round(minute, 2)


def write_report(
  workdir: str,
  prefix: str,
  *,
  legs: list | None = None,
  command: str | None = None,
  metric: str | None = None,
) -> dict:
  """Writes ``<prefix>_curve.json`` and the step and wall-time PNGs;
  returns the curve."""
  report = curve(workdir)
  if command is not None:
    report = {"command": command} | report
  if legs is not None:
    report = {"legs": legs} | report
  directory = os.path.dirname(prefix)
  if directory:
    os.makedirs(directory, exist_ok=True)
  with open(prefix + "_curve.json", "w") as f:
    json.dump(report, f, indent=1)
  records = reporting.read_metrics(workdir)
  if metric is None:
    metric = (
      "bits_per_dim_variational"
      if any("bits_per_dim_variational" in r for r in records)
      else "bits_per_dim"
    )
  restarts = report["restarts"]
  reporting.save_learning_curves(
    records,
    prefix + "_step.png",
    metric,
    marks=[r["after_step"] for r in restarts],
  )
  reporting.save_learning_curves(
    records,
    prefix + "_wall_time.png",
    metric,
    against="minutes",
    marks=[r["training_minutes"] for r in restarts],
  )
  return report


def main(argv):
  del argv
  legs = None
  if FLAGS.legs is not None:
    with open(FLAGS.legs) as f:
      legs = json.load(f)
    if not isinstance(legs, list):
      raise app.UsageError(f"--legs must hold a JSON list; got {type(legs)}.")
  report = write_report(
    FLAGS.workdir,
    FLAGS.output_prefix,
    legs=legs,
    command=FLAGS.command,
    metric=FLAGS.metric,
  )
  last = report["test"][-1] if report["test"] else None
  print(
    f"{len(report['train'])} train and {len(report['test'])} test records, "
    f"{len(report['restarts'])} restarts, "
    f"{len(report['rollbacks'])} roll-backs"
    + (f"; last test record: step {last['step']}" if last else "")
  )
  print(f"wrote {FLAGS.output_prefix}_{{curve.json,step.png,wall_time.png}}")


if __name__ == "__main__":
  app.run(main)
