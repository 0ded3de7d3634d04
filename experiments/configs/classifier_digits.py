"""The small digits classifier behind the sample-quality metric on 8x8
digits (see ``classifier_mnist``).

Command:
  python experiments/train.py \
      --config=experiments/configs/classifier_digits.py \
      --workdir=workdirs/classifier_digits
"""

from __future__ import annotations

from configs import classifier_mnist, common


def get_config(arg: str = ""):
  options = common.parse_arg(arg)
  config = classifier_mnist.get_config()
  config.dataset = "digits"
  config.batch_size = 64
  config.eval_batch_size = 297
  config.num_steps = 1500
  config.eval_every = 500
  if "smoke" in options:
    common.smoke(config, channels=(4, 8), features=16)
  return common.with_factory_defaults(config)
