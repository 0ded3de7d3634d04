"""RealNVP on CIFAR-10 (Dinh et al. 2017, §4.1).

Paper: 3.49 bits/dim (Table 1). "For CIFAR-10, we use 8 residual blocks,
64 feature maps, and downscale only once": two scales (``levels = 2``,
counted as squeezes plus one), each but the last 3 checkerboard couplings,
a squeeze and 3 channel couplings before half the channels are factored
out, the last 4 checkerboard couplings; logit pre-processing (alpha =
0.05), batch-norm bijectors, random horizontal flips; batch 64, Adam lr
1e-3. Not reproduced: batch and weight normalisation inside the ResNets,
the learned multiplier of the tanh scale (``exp_tanh`` here) and the L2
penalty (5e-5) on the scale weights. Hardware and GPU-hours: not reported.
``experiments/cost.py`` prints this model's parameters, FLOPs per step and
memory per device.

Command:
  python experiments/train.py --config=experiments/configs/realnvp_cifar10.py \
      --workdir=workdirs/realnvp_cifar10
  python experiments/cost.py --config=experiments/configs/realnvp_cifar10.py \
      --num_cpu_devices=8 --batch_size=8
"""

from __future__ import annotations

from configs import common

PAPER = {
  "bits_per_dim": 3.49,
  "gpu_hours": "not reported",
  "hardware": "not reported",
}


def get_config(arg: str = ""):
  options = common.parse_arg(arg)
  config = common.base_config()
  config.model = "realnvp"
  config.model_kwargs.levels = 2
  config.model_kwargs.num_blocks = 8
  config.model_kwargs.features = 64
  config.dataset = "cifar10"
  config.random_flip = True
  config.batch_size = 64
  config.num_steps = 500_000
  config.eval_batch_size = 512  # divisible by 8 (and 16, 32, ...) devices
  config.eval_every = 10_000
  config.checkpoint_every = 2000
  if "smoke" in options:
    common.smoke(config, levels=1, num_blocks=1, features=8)
  return common.with_factory_defaults(config)
