"""Test log-likelihood of a trained checkpoint over a whole split.

  python experiments/evaluate.py --workdir=workdirs/glow_digits \
      [--best] [--data_path=/path/to/mnist.npz] [--output=report.json]

Reports bits/dim with its standard error, nats per example and examples/s,
and states exactly what the number is, in the printout and in a JSON report
(default ``workdir/evaluation.json``).
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import distributed  # noqa: E402

_WORKDIR = flags.DEFINE_string(
  "workdir", None, "training run directory.", required=True
)
_BEST = flags.DEFINE_bool(
  "best", False, "use the best checkpoint instead of the latest."
)
_DATA_PATH = flags.DEFINE_string(
  "data_path", None, "override the local dataset file."
)
_BATCH = flags.DEFINE_integer(
  "batch_size", None, "override the evaluation batch size."
)
_OUTPUT = flags.DEFINE_string("output", None, "JSON report path.")


def definition(config: dict) -> str:
  """What the reported figure means, in words."""
  n_bits = config["n_bits"]
  if not n_bits:
    return (
      "negative log-density of continuous data in nats per example, "
      "divided by D log 2 for bits/dim; no dequantisation."
    )
  return (
    f"-log p(x) of {n_bits}-bit data, with pixels reduced to {n_bits} "
    f"bits (floor(x / 2^{8 - n_bits})), uniformly dequantised "
    f"((x + u) / 2^{n_bits}, one noise draw per example from a fixed "
    "seed) and every pre-processing Jacobian (the scaling to [0, 1) and "
    "the model's centring or logit) included; bits/dim = nats / (D log "
    "2) over all D entries of an example, averaged over every example "
    "of the test split (a variational upper bound on the discrete "
    "NLL, as reported by RealNVP and Glow)."
  )


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  distributed.initialize()
  import jax  # noqa: PLC0415

  from flowjax_gen.training.loop import load_trained  # noqa: PLC0415

  overrides = {}
  if _DATA_PATH.value:
    overrides["data_path"] = _DATA_PATH.value
  if _BATCH.value:
    overrides["eval_batch_size"] = _BATCH.value
  experiment, state, step = load_trained(
    _WORKDIR.value, best=_BEST.value, overrides=overrides
  )
  result = experiment.evaluate(state.ema_params)
  config = experiment.config
  report = {
    "workdir": os.path.abspath(_WORKDIR.value),
    "checkpoint_step": step,
    "checkpoint": "best" if _BEST.value else "latest",
    "model": config["model"],
    "dataset": config["dataset"],
    "split": "test",
    "params": "EMA" if config["ema_decay"] else "raw",
    **result,
    "definition": definition(config),
    "devices": jax.device_count(),
  }
  if jax.process_index() == 0:
    print(
      f"{config['model']} on {config['dataset']} (step {step}): "
      f"{result['bits_per_dim']:.4f} +/- "
      f"{result['bits_per_dim_stderr']:.4f} bits/dim, "
      f"{result['nll_nats']:.2f} nats/example, "
      f"{result['num_examples']} examples, "
      f"{result['examples_per_s']:.1f} examples/s"
    )
    print(f"definition: {report['definition']}")
    output = _OUTPUT.value or os.path.join(_WORKDIR.value, "evaluation.json")
    with open(output, "w") as f:
      json.dump(report, f, indent=2)
    print(f"report: {output}")


if __name__ == "__main__":
  app.run(main)
