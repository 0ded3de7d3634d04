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

__all__ = ["Flow", "check_data", "glow", "glow_step", "make_flow", "nice",
           "realnvp"]
