"""Objectives, one signature for every family:
``objective(params, batch, key) -> (loss, metrics)``.

``batch`` is the host batch as the data pipeline yields it (``"image"``: 8-bit
pixels, NHWC; ``"label"``: ints); every objective does its own
pre-processing (dequantisation, binarisation, scaling) so that the same batch
feeds every model family.
"""

from flowjax_gen.objectives.likelihood import (
  Objective,
  bits_per_dim,
  check_n_bits,
  dequantize,
  flow_bits_per_dim,
  flow_inputs,
  flow_nll,
  nll_nats,
  num_dims,
  reduce_bits,
)

__all__ = [
  "Objective",
  "bits_per_dim",
  "check_n_bits",
  "dequantize",
  "flow_bits_per_dim",
  "flow_inputs",
  "flow_nll",
  "nll_nats",
  "num_dims",
  "reduce_bits",
]
