"""The input contract at a flow's boundary.

A flow given the wrong kind of input rarely fails: integer pixels give a
finite (and meaningless) log-density, a NaN in the init batch becomes a NaN
parameter, another model's params or a mis-shaped context surface as a Flax
scope error deep in a conditioner. Every ``Flow`` call (``init``,
``log_prob``, ``encode``, ``decode``, ``sample``, ``update_stats``) therefore
checks what it is given before any compute:

* data are floating-point batches of the flow's ``event_shape`` (integer or
  bool pixels must be dequantised first, ``preprocess.dequantize``);
* a context is floating point (a one-hot label, not the label) with one row
  per example: the data's batch size, never broadcast from a batch of one;
  once ``init`` has seen a context shape (or none), calls must use one of
  the shapes it saw;
* params have the tree structure and leaf shapes that this flow's ``init``
  makes for the call's context (the tree ``init`` returned in this process,
  or else ``jax.eval_shape`` of ``init``, once per context shape);
* ``init``'s batch is finite, checked on the host when it is concrete (a
  traced batch, as in a jitted init, is the data pipeline's to check).

Every check but the last reads only shapes and dtypes, so it runs when a
call is traced and costs nothing inside ``jit``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from flowjax_gen._checks import check_data

DEQUANTIZE_HINT = (
  "a flow models continuous values: dequantise integer pixels first with "
  "flowjax_gen.preprocess.dequantize(key, pixels, n_bits) (also "
  "objectives.dequantize), which gives (x + u) / 2**n_bits in [0, 1)"
)
ContextShape = Optional[tuple[int, ...]]


def _dtype(x: Any) -> np.dtype:
  return np.dtype(x.dtype) if hasattr(x, "dtype") else np.result_type(x)


def _is_concrete(x: Any) -> bool:
  return not isinstance(x, jax.core.Tracer)


def check_events(
  where: str, x: Any, event_shape: Sequence[int], name: str = "x"
) -> None:
  """Raises ``ValueError`` unless ``x`` is a floating batch of events."""
  check_data(x, event_shape, name=f"{where}: {name}")
  dtype = _dtype(x)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"{where}: {name} has dtype {dtype}; {DEQUANTIZE_HINT}.")


def check_latents(where: str, latents: Any) -> int:
  """Raises ``ValueError`` unless every latent is floating with one batch
  size; returns that batch size."""
  leaves = jax.tree.leaves(latents)
  if not leaves:
    raise ValueError(f"{where}: latents hold no arrays; got {latents!r}.")
  batches = set()
  for leaf in leaves:
    dtype = _dtype(leaf)
    if not jnp.issubdtype(dtype, jnp.floating) or not jnp.ndim(leaf):
      raise ValueError(
        f"{where}: latents must be floating arrays with a batch axis; got "
        f"shape {jnp.shape(leaf)} and dtype {dtype}."
      )
    batches.add(jnp.shape(leaf)[0])
  if len(batches) > 1:
    raise ValueError(
      f"{where}: latents disagree on the batch size: {sorted(batches)}."
    )
  return batches.pop()


def check_context(where: str, context: Any, batch: int) -> ContextShape:
  """Raises ``ValueError`` unless ``context`` is ``None`` or a floating
  array with ``batch`` rows; returns its per-example shape."""
  if context is None:
    return None
  dtype = _dtype(context)
  shape = tuple(jnp.shape(context))
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(
      f"{where}: context has dtype {dtype} (shape {shape}); pass a floating "
      "context, e.g. one-hot class labels: "
      "jax.nn.one_hot(labels, num_classes)."
    )
  if not shape or shape[0] != batch:
    raise ValueError(
      f"{where}: context must have one row per example, shape ({batch}, "
      f"...); got shape {shape}. A context is not broadcast over the batch."
    )
  return shape[1:]


def check_finite(where: str, name: str, value: Any) -> None:
  """Raises ``ValueError`` if a concrete ``value`` holds NaN or inf; traced
  values are skipped (their values are unknown when traced)."""
  if value is None or not _is_concrete(value):
    return
  values = np.asarray(value)
  bad = int(values.size - np.count_nonzero(np.isfinite(values)))
  if bad:
    raise ValueError(
      f"{where}: {name} holds {bad} non-finite values (NaN or inf); "
      "data-dependent init (actnorm) would turn them into NaN params. "
      "Drop or repair those examples."
    )


def _context_text(shape: ContextShape) -> str:
  if shape is None:
    return "no context"
  return f"a context of shape {('batch', *shape)}".replace("'", "")


def _structure(tree: Any) -> tuple[Any, list]:
  """A tree's structure and its leaves' shapes: what two params trees must
  share (values and dtypes aside)."""
  leaves, treedef = jax.tree.flatten(tree)
  return treedef, [tuple(jnp.shape(leaf)) for leaf in leaves]


class ParamsContract:
  """The params and context a flow's calls must agree with.

  ``init`` records each context shape it sees and the params it made for
  it (``record``); ``check`` compares a call's params with that tree. Params
  that come from elsewhere (a checkpoint, another process) are checked
  against ``jax.eval_shape`` of ``init``, once per context shape. That
  traces every conditioner again (seconds for a paper-sized flow), so the
  tree ``init`` returned is used when there is one.

  Args:
    init: the bijector's ``init(key, x, context)``.
    event_shape: shape of one example.
  """

  def __init__(self, init: Callable[..., Any], event_shape: Sequence[int]):
    self._init = init
    self._event_shape = tuple(event_shape)
    self._expected: dict[ContextShape, tuple[Any, list]] = {}
    self._seen: list[ContextShape] = []

  def record(self, context_shape: ContextShape, params: Any = None) -> None:
    """Notes a context shape (or ``None``) that ``init`` was called with
    and, if given, the params it made (only their tree and leaf shapes are
    kept: params' shapes never depend on the batch)."""
    if context_shape not in self._seen:
      self._seen.append(context_shape)
    if params is not None and context_shape not in self._expected:
      self._expected[context_shape] = _structure(params)

  def _expected_tree(self, context_shape: ContextShape) -> tuple[Any, list]:
    if context_shape not in self._expected:
      # Two examples: shapes of params never depend on the batch, and a
      # batch of two keeps any batch statistics of an init well defined.
      x = jax.ShapeDtypeStruct((2, *self._event_shape), jnp.float32)
      context = None
      if context_shape is not None:
        context = jax.ShapeDtypeStruct((2, *context_shape), jnp.float32)
      tree = jax.eval_shape(self._init, jax.random.key(0), x, context)
      self._expected[context_shape] = _structure(tree)
    return self._expected[context_shape]

  def _matches(self, params: Any, context_shape: ContextShape) -> bool:
    return _structure(params) == self._expected_tree(context_shape)

  def check(self, where: str, params: Any, context_shape: ContextShape) -> None:
    """Raises ``ValueError`` if the call's context is not one ``init`` saw
    or ``params`` are not a tree this flow's ``init`` makes."""
    if self._seen and context_shape not in self._seen:
      expected = " or ".join(_context_text(s) for s in self._seen)
      raise ValueError(
        f"{where}: this flow was initialised with {expected}; got "
        f"{_context_text(context_shape)}. Pass the same kind of context "
        "to every call (context=None for an unconditional flow)."
      )
    if self._matches(params, context_shape):
      return
    if context_shape is not None and self._matches(params, None):
      raise ValueError(
        f"{where}: these params are this flow's without a context (an "
        f"unconditional flow); got {_context_text(context_shape)}. Drop "
        "context=."
      )
    hint = ""
    if context_shape is None and not self._seen:
      hint = (
        " If they belong to a class-conditional flow, pass the context "
        "(context=) it was initialised with."
      )
    difference = self._difference(params, context_shape)
    raise ValueError(
      f"{where}: params were not made by this flow's init for "
      f"{_context_text(context_shape)}: {difference}."
      f"{hint} Pass the params that this flow's init returned (or that "
      "were restored from its checkpoint)."
    )

  def _difference(self, params: Any, context_shape: ContextShape) -> str:
    treedef, shapes = self._expected_tree(context_shape)
    if params is None:
      return f"got None, expected a tree of {len(shapes)} arrays"
    given = jax.tree_util.tree_flatten_with_path(params)[0]
    if not given:
      return f"got {params!r}, expected a tree of {len(shapes)} arrays"
    paths = _paths(treedef, len(shapes))
    for i, (path, leaf) in enumerate(given):
      key = jax.tree_util.keystr(path)
      if i >= len(paths) or key != paths[i]:
        return (
          f"their tree differs at params{key} (a tree of {len(given)} "
          f"arrays, expected {len(shapes)})"
        )
      if tuple(jnp.shape(leaf)) != shapes[i]:
        return (
          f"params{key} has shape {tuple(jnp.shape(leaf))}, expected "
          f"{shapes[i]}"
        )
    if len(given) < len(paths):
      return (
        f"their tree has {len(given)} arrays, expected {len(shapes)} "
        f"(next expected: params{paths[len(given)]})"
      )
    # Same arrays under other containers (e.g. lists for tuples).
    return f"their tree is {jax.tree.structure(params)}, expected {treedef}"


def _paths(treedef: Any, count: int) -> list[str]:
  placeholders = jax.tree.unflatten(treedef, [0] * count)
  return [
    jax.tree_util.keystr(path)
    for path, _ in jax.tree_util.tree_flatten_with_path(placeholders)[0]
  ]


def params_dtype(params: Any, default: Any = jnp.float32) -> np.dtype:
  """The dtype of the floating leaves of ``params`` (``default`` if none)."""
  for leaf in jax.tree.leaves(params):
    dtype = _dtype(leaf)
    if jnp.issubdtype(dtype, jnp.floating):
      return dtype
  return np.dtype(default)


def cast_floating(params: Any, dtype: Any) -> Any:
  """``params`` with every floating leaf cast to ``dtype``."""

  def cast(leaf):
    if jnp.issubdtype(_dtype(leaf), jnp.floating):
      return jnp.asarray(leaf, dtype)
    return leaf

  return jax.tree.map(cast, params)
