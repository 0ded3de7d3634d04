"""Compression auto-encoder on scikit-learn's 8x8 digits (built in).

An MLP 64-128-8 auto-encoder with an 8-number float16 code: 512 input bits
/ 128 code bits = 4x compression. About a minute on a 2-core CPU.

Command:
  python experiments/train.py --config=experiments/configs/ae_digits.py \
      --workdir=workdirs/ae_digits
"""

from __future__ import annotations

from configs import ae_mnist, common


def get_config(arg: str = ""):
  options = common.parse_arg(arg)
  config = ae_mnist.get_config()
  config.dataset = "digits"
  config.model_kwargs.latent_size = 8
  config.model_kwargs.hidden_features = (128,)
  config.batch_size = 64
  config.eval_batch_size = 297
  config.num_steps = 3000
  config.eval_every = 1000
  if "smoke" in options:
    common.smoke(config, latent_size=4, hidden_features=(16,))
  return common.with_factory_defaults(config)
