"""NICE on MNIST (Dinh et al. 2014, §5.1).

Paper: 1980.50 nats on the test set (~4.36 bits/dim), 4 additive couplings
of 5 x 1000 ReLU MLPs, diagonal scaling, logistic prior; batch 200, Adam-like
(the paper used AdaM with lr 1e-3), one device.

Command (tfds mnist, or the local file):
  python experiments/train.py --config=experiments/configs/nice_mnist.py \
      --workdir=workdirs/nice_mnist \
      [--config.dataset=npz --config.data_path=/path/to/mnist.npz]
"""

from __future__ import annotations

from configs import common


def get_config(arg: str = ""):
  options = common.parse_arg(arg)
  config = common.base_config()
  config.model = "nice"
  config.dataset = "mnist"
  config.batch_size = 200
  config.eval_batch_size = 500
  config.num_steps = 150_000
  config.learning_rate = 1e-3
  config.warmup_steps = 0
  config.eval_every = 5000
  config.checkpoint_every = 2500
  if "smoke" in options:
    common.smoke(config, hidden_features=(16, 16))
  return common.with_factory_defaults(config)
