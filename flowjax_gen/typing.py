"""Type aliases shared by every layer, and ``apply_output`` (a network's
output, optionally computed in bfloat16).

``Params`` is any pytree of arrays (a bijector's, a model's or a whole
training state's); ``Context`` is the optional conditioning input of a
conditional bijector or model (a one-hot label or a feature vector);
``Objective`` is the one signature every training objective has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

import jax
import jax.numpy as jnp

if TYPE_CHECKING:
  import flax.linen as nn

Array = jax.Array
Params = Any
Context = Optional[jax.Array]
Batch = dict[str, Any]
Metrics = dict[str, jax.Array]
Objective = Callable[[Params, Batch, jax.Array], tuple[jax.Array, Metrics]]

# The dtypes networks may compute in. "float32" computes in the data's own
# precision (float64 under ``jax_enable_x64``); "bfloat16" runs the
# network's matmuls and convolutions in bfloat16 (several times float32's
# rate on TPUs and recent GPUs, half the activation memory), its params and
# outputs staying in the data's precision.
COMPUTE_DTYPES = ("float32", "bfloat16")


def compute_dtype_of(compute_dtype: Optional[str]) -> str:
  """A factory's ``compute_dtype`` argument, checked; ``None`` (the
  factories' default, so that configs recorded before the argument existed
  still match) is ``"float32"``."""
  compute_dtype = "float32" if compute_dtype is None else compute_dtype
  if compute_dtype not in COMPUTE_DTYPES:
    raise ValueError(
      f"compute_dtype must be one of {COMPUTE_DTYPES}; got {compute_dtype!r}."
    )
  return compute_dtype


def _floating(tree: Any, dtype) -> Any:
  """``tree`` with its floating leaves cast to ``dtype``."""
  return jax.tree.map(
    lambda a: (
      a.astype(dtype) if jnp.issubdtype(jnp.result_type(a), jnp.floating) else a
    ),
    tree,
  )


def apply_output(
  module: nn.Module,
  variables: Params,
  *args: Any,
  compute_dtype: str = "float32",
  **kwargs: Any,
) -> Any:
  """``module.apply(variables, *args, **kwargs)``: the module's output.

  Flax annotates ``apply`` as returning ``output | (output, mutated
  variables)``, the pair being what a call with ``mutable=`` returns. Here
  ``mutable`` is ``False`` (Flax's default; passing it is an error), so the
  result is the output of the module's ``__call__`` alone.

  With ``compute_dtype="bfloat16"`` the stored params and the floating
  inputs enter the module cast to bfloat16, so every layer computes in it
  (Flax promotes a layer's inputs and params to a common dtype), and the
  floating outputs come back in the first floating input's dtype: params,
  their gradients (through the casts) and whatever the caller computes
  from the output (log-determinants, likelihoods) keep full precision.
  """
  if compute_dtype == "float32":
    return module.apply(variables, *args, mutable=False, **kwargs)
  floating = [
    jnp.result_type(a)
    for a in jax.tree.leaves((args, kwargs))
    if jnp.issubdtype(jnp.result_type(a), jnp.floating)
  ]
  out_dtype = floating[0] if floating else jnp.float32
  low = jnp.dtype(compute_dtype)
  out = module.apply(
    _floating(variables, low),
    *_floating(args, low),
    mutable=False,
    **_floating(kwargs, low),
  )
  return _floating(out, out_dtype)
