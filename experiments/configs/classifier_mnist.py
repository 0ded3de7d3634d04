"""The small MNIST classifier whose features define the sample-quality
metric (a Fréchet distance and KID in its penultimate layer; not Inception).

Train it once; ``experiments/evaluate.py --classifier_workdir=...`` reuses
its checkpoint for every model's samples.

Command:
  python experiments/train.py \
      --config=experiments/configs/classifier_mnist.py \
      --workdir=workdirs/classifier_mnist \
      [--config.dataset=npz --config.data_path=/path/to/mnist.npz]
"""

from __future__ import annotations

from configs import common


def get_config(arg: str = ""):
  options = common.parse_arg(arg)
  config = common.base_config()
  config.model = "classifier"
  config.num_classes = 10
  config.dataset = "mnist"
  config.batch_size = 128
  config.eval_batch_size = 500
  config.num_steps = 3000
  config.warmup_steps = 100
  config.eval_every = 1000
  config.checkpoint_every = 1000
  config.log_every = 100
  config.num_samples = 16
  if "smoke" in options:
    common.smoke(config, channels=(4, 8), features=16)
  return common.with_factory_defaults(config)
