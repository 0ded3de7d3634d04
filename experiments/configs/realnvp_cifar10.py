"""RealNVP on CIFAR-10 (Dinh et al. 2017, §4).

Paper: 3.49 bits/dim; 3 levels, ResNet conditioners of 8 blocks x 64
features, logit pre-processing (alpha = 0.05), batch-norm bijectors, random
horizontal flips; batch 64 on one GPU, Adam lr 1e-3.

Command:
  python experiments/train.py --config=experiments/configs/realnvp_cifar10.py \
      --workdir=workdirs/realnvp_cifar10
"""

from __future__ import annotations

from configs import common


def get_config(arg: str = ""):
  options = common.parse_arg(arg)
  config = common.base_config()
  config.model = "realnvp"
  config.model_kwargs.levels = 3
  config.model_kwargs.num_blocks = 8
  config.model_kwargs.features = 64
  config.dataset = "cifar10"
  config.random_flip = True
  config.batch_size = 64
  config.num_steps = 500_000
  config.eval_batch_size = 500
  config.eval_every = 10_000
  config.checkpoint_every = 2000
  if "smoke" in options:
    common.smoke(config, levels=1, num_blocks=1, features=8)
  return common.with_factory_defaults(config)
