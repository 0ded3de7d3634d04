"""VAE on scikit-learn's 8x8 digits (built in): a Bernoulli decoder on
binarised digits, latent size 8, MLPs 64-128-8. A minute or two on CPU.

Command:
  python experiments/train.py --config=experiments/configs/vae_digits.py \
      --workdir=workdirs/vae_digits
"""

from __future__ import annotations

from configs import common, vae_mnist


def get_config(arg: str = ""):
  options = common.parse_arg(arg, ("smoke", "logistic"))
  config = vae_mnist.get_config(",".join(sorted(options - {"smoke"})))
  config.dataset = "digits"
  config.model_kwargs.latent_size = 8
  config.model_kwargs.hidden_features = (128,)
  config.batch_size = 64
  config.eval_batch_size = 297
  config.num_steps = 5000
  config.eval_every = 1000
  if "smoke" in options:
    common.smoke(config, latent_size=4, hidden_features=(16,))
    config.eval_kwargs.num_importance_samples = 4
  return common.with_factory_defaults(config)
