"""Density estimation: flowjax_gen's NSF and MAF against flowjax and distrax.

    python experiments/density_estimation.py                    # everything
    python experiments/density_estimation.py --datasets=two_moons --steps=200

Every model (``density/candidates.py``) trains with the same loop: Adam,
``--learning_rate``, ``--batch_size``, ``--steps``, minibatches drawn from
one seeded permutation per epoch, loss ``-mean log p(x)``. The last 10% of
the training split is held out for validation; the params kept are those
with the best validation log-likelihood, checked every ``--eval_every``
steps (early stopping, as the MAF and NSF papers do on tabular data). Data
are standardised with the training part's mean and standard deviation;
reported log-likelihoods are per test example in nats, mean +- standard
error, in the data's own units for the 2-D toys (the standardisation's
log-Jacobian is added back) and in standardised units for the tabular
set.

Datasets: the four 2-D toys of ``flowjax_gen.data`` (10,000 train, of which
1,000 validate, and 2,000 test) and scikit-learn's bundled breast-cancer set
(569 x 30 continuous features, no download), split 80/20 into train and
test by a seeded permutation (455 train, of which 45 validate; 114 test).

Writes ``density_estimation.json`` and one density heat-map per toy
(``density_estimation_<toy>.png``: training data, then each model's
``p(x)`` on a grid) to ``--output_dir``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from density import candidates  # noqa: E402

from flowjax_gen import data  # noqa: E402
from flowjax_gen.data.sources import TOY_DENSITIES  # noqa: E402

TABULAR = "breast_cancer"
DATASETS = (*TOY_DENSITIES, TABULAR)

FLAGS = flags.FLAGS
flags.DEFINE_list("datasets", list(DATASETS), "Datasets to fit.")
flags.DEFINE_list("models", list(candidates.MODELS), "Models to train.")
flags.DEFINE_integer("steps", 2000, "Adam steps per model and dataset.")
flags.DEFINE_integer("eval_every", 100, "Steps between validation checks.")
flags.DEFINE_integer("batch_size", 256, "Examples per step.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_string("output_dir", "docs/results", "Report and figures.")
flags.DEFINE_integer("grid", 120, "Heat-map resolution per axis.")


def load(name: str):
  """(train, valid, test, log_scale, (mean, std)): standardised float32
  splits and the summed log standard deviation that converts log-densities
  back to data units."""
  if name == TABULAR:
    from sklearn.datasets import load_breast_cancer  # noqa: PLC0415

    x = load_breast_cancer().data.astype(np.float64)
    order = np.random.default_rng(0).permutation(len(x))
    cut = int(0.8 * len(x))
    train, test = x[order[:cut]], x[order[cut:]]
  else:
    train = data.load(name, "train")["image"].astype(np.float64)
    test = data.load(name, "test")["image"].astype(np.float64)
  cut = len(train) - len(train) // 10
  train, valid = train[:cut], train[cut:]
  mean, std = train.mean(axis=0), train.std(axis=0)

  def scale(v):
    return ((v - mean) / std).astype(np.float32)

  log_scale = float(np.sum(np.log(std)))
  return scale(train), scale(valid), scale(test), log_scale, (mean, std)


def train(candidate, x_train: np.ndarray, x_valid: np.ndarray):
  """Adam on ``-mean log p``; returns the params with the best validation
  log-likelihood, their step and the loss curve."""
  optimiser = optax.adam(FLAGS.learning_rate)

  def loss_fn(params, batch):
    return -jnp.mean(candidate.log_prob(params, batch))

  @jax.jit
  def step(params, state, batch):
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    updates, state = optimiser.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss

  params, state = candidate.params, optimiser.init(candidate.params)
  rng = np.random.default_rng(0)
  batch = min(FLAGS.batch_size, len(x_train))
  per_epoch = len(x_train) // batch
  losses, best = [], (-np.inf, 0, params)
  for i in range(FLAGS.steps):
    if i % per_epoch == 0:
      order = rng.permutation(len(x_train))
    rows = order[(i % per_epoch) * batch : (i % per_epoch + 1) * batch]
    params, state, loss = step(params, state, x_train[rows])
    losses.append(float(loss))
    if (i + 1) % FLAGS.eval_every == 0 or i + 1 == FLAGS.steps:
      score = np.mean(evaluate(candidate, params, x_valid))
      if np.isfinite(score) and score > best[0]:
        best = (score, i + 1, params)
  return best[2], best[1], np.asarray(losses)


def evaluate(candidate, params, x: np.ndarray) -> np.ndarray:
  """``log p(x)`` of every row, float64 on the host."""
  log_prob = jax.jit(candidate.log_prob)
  return np.asarray(log_prob(params, jnp.asarray(x))).astype(np.float64)


def heat_map(name, train_x, panels, stats, path):
  """Training histogram, then each model's density on a grid (data units)."""
  import matplotlib  # noqa: PLC0415

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415

  mean, std = stats
  raw = train_x * std + mean
  lo, hi = np.percentile(raw, 0.5, axis=0), np.percentile(raw, 99.5, axis=0)
  pad = 0.15 * (hi - lo)
  lo, hi = lo - pad, hi + pad
  axes_values = [np.linspace(lo[i], hi[i], FLAGS.grid) for i in range(2)]
  gx, gy = np.meshgrid(*axes_values)
  grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
  std_grid = ((grid - mean) / std).astype(np.float32)
  extent = (lo[0], hi[0], lo[1], hi[1])
  fig, axes = plt.subplots(
    1, len(panels) + 1, figsize=(2.6 * (len(panels) + 1), 2.8)
  )
  axes[0].hist2d(
    raw[:, 0], raw[:, 1], bins=FLAGS.grid, range=[extent[:2], extent[2:]]
  )
  axes[0].set_title("training data", fontsize=8)
  for ax, (label, candidate, params) in zip(axes[1:], panels, strict=True):
    log_p = evaluate(candidate, params, std_grid) - np.sum(np.log(std))
    density = np.exp(np.nan_to_num(log_p, nan=-np.inf)).reshape(gx.shape)
    ax.imshow(density, origin="lower", extent=extent, aspect="auto")
    ax.set_title(label, fontsize=8)
  for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
  fig.suptitle(name, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def run_dataset(name: str, settings: candidates.Settings) -> dict:
  x_train, x_valid, x_test, log_scale, stats = load(name)
  toy = name != TABULAR
  results, panels = {}, []
  for model in FLAGS.models:
    try:
      candidate = candidates.make(
        model, x_train.shape[1], jnp.asarray(x_train[:256]), settings
      )
    except candidates.Unsupported as reason:
      results[model] = {"unsupported": str(reason)}
      continue
    except ImportError as missing:  # a peer library is not installed
      results[model] = {"unsupported": f"not installed: {missing}"}
      continue
    start = time.perf_counter()
    params, best_step, losses = train(candidate, x_train, x_valid)
    seconds = time.perf_counter() - start
    log_p = evaluate(candidate, params, x_test) - (log_scale if toy else 0.0)
    finite = np.isfinite(log_p)
    mean = float(np.mean(log_p[finite])) if finite.any() else math.nan
    stderr = float(np.std(log_p[finite], ddof=1) / math.sqrt(finite.sum()))
    results[model] = {
      "test_log_likelihood": mean,
      "standard_error": stderr,
      "non_finite_test_points": int((~finite).sum()),
      "best_validation_step": best_step,
      "final_train_loss": float(np.mean(losses[-50:])),
      "train_seconds": round(seconds, 1),
      "note": candidate.note,
    }
    print(
      f"{name:14s} {model:16s} {mean:9.3f} +- {stderr:.3f} nats "
      f"({seconds:.0f} s)",
      flush=True,
    )
    panels.append((model, candidate, params))
  if toy and panels:
    path = os.path.join(FLAGS.output_dir, f"density_estimation_{name}.png")
    heat_map(name, x_train, panels, stats, path)
  return {
    "dimension": int(x_train.shape[1]),
    "train_size": int(len(x_train)),
    "valid_size": int(len(x_valid)),
    "test_size": int(len(x_test)),
    "units": "data" if toy else "standardised",
    "models": results,
  }


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def main(argv):
  del argv
  unknown = sorted(set(FLAGS.datasets) - set(DATASETS))
  if unknown:
    raise app.UsageError(f"unknown datasets {unknown}; allowed: {DATASETS}")
  unknown = sorted(set(FLAGS.models) - set(candidates.MODELS))
  if unknown:
    raise app.UsageError(
      f"unknown models {unknown}; allowed: {candidates.MODELS}"
    )
  os.makedirs(FLAGS.output_dir, exist_ok=True)
  settings = candidates.Settings()
  start = time.perf_counter()
  report = {
    "settings": {
      **settings._asdict(),
      "optimiser": f"adam(learning_rate={FLAGS.learning_rate})",
      "batch_size": FLAGS.batch_size,
      "steps": FLAGS.steps,
      "eval_every": FLAGS.eval_every,
    },
    "datasets": {name: run_dataset(name, settings) for name in FLAGS.datasets},
  }
  report["wall_seconds"] = round(time.perf_counter() - start, 1)
  report["machine"] = {
    "cpu": _cpu_model(),
    "cores": os.cpu_count(),
    "jax": jax.__version__,
  }
  path = os.path.join(FLAGS.output_dir, "density_estimation.json")
  with open(path, "w") as f:
    json.dump(report, f, indent=1)
  print(f"wrote {path} ({report['wall_seconds']} s)")


if __name__ == "__main__":
  app.run(main)
