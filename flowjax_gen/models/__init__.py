"""Model factories."""

from flowjax_gen.models.flows import (
  Flow,
  check_data,
  glow,
  glow_step,
  make_flow,
  nice,
  realnvp,
)
from flowjax_gen.models.registry import FLOWS, build_flow

__all__ = [
  "FLOWS",
  "Flow",
  "build_flow",
  "check_data",
  "glow",
  "glow_step",
  "make_flow",
  "nice",
  "realnvp",
]
