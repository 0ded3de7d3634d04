"""Flow++ on CIFAR-10 (Ho et al. 2019, Table 1 and the released code).

Paper: 3.08 bits/dim with variational dequantisation. The model of its code
(``flows/run_cifar.py``): logit pre-processing, 4 column couplings, a
squeeze, 2 channel couplings and 3 column couplings, each coupling a
32-component logistic-mixture CDF whose conditioner is 10 gated blocks of
96 channels (a 3x3 and a 1x1 convolution) with 4-head self-attention;
the dequantiser is a conditional flow of 4 such couplings. Adam at 3e-4
with 2,000 warm-up steps, global batch 64, gradients clipped to norm 1,
EMA 0.999, dropout 0.2 (which
``nets.GatedAttentionNet`` does not have). GPU-hours: not reported (the
paper gives no training time; its code does not name its hardware).

This config keeps the flow at the paper's size and uses the library's
dequantiser (4 affine couplings of 96 channels reading features of the
image): its parameters, FLOPs per step and memory per device are in
docs/results.md beside Glow's, from ``experiments/cost.py``. The global
batch of 64 is split over every device and process of the ``data`` mesh.

Command:
  python experiments/train.py --config=experiments/configs/flowpp_cifar10.py \
      --workdir=workdirs/flowpp_cifar10
  python experiments/cost.py --config=experiments/configs/flowpp_cifar10.py \
      --num_cpu_devices=8 --batch_size=8
"""

from __future__ import annotations

from configs import common

PAPER = {
  "bits_per_dim": 3.08,
  "gpu_hours": "not reported",
  "hardware": "not reported",
}


def paper_flow(config) -> None:
  """The flow of Flow++'s CIFAR-10 code, with variational dequantisation;
  ``flowpp_mnist.py`` starts from it too."""
  config.model = "flowpp"
  config.model_kwargs.steps = (4, 2, 3)
  config.model_kwargs.features = 96
  config.model_kwargs.num_blocks = 10
  config.model_kwargs.num_heads = 4
  # Its couplings' gated blocks end in a 1x1 convolution (use_nin=True).
  config.model_kwargs.gate_kernel_size = 1
  config.model_kwargs.num_components = 32
  config.dequantization = "variational"


def smoke(config) -> None:
  """A tiny flow and dequantiser for a few steps (tests)."""
  common.smoke(
    config, steps=(1, 1, 1), features=8, num_blocks=1, num_components=4
  )
  config.objective_kwargs.update(num_couplings=2, features=4)
  config.objective_kwargs.context_features = 4


def get_config(arg: str = ""):
  options = common.parse_arg(arg)
  config = common.base_config()
  paper_flow(config)
  config.dataset = "cifar10"
  config.random_flip = True
  config.objective_kwargs.num_couplings = 4
  config.objective_kwargs.features = 96
  config.objective_kwargs.num_blocks = 3
  config.objective_kwargs.context_features = 32
  config.optimizer = "adam"
  config.learning_rate = 3e-4
  config.warmup_steps = 2000
  config.decay = "constant"
  config.grad_clip_norm = 1.0
  config.batch_size = 64
  config.eval_batch_size = 512
  config.init_batch_size = 128
  config.num_steps = 1_000_000
  config.ema_decay = 0.999
  config.eval_every = 10_000
  config.checkpoint_every = 2000
  if "smoke" in options:
    smoke(config)
  return common.with_factory_defaults(config)
