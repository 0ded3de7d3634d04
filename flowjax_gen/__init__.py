"""flowjax_gen: normalising flows and other generative models in JAX/Flax.

Bijectors are pure functions over a params pytree (``flowjax_gen.bijectors``);
models (``nice``, ``realnvp``, ``glow``) add a base density; objectives report
negative log-likelihood in nats and bits/dim as the papers do.
"""

from flowjax_gen import bijectors, distributions, nets, objectives
from flowjax_gen.models import Flow, glow, make_flow, nice, realnvp

__version__ = "0.1.0"

__all__ = [
  "Flow",
  "bijectors",
  "distributions",
  "glow",
  "make_flow",
  "nets",
  "nice",
  "objectives",
  "realnvp",
]
