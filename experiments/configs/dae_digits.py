"""Denoising auto-encoder on scikit-learn's 8x8 digits (built in).

``ae_digits`` with a 16-number float32 code, trained on inputs with Gaussian
noise of sigma 0.3; reports noisy-input and denoised errors side by side.

Command:
  python experiments/train.py --config=experiments/configs/dae_digits.py \
      --workdir=workdirs/dae_digits
"""

from __future__ import annotations

from configs import ae_digits, common


def get_config(arg: str = ""):
  options = common.parse_arg(arg)
  config = ae_digits.get_config(arg)
  if "smoke" not in options:
    config.model_kwargs.latent_size = 16
    config.model_kwargs.latent_dtype = "float32"
  config.objective_kwargs.corruption = "gaussian"
  config.objective_kwargs.noise_level = 0.3
  return common.with_factory_defaults(config)
