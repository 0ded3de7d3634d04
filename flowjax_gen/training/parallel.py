"""Deprecated location of ``flowjax_gen.parallel`` (kept for one release).

The mesh and sharding helpers moved below the training and latent layers,
which both use them; import them from ``flowjax_gen.parallel``.
"""

import warnings

from flowjax_gen.parallel import *  # noqa: F403
from flowjax_gen.parallel import __all__  # noqa: F401

warnings.warn(
  "flowjax_gen.training.parallel moved to flowjax_gen.parallel; the old "
  "path will be removed in the next release.",
  DeprecationWarning,
  stacklevel=2,
)
