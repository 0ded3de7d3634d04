"""Compression auto-encoder on MNIST (28x28x1, 8-bit).

An MLP 784-512-256-32 encoder and its mirror as decoder, with a 32-number
code stored as float16: 6272 input bits / 512 code bits = 12.25x
compression. Trained on squared error of pixels scaled to [0, 1]; the
evaluation reports the test MSE and PSNR (dB) and the compression ratio.
Result and wall time in docs/results.md.

Command:
  python experiments/train.py --config=experiments/configs/ae_mnist.py \
      --workdir=workdirs/ae_mnist \
      [--config.dataset=npz --config.data_path=/path/to/mnist.npz]
"""

from __future__ import annotations

from configs import common


def get_config(arg: str = ""):
  options = common.parse_arg(arg)
  config = common.base_config()
  config.model = "autoencoder"
  config.model_kwargs.latent_size = 32
  config.model_kwargs.latent_dtype = "float16"
  config.model_kwargs.network = "mlp"
  config.model_kwargs.hidden_features = (512, 256)
  config.dataset = "mnist"
  config.batch_size = 128
  config.eval_batch_size = 500
  config.num_steps = 10_000
  config.warmup_steps = 200
  config.eval_every = 2000
  config.checkpoint_every = 1000
  config.log_every = 100
  config.num_samples = 16
  if "smoke" in options:
    common.smoke(config, latent_size=4, hidden_features=(16,))
  return common.with_factory_defaults(config)
