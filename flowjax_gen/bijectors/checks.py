"""The input contract of a bijector called directly, by shapes and dtypes.

Every public factory's bijector is wrapped by ``checked`` (``@checked`` on
the factory). After its ``init`` the bijector knows its event shape, the
structure of its params and, once it has run forwards, the event shape of
its outputs. A direct call then takes

* a batch, every leaf of shape ``(n,) + event_shape``, with a log-det of
  shape ``(n,)``, or
* a single event, every leaf of shape ``event_shape``, with a scalar
  log-det: the input is given a batch axis of one and the outputs lose it,
  so ``jax.vmap(lambda x: b.forward_and_log_det(p, x))(xs)`` works as with
  distrax and flowjax,

and refuses, with a ``ValueError`` that names the bijector, what it expected
and what it got: any other shape, integer or boolean values, and params
whose tree is not the one its ``init`` made.

The checks read shapes, dtypes and tree structures only, so under ``jit``
they run once, at trace time, and cost nothing in the compiled program.
They apply to the outermost call: members called by a combinator (``chain``,
``scan``, ``multiscale``, ``invert``, a flow) get batches the combinator has
already checked, and one bijector object may serve members of different
shapes (Glow's step at every level). A bijector whose ``init`` has not run
in this process (params restored from a checkpoint into a new object) takes
its inputs as batches, unchecked but for dtypes.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, Optional

import jax
import jax.numpy as jnp

from flowjax_gen.bijectors.base import Bijector, as_inputs

# Nesting depth of checked calls in this thread: only depth 0 checks.
_depth = threading.local()


def _nested() -> bool:
  return getattr(_depth, "value", 0) > 0


class _Outer:
  """Marks the body of an outermost call, so calls inside it skip checks."""

  def __enter__(self):
    _depth.value = getattr(_depth, "value", 0) + 1

  def __exit__(self, *exc_info):
    _depth.value -= 1


def _signature(tree: Any) -> tuple:
  """``(structure, per-leaf shapes without the batch axis)`` of a batch."""
  leaves, structure = jax.tree.flatten(tree)
  return structure, tuple(tuple(leaf.shape[1:]) for leaf in leaves)


def _describe(signature: tuple) -> str:
  shapes = signature[1]
  return str(shapes[0]) if len(shapes) == 1 else str(list(shapes))


def _shapes_of(tree: Any) -> str:
  shapes = [tuple(leaf.shape) for leaf in jax.tree.leaves(tree)]
  return str(shapes[0]) if len(shapes) == 1 else str(shapes)


def _param_paths(params: Any) -> list[str]:
  return [
    jax.tree_util.keystr(path)
    for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]
  ]


class _Record:
  """What a checked bijector learned at its last outermost ``init``."""

  def __init__(self):
    self.inputs: Optional[tuple] = None
    self.outputs: Optional[tuple] = None
    self.context_rank: Optional[int] = None
    self.param_paths: Optional[list[str]] = None
    # Shape structs of one example and its context, to trace the forward
    # when an inverse comes first.
    self.example: Optional[tuple] = None


def event_shape(bijector: Bijector) -> Optional[Any]:
  """The event shape the bijector's last ``init`` saw (a tuple, or a list
  of tuples for a pytree of inputs); ``None`` before ``init``."""
  record = getattr(bijector.init, "record", None)
  if record is None or record.inputs is None:
    return None
  shapes = record.inputs[1]
  return shapes[0] if len(shapes) == 1 else list(shapes)


def unchecked(bijector: Bijector) -> Bijector:
  """``bijector`` with the checks of this module skipped, for a caller
  that checks its inputs itself (a ``Flow`` checks events, contexts and
  params against its own contract, with messages in its own terms)."""

  def nested(function: Callable) -> Callable:
    @functools.wraps(function)
    def run(*args, **kwargs):
      with _Outer():
        return function(*args, **kwargs)

    return run

  update_stats = bijector.update_stats
  return Bijector(
    nested(bijector.init),
    nested(bijector.forward_and_log_det),
    nested(bijector.inverse_and_log_det),
    None if update_stats is None else nested(update_stats),
  )


def checked(factory: Callable[..., Bijector]) -> Callable[..., Bijector]:
  """Decorates a bijector factory so that its bijectors check direct
  calls (module docstring); the factory's name names them in errors."""

  @functools.wraps(factory)
  def make(*args, **kwargs) -> Bijector:
    return with_checks(factory.__name__, factory(*args, **kwargs))

  return make


def with_checks(name: str, bijector: Bijector) -> Bijector:
  """``bijector`` with the contract of the module docstring, errors
  naming it ``name``."""
  record = _Record()

  def check_dtype(where: str, tree: Any) -> None:
    for leaf in jax.tree.leaves(tree):
      dtype = jnp.result_type(leaf)
      if jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_:
        raise ValueError(
          f"{name}.{where}: the input has dtype {dtype}; bijectors act on "
          "real values (dequantise pixel levels first, e.g. "
          "objectives.dequantize(key, pixels, n_bits))."
        )

  def check_params(where: str, params: Any) -> None:
    # Compared by leaf paths, not tree structures: a checkpoint may restore
    # a tuple as a list or a FrozenDict as a dict.
    if record.param_paths is None:
      return
    given = _param_paths(params)
    if given == record.param_paths:
      return
    missing = [p for p in record.param_paths if p not in given]
    extra = [p for p in given if p not in record.param_paths]
    if params is None or not given:
      found = f"got {params!r}"
    elif missing:
      found = f"no leaf at {missing[0]}"
    elif extra:
      found = f"an unexpected leaf at {extra[0]}"
    else:
      found = f"a tree of another structure ({type(params).__name__})"
    raise ValueError(
      f"{name}.{where}: params were not made by this bijector's init: "
      f"{found}. Pass the params its init returned (or restored from a "
      "checkpoint of it)."
    )

  def expected_signature(forward: bool, params: Any) -> Optional[tuple]:
    if forward:
      return record.inputs
    if record.outputs is None and record.example is not None:
      # Inverse before any forward: the output shapes from one trace.
      x, context = record.example
      with _Outer():
        shape = jax.eval_shape(
          bijector.forward_and_log_det, params, x, context
        )[0]
      record.outputs = _signature(shape)
    return record.outputs

  def prepare(where: str, forward: bool, params, x, context):
    """``(x, context, single)``: the call as a batch, and whether it was a
    single event."""
    check_dtype(where, x)
    check_params(where, params)
    expected = expected_signature(forward, params)
    if expected is None:
      return x, context, False
    structure, shapes = expected
    leaves, given_structure = jax.tree.flatten(x)
    if given_structure == structure:
      if all(
        leaf.ndim == len(s) + 1 and tuple(leaf.shape[1:]) == s
        for leaf, s in zip(leaves, shapes, strict=True)
      ):
        return x, context, False
      if all(
        tuple(leaf.shape) == s for leaf, s in zip(leaves, shapes, strict=True)
      ):
        x = jax.tree.map(lambda a: a[None], x)
        if context is not None and (
          record.context_rank is None or jnp.ndim(context) < record.context_rank
        ):
          context = jax.tree.map(lambda c: c[None], context)
        return x, context, True
    event = _describe(expected)
    raise ValueError(
      f"{name}.{where}: the input has shape {_shapes_of(x)}; this bijector "
      f"was initialised for events of shape {event} and takes a batch "
      f"(n,) + {event} or one event {event}."
    )

  def init(key, x, context=None, **kwargs):
    if _nested():
      return bijector.init(key, x, context, **kwargs)
    check_dtype("init", x)
    leaves = jax.tree.leaves(x)
    if not leaves or any(jnp.ndim(leaf) < 1 for leaf in leaves):
      raise ValueError(
        f"{name}.init: the example must be a batch with a leading batch "
        f"axis; got shape {_shapes_of(x)}."
      )
    with _Outer():
      # Opaque, so a caller's program that runs the forward on them (one
      # jit of init and forward) computes with them as inputs (as_inputs).
      params = as_inputs(bijector.init(key, x, context, **kwargs))
    record.inputs = _signature(x)
    record.outputs = None
    record.context_rank = None if context is None else jnp.ndim(context)
    record.param_paths = _param_paths(params)
    record.example = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct((1,) + tuple(a.shape[1:]), a.dtype),
      (x, context),
    )
    return params

  def call(function, where: str, forward: bool):
    def run(params, x, context=None, **kwargs):
      if _nested():
        return function(params, x, context, **kwargs)
      x, context, single = prepare(where, forward, params, x, context)
      with _Outer():
        y, log_det = function(params, x, context, **kwargs)
      if forward and record.inputs is not None and record.outputs is None:
        record.outputs = _signature(y)
      if single:
        return jax.tree.map(lambda a: a[0], y), log_det[0]
      return y, log_det

    return run

  init.record = record  # pyright: ignore[reportFunctionMemberAccess]
  return Bijector(
    init,
    call(bijector.forward_and_log_det, "forward_and_log_det", True),
    call(bijector.inverse_and_log_det, "inverse_and_log_det", False),
    bijector.update_stats,
  )
