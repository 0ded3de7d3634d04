"""RealNVP on MNIST (Dinh et al. 2017 architecture; 28x28x1).

Reference: 1.06 bits/dim on MNIST (as reported for RealNVP in the MAF and
Glow papers). Multi-scale with 3 levels, ResNet conditioners, logit
pre-processing, batch-norm bijectors; batch 64 on one device.

Command:
  python experiments/train.py --config=experiments/configs/realnvp_mnist.py \
      --workdir=workdirs/realnvp_mnist \
      [--config.dataset=npz --config.data_path=/path/to/mnist.npz]
"""

from __future__ import annotations

from configs import common


def get_config(arg: str = ""):
  options = common.parse_arg(arg)
  config = common.base_config()
  config.model = "realnvp"
  config.model_kwargs.levels = 3
  config.model_kwargs.num_blocks = 4
  config.model_kwargs.features = 32
  config.dataset = "mnist"
  config.batch_size = 64
  config.num_steps = 100_000
  config.eval_batch_size = 500
  config.eval_every = 5000
  config.checkpoint_every = 1000
  if "smoke" in options:
    common.smoke(config, levels=1, num_blocks=1, features=8)
  return common.with_factory_defaults(config)
