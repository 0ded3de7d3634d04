"""Glow on CIFAR-10 (Kingma & Dhariwal 2018, §5 and App. C).

Paper: 3.35 bits/dim (Table 2); L = 3, K = 32, 512 hidden channels, affine
coupling, 1x1 convolutions, learned top prior, Adamax lr 1e-3 with linear
warm-up, random flips. The released code's CIFAR-10 command runs on 8 GPUs
(``mpiexec -n 8``) with 64 examples per GPU, a global batch of 512; on a
pod the global batch is split over every device and process of the
``data`` mesh. GPU-hours: not reported (neither the paper nor the code
gives a training time). ``experiments/cost.py`` prints this model's
parameters, FLOPs per step and memory per device.

Command:
  python experiments/train.py --config=experiments/configs/glow_cifar10.py \
      --workdir=workdirs/glow_cifar10
  python experiments/cost.py --config=experiments/configs/glow_cifar10.py \
      --num_cpu_devices=8 --batch_size=8
"""

from __future__ import annotations

from configs import common

PAPER = {
  "bits_per_dim": 3.35,
  "gpu_hours": "not reported",
  "hardware": "8 GPUs (the released code's command)",
}


def get_config(arg: str = ""):
  options = common.parse_arg(arg)
  config = common.base_config()
  config.model = "glow"
  config.model_kwargs.levels = 3
  config.model_kwargs.steps_per_level = 32
  config.model_kwargs.hidden_channels = 512
  config.dataset = "cifar10"
  config.random_flip = True
  config.optimizer = "adamax"
  config.batch_size = 512
  config.eval_batch_size = 512
  config.num_steps = 400_000
  config.warmup_steps = 5000
  config.ema_decay = 0.999
  config.eval_every = 10_000
  config.checkpoint_every = 2000
  if "smoke" in options:
    common.smoke(config, steps_per_level=2, hidden_channels=8)
  return common.with_factory_defaults(config)
