"""Metrics and pictures: JSONL log, TensorBoard event files, PNG grids and
learning curves. Only process 0 writes; the others get no-op writers."""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Sequence
from typing import Optional

import numpy as np

METRICS_FILE = "metrics.jsonl"


class MetricWriter:
  """Appends ``{"step", "split", "time", "elapsed_s", **metrics}`` lines to
  ``metrics.jsonl`` and writes the metrics as TensorBoard events under
  ``workdir/tb``. ``time`` is the wall clock (Unix seconds) when the record
  was written and ``elapsed_s`` the seconds since this writer was made (the
  start of this process's training, compilation included), from which
  ``training_minutes`` builds learning curves against wall time.

  Each record is one whole line, written in one call and flushed, so a
  crash leaves at most a torn last line. ``resume_step``: the run resumes
  after that step, so the log is first rewritten without the records of
  later steps (which it repeats) and without a torn last line, and
  TensorBoard hides its events after that step: each step is logged once.
  """

  def __init__(
    self,
    workdir: str,
    *,
    enabled: bool = True,
    resume_step: Optional[int] = None,
  ):
    self._enabled = enabled
    self._start = time.perf_counter()
    self._path = os.path.join(workdir, METRICS_FILE)
    self._tb = None
    if enabled:
      from tensorboardX import SummaryWriter  # noqa: PLC0415 -- process 0 only

      purge_step = None
      if resume_step is not None:
        _rewind(self._path, resume_step)
        purge_step = resume_step + 1
      self._tb = SummaryWriter(
        os.path.join(workdir, "tb"), purge_step=purge_step
      )

  def write(self, step: int, split: str, metrics: dict) -> None:
    if not self._enabled or self._tb is None:  # None unless enabled
      return
    values = {k: float(v) for k, v in metrics.items()}
    record = {
      "step": int(step),
      "split": split,
      "time": round(time.time(), 3),
      "elapsed_s": round(time.perf_counter() - self._start, 3),
    }
    line = json.dumps({**record, **values}) + "\n"
    with open(self._path, "a") as f:  # flushed on close
      f.write(line)
    for name, value in values.items():
      self._tb.add_scalar(f"{split}/{name}", value, int(step))
    self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def _read_log(path: str) -> tuple[str, list[tuple[str, dict]]]:
  """A metrics log's text and ``(line, record)`` for each of its whole
  records; a line that is not one (a torn last line, left by a crash
  mid-write) is dropped with a warning."""
  with open(path) as f:
    text = f.read()
  lines = text.splitlines()
  parsed, bad = [], []
  for number, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
      if not isinstance(record, dict) or not isinstance(
        record.get("step"), int
      ):
        raise ValueError("not a record")
    except ValueError:
      bad.append(number)
      continue
    parsed.append((line, record))
  if bad:
    torn = bad == [len(lines)]
    warnings.warn(
      f"{path}: dropped "
      + (
        f"a torn last line (line {bad[0]}, a crash mid-write)"
        if torn
        else f"{len(bad)} unreadable lines (lines {bad[:5]})"
      ),
      stacklevel=3,
    )
  return text, parsed


def _rewind(path: str, step: int) -> None:
  """Rewrites the log with only its whole records of steps <= ``step``."""
  if not os.path.exists(path):
    return
  before, records = _read_log(path)
  kept = [line for line, record in records if record["step"] <= step]
  after = "".join(line + "\n" for line in kept)
  if after != before:
    with open(path + ".tmp", "w") as f:
      f.write(after)
    os.replace(path + ".tmp", path)


def read_metrics(workdir: str) -> list[dict]:
  """Every record of ``metrics.jsonl`` (empty if there is none); a torn
  line is dropped with a warning."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  return [record for _, record in _read_log(path)[1]]


def result_line(result: dict, *, dequantization_draws: int = 1) -> str:
  """Evaluation figures in one line: bits/dim and nats for likelihood
  models (``6.0069 +/- 0.0477 bits/dim, 266.47 nats/example, 297
  examples``), else every metric that has a standard error.

  ``dequantization_draws``: the ``k`` of an importance-weighted bound in
  ``result`` (``eval_kwargs.num_dequantization_samples``), named in the
  line because the figure depends on it.
  """
  count = f"{result['num_examples']} examples"
  if "bits_per_dim" in result:
    variational = ""
    if "bits_per_dim_variational" in result:
      variational = (
        " (uniform dequantisation); "
        f"{result['bits_per_dim_variational']:.4f} +/- "
        f"{result['bits_per_dim_variational_stderr']:.4f} bits/dim "
        "(variational dequantisation)"
      )
    if "bits_per_dim_variational_iw" in result:
      variational += (
        f"; {result['bits_per_dim_variational_iw']:.4f} +/- "
        f"{result['bits_per_dim_variational_iw_stderr']:.4f} bits/dim "
        f"(importance-weighted, {dequantization_draws} draws of q)"
      )
    return (
      f"{result['bits_per_dim']:.4f} +/- {result['bits_per_dim_stderr']:.4f} "
      f"bits/dim{variational}, {result['nll_nats']:.2f} nats/example, "
      f"{count}, {result['examples_per_s']:.1f} examples/s"
    )
  names = sorted(k[: -len("_stderr")] for k in result if k.endswith("_stderr"))
  figures = ", ".join(
    f"{k} {result[k]:.4g} +/- {result[f'{k}_stderr']:.2g}" for k in names
  )
  if "compression_ratio" in result:
    figures += f", compression {result['compression_ratio']:.4g}x"
  return f"{figures} ({count})"


def image_grid(images: np.ndarray, *, columns: Optional[int] = None):
  """Tiles ``(N, H, W, C)`` images in [0, 1] into one uint8 array."""
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  n, h, w, c = images.shape
  columns = columns or math.ceil(math.sqrt(n))
  rows = math.ceil(n / columns)
  grid = np.ones((rows * (h + 1) + 1, columns * (w + 1) + 1, c), np.float32)
  for i, image in enumerate(images):
    r, col = divmod(i, columns)
    grid[
      1 + r * (h + 1) : 1 + r * (h + 1) + h,
      1 + col * (w + 1) : 1 + col * (w + 1) + w,
    ] = image
  return (grid * 255 + 0.5).astype(np.uint8)


def save_image_grid(
  images: np.ndarray,
  path: str,
  *,
  scale: int = 1,
  columns: Optional[int] = None,
) -> None:
  """Writes a PNG grid of images in [0, 1] (nearest-neighbour upscaled)."""
  from PIL import Image  # noqa: PLC0415 -- optional at import time

  grid = image_grid(images, columns=columns)
  picture = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  if scale > 1:
    picture = picture.resize(
      (picture.width * scale, picture.height * scale), Image.Resampling.NEAREST
    )
  picture.save(path)


def save_scatter(points: np.ndarray, path: str) -> None:
  """PNG scatter plot of 2-D samples (toy densities)."""
  import matplotlib  # noqa: PLC0415

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  fig, ax = plt.subplots(figsize=(4, 4))
  ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
  ax.set_aspect("equal")
  fig.savefig(path, dpi=100, bbox_inches="tight")
  plt.close(fig)


def training_minutes(records: list[dict]) -> list[Optional[float]]:
  """Training wall time (minutes) at each record, summed over the runs that
  wrote the log: a resumed run's ``elapsed_s`` restarts from 0, so each
  earlier run adds its last ``elapsed_s``. The downtime between a kill and
  the restart is not counted, nor the work a killed run did after its last
  record (at most ``log_every`` steps). ``None`` for records written before
  records carried ``elapsed_s``.
  """
  minutes, offset, previous = [], 0.0, None
  for record in records:
    elapsed = record.get("elapsed_s")
    if elapsed is None:
      minutes.append(None)
      continue
    if previous is not None and elapsed < previous:
      offset += previous
    previous = elapsed
    minutes.append((offset + elapsed) / 60.0)
  return minutes


def restarts(records: list[dict]) -> list[dict]:
  """Where the runs that wrote a log took over from one another: a record
  whose ``elapsed_s`` is below its predecessor's starts a resumed run.
  Each entry has the step the run resumed after (the last record kept of
  the run before, which is its checkpoint's step when checkpoints fall on
  log steps), the first step the resumed run logged, and the training
  minutes (``training_minutes``) at the restart."""
  minutes = training_minutes(records)
  found, previous = [], None
  for index, record in enumerate(records):
    elapsed = record.get("elapsed_s")
    if elapsed is None:
      continue
    if previous is not None and elapsed < records[previous]["elapsed_s"]:
      found.append(
        {
          "after_step": records[previous]["step"],
          "first_logged_step": record["step"],
          "training_minutes": minutes[previous],
        }
      )
    previous = index
  return found


def save_learning_curves(
  records: list[dict],
  path: str,
  metric: str = "bits_per_dim",
  *,
  against: str = "step",
  marks: Sequence[float] = (),
) -> None:
  """PNG of ``metric`` for the train and test records, against ``"step"``
  or ``"minutes"`` of training wall time (``training_minutes``), with a
  dotted vertical line at each of ``marks`` (say, where a run restarted)."""
  import matplotlib  # noqa: PLC0415

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  if against not in ("step", "minutes"):
    raise ValueError(f"against must be 'step' or 'minutes'; got {against!r}.")
  xs = (
    [r["step"] for r in records]
    if against == "step"
    else training_minutes(records)
  )
  fig, ax = plt.subplots(figsize=(6, 4))
  for split in ("train", "test"):
    points = [
      (x, r[metric])
      for x, r in zip(xs, records, strict=True)
      if r.get("split") == split and metric in r and x is not None
    ]
    if points:
      steps, values = zip(*points, strict=True)
      ax.plot(steps, values, label=split, marker="." if split == "test" else "")
  for mark in marks:
    ax.axvline(mark, color="grey", linestyle=":", linewidth=1)
  ax.set_xlabel("step" if against == "step" else "training wall time (min)")
  ax.set_ylabel(metric.replace("_", " "))
  ax.grid(alpha=0.3)
  ax.legend()
  fig.savefig(path, dpi=100, bbox_inches="tight")
  plt.close(fig)
