"""A flow of your own in train.py and evaluate.py: copy this file and name
your factory in ``config.model``.

A factory is any importable ``factory(event_shape, **model_kwargs) ->
Flow`` (``flowjax_gen.models.make_flow`` over your bijectors), named
``"package.module:factory"``; the training and evaluation processes must be
able to import it. ``with_factory_defaults`` puts each of its keyword
arguments in ``config.model_kwargs``, so every one can be set on the
command line. This file's own factory is flowjax_gen's Glow reached that
way, small, on the built-in digits (no download); "smoke" is a tiny model
for a few steps.

Command:
  python experiments/train.py --config=experiments/configs/custom_flow.py \
      --workdir=workdirs/custom_flow
"""

from __future__ import annotations

from configs import common


def get_config(arg: str = ""):
  options = common.parse_arg(arg, ("smoke",))
  config = common.base_config()
  config.model = "flowjax_gen.models:glow"  # your "package.module:factory"
  config.model_kwargs.levels = 2
  config.model_kwargs.steps_per_level = 4
  config.model_kwargs.hidden_channels = 32
  config.dataset = "digits"
  config.batch_size = 64
  config.num_steps = 500
  config.eval_every = 250
  if "smoke" in options:
    common.smoke(config, steps_per_level=1, hidden_channels=8)
  return common.with_factory_defaults(config)
