"""A flow factory of a user's own, for the tests of ``--config.model=
package.module:factory``: Glow's layers composed by hand, as in the README."""

from __future__ import annotations

import functools

from flowjax_gen import bijectors as fb
from flowjax_gen.models import Flow, make_flow
from flowjax_gen.nets import GlowConvNet


def small_glow(event_shape, *, steps: int = 2, width: int = 8) -> Flow:
  net = functools.partial(GlowConvNet, hidden_channels=width)
  step = fb.chain(fb.actnorm(), fb.conv1x1_lu(), fb.affine_coupling(net))
  return make_flow(
    fb.chain(
      fb.shift(-0.5),
      fb.multiscale(
        [
          fb.chain(
            fb.squeeze(), fb.scan(step, steps), fb.gaussian_split_prior()
          ),
          fb.chain(fb.squeeze(), fb.scan(step, steps), fb.learned_prior()),
        ]
      ),
    ),
    event_shape=event_shape,
  )


def not_a_flow(event_shape):
  return {"event_shape": event_shape}
