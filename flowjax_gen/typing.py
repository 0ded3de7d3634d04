"""Type aliases shared by every layer.

``Params`` is any pytree of arrays (a bijector's, a model's or a whole
training state's); ``Context`` is the optional conditioning input of a
conditional bijector or model (a one-hot label or a feature vector);
``Objective`` is the one signature every training objective has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import jax

Array = jax.Array
Params = Any
Context = Optional[jax.Array]
Batch = dict[str, Any]
Metrics = dict[str, jax.Array]
Objective = Callable[[Params, Batch, jax.Array], tuple[jax.Array, Metrics]]
