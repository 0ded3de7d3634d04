"""Glow on MNIST (Kingma & Dhariwal 2018; 28x28x1).

Paper: 1.05 bits/dim on MNIST. 28 = 4 x 7, so two levels (L = 2); K = 32
steps, 512 hidden channels, affine coupling, Adamax lr 1e-3 with warm-up;
the paper trained with a global batch of 64 over 8 GPUs.

Command:
  python experiments/train.py --config=experiments/configs/glow_mnist.py \
      --workdir=workdirs/glow_mnist \
      [--config.dataset=npz --config.data_path=/path/to/mnist.npz]
"""

from __future__ import annotations

from configs import common


def get_config(arg: str = ""):
  options = common.parse_arg(arg)
  config = common.base_config()
  config.model = "glow"
  config.model_kwargs.levels = 2
  config.model_kwargs.steps_per_level = 32
  config.model_kwargs.hidden_channels = 512
  config.dataset = "mnist"
  config.optimizer = "adamax"
  config.batch_size = 64
  config.num_steps = 100_000
  config.warmup_steps = 1000
  config.ema_decay = 0.999
  config.eval_batch_size = 500
  config.eval_every = 5000
  config.checkpoint_every = 1000
  if "smoke" in options:
    common.smoke(config, steps_per_level=2, hidden_channels=8)
  return common.with_factory_defaults(config)
