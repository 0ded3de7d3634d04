"""Denoising auto-encoder on MNIST (Vincent et al. 2008, 2010).

The auto-encoder of ``ae_mnist`` (64-number float32 code) sees each training
image with fresh Gaussian noise (sigma 0.5, clipped to [0, 1]) and learns to
output the clean image. The evaluation reports the error of the noisy input
(``noisy_mse``, ``noisy_psnr``) next to that of the denoised output (``mse``,
``psnr``), on the same noise draws. Result in docs/results.md.

Command:
  python experiments/train.py --config=experiments/configs/dae_mnist.py \
      --workdir=workdirs/dae_mnist \
      [--config.dataset=npz --config.data_path=/path/to/mnist.npz]
  Other corruptions: --config.objective_kwargs.corruption=mask (or
  salt_and_pepper) --config.objective_kwargs.noise_level=0.3
"""

from __future__ import annotations

from configs import ae_mnist, common


def get_config(arg: str = ""):
  options = common.parse_arg(arg)
  config = ae_mnist.get_config(arg)
  if "smoke" not in options:
    config.model_kwargs.latent_size = 64
    config.model_kwargs.latent_dtype = "float32"
  config.objective_kwargs.corruption = "gaussian"
  config.objective_kwargs.noise_level = 0.5
  return common.with_factory_defaults(config)
