"""DCGAN-style GAN on MNIST (Goodfellow et al. 2014; Radford et al. 2015).

Generator: z (64) -> 7x7x64 -> 14x14x32 -> 28x28x32 -> 28x28x1 (transposed
convs with layer norm, tanh); discriminator: stride-2 convs 32, 64 with
leaky ReLU. Half DCGAN's widths, so that 5000 steps take about 20 minutes on
a 2-core CPU. Non-saturating loss by default; Adam lr 2e-4, b1 0.5, batch
64. Other losses via
``--config.objective_kwargs.loss=minimax|hinge|wasserstein`` (wasserstein
with a gradient penalty of weight 10 unless set) and an optional R1 penalty
(``r1_weight``). Samples at every evaluation; the classifier Fréchet
distance of the samples is in docs/results.md.

Command:
  python experiments/train.py --config=experiments/configs/gan_mnist.py \
      --workdir=workdirs/gan_mnist \
      [--config.dataset=npz --config.data_path=/path/to/mnist.npz]
"""

from __future__ import annotations

from configs import common


def get_config(arg: str = ""):
  options = common.parse_arg(arg)
  config = common.base_config()
  config.model = "gan"
  config.model_kwargs.latent_size = 64
  config.model_kwargs.generator_channels = (64, 32)
  config.model_kwargs.discriminator_channels = (32, 64)
  config.objective_kwargs.loss = "non_saturating"
  config.dataset = "mnist"
  config.batch_size = 64
  config.eval_batch_size = 500
  config.learning_rate = 2e-4
  config.adam_b1 = 0.5
  config.warmup_steps = 0
  config.decay = "constant"
  config.grad_clip_norm = 0.0
  config.num_steps = 5000
  config.eval_every = 1000
  config.checkpoint_every = 1000
  config.log_every = 100
  config.temperature = 1.0
  if "smoke" in options:
    common.smoke(
      config, generator_channels=(8, 4), discriminator_channels=(4, 8)
    )
  return common.with_factory_defaults(config)
