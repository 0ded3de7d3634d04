"""Backprop through ``scan(..., invertible_backprop=True)`` equals plain
backprop, in both directions, with less memory."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax_gen import bijectors as fb
from flowjax_gen.bijectors.base import Bijector, event_sum
from flowjax_gen.models import build_flow
from flowjax_gen.models.flows import glow_step

NUM_STEPS = 3
SHAPE = (2, 4, 4, 4)
CONTEXT_SIZE = 3
DIRECTIONS = ("forward_and_log_det", "inverse_and_log_det")
POLICY = jax.checkpoint_policies.dots_with_no_batch_dims_saveable

# These tests check values and XLA's buffer plan, neither of which depends on
# LLVM's optimisation of the generated code; skipping it halves compile time.
_jit = functools.partial(
  jax.jit, compiler_options={"xla_backend_optimization_level": 0}
)


def _random_params(bijector, x, context=None, *, seed=0, scale=0.1):
  """Random, non-identity params with the structure ``bijector.init``
  gives, made on the host: every float leaf ``scale * N(0, 1)``, except the
  LU 1x1 conv's fixed leaves (permutation matrices and signs). Only the
  structure is traced, so no init program is compiled."""
  shapes = jax.eval_shape(bijector.init, jax.random.key(0), x, context)
  rng = np.random.default_rng(seed)

  def leaf(path, shape):
    names = [getattr(k, "key", None) for k in path]
    if "permutation" in names:  # (steps, C, C) permutation matrices
      eye = np.eye(shape.shape[-1], dtype=shape.dtype)
      rows = [eye[rng.permutation(len(eye))] for _ in range(shape.shape[0])]
      return np.stack(rows)
    if "sign" in names:
      return rng.choice([-1.0, 1.0], shape.shape).astype(shape.dtype)
    return (scale * rng.standard_normal(shape.shape)).astype(shape.dtype)

  return jax.tree_util.tree_map_with_path(leaf, shapes)


def _to(tree, dtype):
  """Float leaves cast to ``dtype`` (call under ``enable_x64`` for float64)."""
  return jax.tree.map(
    lambda a: (
      jnp.asarray(a, dtype)
      if np.issubdtype(np.asarray(a).dtype, np.floating)
      else jnp.asarray(a)
    ),
    tree,
  )


def _max_abs(tree):
  return max(float(np.max(np.abs(a))) for a in jax.tree.leaves(tree))


def _relative_diff(a, b):
  """Largest leaf-wise ``max|a - b| / max|b|``; a leaf where ``b`` is zero
  (the LU's fixed leaves) must match exactly."""
  worst = 0.0
  for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    diff = float(np.max(np.abs(u - v)))
    scale = float(np.max(np.abs(v)))
    worst = max(worst, diff / scale if scale else (0.0 if diff == 0 else 1.0))
  return worst


def _step():
  return glow_step(hidden_channels=8, permutation="conv1x1_lu")


@functools.cache
def _inputs():
  """Random params of ``NUM_STEPS`` conditional Glow steps, inputs and a
  float context, as float32 numpy arrays."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal(SHAPE).astype(np.float32)
  context = rng.standard_normal((SHAPE[0], CONTEXT_SIZE)).astype(np.float32)
  params = _random_params(fb.scan(_step(), NUM_STEPS), x, context, seed=1)
  return params, x, context


@functools.cache
def _outputs_and_grads(option, direction, dtype):
  """``(y, log_det, grads)`` of a scan of conditional Glow steps; ``grads``
  are those of ``sum(y**2) + sum(log_det)`` w.r.t. ``(params, x, context)``.
  Cached so every test reuses the compiled programs."""
  kwargs = {
    "plain": {},
    "invertible": {"invertible_backprop": True},
    "policy": {"remat": POLICY},
  }[option]
  bijector = fb.scan(_step(), NUM_STEPS, **kwargs)

  @_jit
  def run(params, x, context):
    transform = getattr(bijector, direction)
    (y, log_det), vjp = jax.vjp(transform, params, x, context)
    grads = vjp((2 * y, jnp.ones_like(log_det)))
    return y, log_det, grads

  return run(*_to(_inputs(), dtype))


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_float64_gradients_equal_plain_scan(direction):
  with jax.enable_x64(True):
    y, log_det, grads = _outputs_and_grads("invertible", direction, "float64")
    y0, log_det0, grads0 = _outputs_and_grads("plain", direction, "float64")
    assert y.dtype == jnp.float64
    # Params, x and the float context all receive non-zero gradients.
    assert all(_max_abs(g) > 0 for g in grads0)
    assert _relative_diff(grads, grads0) < 1e-10
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(log_det, log_det0)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_float32_gradients_equal_plain_scan(direction):
  y, log_det, grads = _outputs_and_grads("invertible", direction, "float32")
  y0, log_det0, grads0 = _outputs_and_grads("plain", direction, "float32")
  assert y.dtype == jnp.float32
  assert _relative_diff(grads, grads0) < 1e-4
  # The same forward ops, but in two programs whose backward passes differ:
  # XLA may fuse the exp(tanh(h)) scale differently (a last-bit difference
  # in float32; float64 above stays bit-identical).
  np.testing.assert_allclose(y, y0, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(log_det, log_det0, rtol=1e-6)


def test_remat_policy_gradients_equal_plain_scan():
  y, _, grads = _outputs_and_grads("policy", DIRECTIONS[0], "float32")
  y0, _, grads0 = _outputs_and_grads("plain", DIRECTIONS[0], "float32")
  assert _relative_diff(grads, grads0) < 1e-5
  np.testing.assert_array_equal(y, y0)


def _index_permutation() -> Bijector:
  """``y = x[..., perm] * exp(w) + c @ v``: an integer params leaf (the
  permutation), float ones, and a context that may hold integers."""

  def init(key, x, context=None):
    del key, context
    channels = x.shape[-1]
    return {
      "perm": jnp.arange(channels)[::-1],
      "w": jnp.zeros(channels),
      "v": jnp.zeros(CONTEXT_SIZE),
    }

  def shift(params, context):
    if context is None:
      return 0.0
    return jnp.sum(context * params["v"], -1, keepdims=True)

  def log_det(params, x):
    return jnp.broadcast_to(event_sum(params["w"], 1), x.shape[:1])

  def forward(params, x, context=None):
    y = x[..., params["perm"]] * jnp.exp(params["w"]) + shift(params, context)
    return y, log_det(params, x)

  def inverse(params, y, context=None):
    x_perm = (y - shift(params, context)) * jnp.exp(-params["w"])
    x = jnp.zeros_like(y).at[..., params["perm"]].set(x_perm)
    return x, -log_det(params, y)

  return Bijector(init, forward, inverse)


@pytest.mark.parametrize("context_dtype", [np.int32, np.float32])
def test_integer_params_and_context_get_float0_cotangents(context_dtype):
  num_steps, channels = 4, 5
  rng = np.random.default_rng(4)
  x = rng.standard_normal((3, channels)).astype(np.float32)
  context = (rng.uniform(size=(3, CONTEXT_SIZE)) < 0.5).astype(context_dtype)
  params = {
    "perm": np.stack([rng.permutation(channels) for _ in range(num_steps)]),
    "w": 0.3 * rng.standard_normal((num_steps, channels)).astype(np.float32),
    "v": rng.standard_normal((num_steps, CONTEXT_SIZE)).astype(np.float32),
  }
  params["perm"] = params["perm"].astype(np.int32)
  grads = {}
  for invertible in (False, True):
    bijector = fb.scan(
      _index_permutation(), num_steps, invertible_backprop=invertible
    )

    @_jit
    def vjp_of(params, x, context, bijector=bijector):
      (y, log_det), vjp = jax.vjp(
        bijector.forward_and_log_det, params, x, context
      )
      return vjp((2 * y, jnp.ones_like(log_det)))

    grads[invertible] = vjp_of(params, x, context)
  (params_bar, x_bar, context_bar), expected = grads[True], grads[False]
  assert params_bar["perm"].dtype == jax.dtypes.float0
  assert params_bar["perm"].shape == params["perm"].shape
  if context_dtype == np.int32:
    assert context_bar.dtype == jax.dtypes.float0
  else:
    np.testing.assert_allclose(context_bar, expected[2], rtol=1e-5)
  for name in ("w", "v"):
    np.testing.assert_allclose(params_bar[name], expected[0][name], rtol=1e-5)
  np.testing.assert_allclose(x_bar, expected[1], rtol=1e-5)


@pytest.mark.parametrize("coupling", ["affine", "spline"])
def test_glow_model_log_prob_gradient_equals_plain(coupling):
  event_shape = (4, 4, 1)
  # The 1x1 convolutions are covered above; "reverse" keeps every random
  # params value valid. A spline step's input is rebuilt by its quadratic
  # root, an affine one's by a division.
  kwargs = {
    "levels": 2,
    "steps_per_level": 2,
    "hidden_channels": 8,
    "permutation": "reverse",
    "coupling": coupling,
  }
  x = np.random.default_rng(2).uniform(size=(2, *event_shape))
  flows = [
    # Through the registry, as a config's model_kwargs would be.
    build_flow("glow", event_shape, dict(kwargs, invertible_backprop=option))
    for option in (False, True)
  ]
  params = _random_params(flows[0], x.astype(np.float32), seed=3)
  with jax.enable_x64(True):
    grads = [
      _jit(jax.grad(lambda p, x, f=f: -jnp.mean(f.log_prob(p, x))))(
        *_to((params, x), "float64")
      )
      for f in flows
    ]
    assert _max_abs(grads[0]) > 0
    assert _relative_diff(grads[1], grads[0]) < 1e-10


def _grad_temp_bytes(num_steps, **kwargs):
  """Scratch memory XLA plans for the gradient program (compiled only)."""
  step = glow_step(hidden_channels=8, permutation="conv1x1_lu")
  bijector = fb.scan(step, num_steps, **kwargs)
  x = jax.ShapeDtypeStruct((8, 8, 8, 8), jnp.float32)
  params = jax.eval_shape(bijector.init, jax.random.key(0), x)

  def loss(params, x):
    y, log_det = bijector.forward_and_log_det(params, x)
    return jnp.sum(y**2) + jnp.sum(log_det)

  compiled = _jit(jax.grad(loss)).lower(params, x).compile()
  return compiled.memory_analysis().temp_size_in_bytes


def test_activation_memory_does_not_grow_with_depth():
  plain = [_grad_temp_bytes(k) for k in (4, 16)]
  invertible = [_grad_temp_bytes(k, invertible_backprop=True) for k in (4, 16)]
  # Plain backprop stores every step's activations: the test can fail.
  assert plain[1] > 2 * plain[0], plain
  assert invertible[1] <= 1.5 * invertible[0], invertible
  assert invertible[1] < plain[1]


def test_bad_arguments_raise():
  step = fb.chain(fb.actnorm(), fb.reverse())
  with pytest.raises(ValueError, match="remat must be a bool"):
    fb.scan(step, 2, remat="yes")
  with pytest.raises(ValueError, match="invertible_backprop must be a bool"):
    fb.scan(step, 2, invertible_backprop=1)
  with pytest.raises(ValueError, match="alternative"):
    fb.scan(step, 2, remat=True, invertible_backprop=True)
  with pytest.raises(ValueError, match="alternative"):
    fb.scan(step, 2, remat=POLICY, invertible_backprop=True)
  with pytest.raises(ValueError, match="alternative"):
    build_flow("glow", (8, 8, 1), {"remat": True, "invertible_backprop": True})
