"""Type aliases shared by every layer, and ``apply_output``.

``Params`` is any pytree of arrays (a bijector's, a model's or a whole
training state's); ``Context`` is the optional conditioning input of a
conditional bijector or model (a one-hot label or a feature vector);
``Objective`` is the one signature every training objective has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

import jax

if TYPE_CHECKING:
  import flax.linen as nn

Array = jax.Array
Params = Any
Context = Optional[jax.Array]
Batch = dict[str, Any]
Metrics = dict[str, jax.Array]
Objective = Callable[[Params, Batch, jax.Array], tuple[jax.Array, Metrics]]


def apply_output(
  module: nn.Module, variables: Params, *args: Any, **kwargs: Any
) -> Any:
  """``module.apply(variables, *args, **kwargs)``: the module's output.

  Flax annotates ``apply`` as returning ``output | (output, mutated
  variables)``, the pair being what a call with ``mutable=`` returns. Here
  ``mutable`` is ``False`` (Flax's default; passing it is an error), so the
  result is the output of the module's ``__call__`` alone.
  """
  return module.apply(variables, *args, mutable=False, **kwargs)
