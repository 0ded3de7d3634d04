"""Glow on scikit-learn's 8x8 digits: the built-in default, no download.

1500 train / 297 test images of 8x8x1 at 17 grey levels (stored as 8-bit).
A few minutes on a 2-core CPU; test bits/dim and wall time are recorded in
docs/results.md. Config arguments (comma-separated): "variational" trains
Flow++'s variational dequantiser with the flow (evaluation reports both
bounds); "smoke" is a tiny model for a few steps.

Command:
  python experiments/train.py --config=experiments/configs/glow_digits.py \
      --workdir=workdirs/glow_digits
"""

from __future__ import annotations

from configs import common


def get_config(arg: str = ""):
  options = common.parse_arg(arg, ("smoke", "variational"))
  config = common.base_config()
  config.model = "glow"
  config.model_kwargs.levels = 2
  config.model_kwargs.steps_per_level = 8
  config.model_kwargs.hidden_channels = 64
  config.model_kwargs.permutation = "conv1x1_lu"
  config.dataset = "digits"
  config.batch_size = 64
  config.num_steps = 1000
  config.learning_rate = 1e-3
  config.ema_decay = 0.999
  config.eval_every = 250
  if "variational" in options:
    config.dequantization = "variational"
    # The dequantiser works on the full 8x8 grid, Glow after a squeeze: 16
    # channels keep its FLOPs below the flow's.
    config.objective_kwargs.num_couplings = 4
    config.objective_kwargs.features = 16
    config.objective_kwargs.context_features = 8
  if "smoke" in options:
    common.smoke(config, steps_per_level=2, hidden_channels=8)
    if "variational" in options:
      config.objective_kwargs.update(num_couplings=2, features=4)
      config.objective_kwargs.context_features = 4
  return common.with_factory_defaults(config)
