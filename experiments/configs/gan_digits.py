"""DCGAN-style GAN on scikit-learn's 8x8 digits (built in); hinge loss.

Command:
  python experiments/train.py --config=experiments/configs/gan_digits.py \
      --workdir=workdirs/gan_digits
"""

from __future__ import annotations

from configs import common, gan_mnist


def get_config(arg: str = ""):
  options = common.parse_arg(arg)
  config = gan_mnist.get_config()
  config.dataset = "digits"
  config.model_kwargs.latent_size = 16
  config.model_kwargs.generator_channels = (64, 32)
  config.model_kwargs.discriminator_channels = (32, 64)
  config.objective_kwargs.loss = "hinge"
  config.eval_batch_size = 297
  config.num_steps = 5000
  if "smoke" in options:
    common.smoke(
      config, generator_channels=(8, 4), discriminator_channels=(4, 8)
    )
  return common.with_factory_defaults(config)
