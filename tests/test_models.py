"""Flow models: multi-scale encode/decode, sampling, batch-norm modes."""

from __future__ import annotations

import inspect
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from registry import perturb

from flowjax_gen import models
from flowjax_gen.bijectors import transformers
from flowjax_gen.training.config import CONFIG_VERSION, with_defaults


def test_glow_l3_k8_round_trip_float32_on_32x32x3():
  flow = models.glow(
    (32, 32, 3),
    levels=3,
    steps_per_level=8,
    hidden_channels=16,
    permutation="conv1x1_lu",
  )
  x = jax.random.uniform(jax.random.key(0), (4, 32, 32, 3))
  # Noise of 0.05 on every leaf of 24 steps (actnorm scales, 1x1 convs and
  # the zero-initialised output convs' exp(3 * logs) gains alike) made
  # latents of ~1e4 whose decoding overflowed to NaN, which jnp.max hid;
  # 0.02 keeps the flow well conditioned and non-trivial.
  params = perturb(
    jax.jit(flow.init)(jax.random.key(1), x), jax.random.key(2), scale=0.02
  )
  latents = jax.jit(flow.encode)(params, x)
  assert [z.shape for z in latents] == [
    (4, 16, 16, 6),
    (4, 8, 8, 12),
    (4, 4, 4, 48),
  ]
  x_back = np.asarray(jax.jit(flow.decode)(params, latents))
  assert np.isfinite(x_back).all()
  error = float(np.max(np.abs(x_back - np.asarray(x))))
  assert error < 1e-4, error
  # Perturbation made the zero-initialised layers act: the latents are not a
  # mere permutation of the (centred) input.
  assert (
    float(jnp.std(jnp.concatenate([z.reshape(4, -1) for z in latents], 1)))
    > 0.5
  )


def test_sampling_temperature_and_class_context():
  flow = models.glow((8, 8, 1), levels=2, steps_per_level=2, hidden_channels=8)
  x = jax.random.uniform(jax.random.key(0), (6, 8, 8, 1))
  context = jax.nn.one_hot(jnp.arange(6) % 3, 3)
  params = perturb(flow.init(jax.random.key(1), x, context), jax.random.key(2))
  sample = jax.jit(flow.sample, static_argnums=2)
  zero_t = [
    sample(params, jax.random.key(k), 6, temperature=0.0, context=context)
    for k in (3, 4)
  ]
  np.testing.assert_allclose(zero_t[0], zero_t[1])  # T = 0: the mode path
  warm = sample(params, jax.random.key(3), 6, temperature=1.0, context=context)
  assert warm.shape == (6, 8, 8, 1)
  assert float(np.max(np.abs(warm - zero_t[0]))) > 1e-2
  # Samples are decodes of base draws: encoding them gives those draws back,
  # so log_prob of a sample is finite.
  assert bool(jnp.all(jnp.isfinite(flow.log_prob(params, warm, context))))
  # The class changes the mode (the top prior and couplings read it).
  other = jax.nn.one_hot((jnp.arange(6) + 1) % 3, 3)
  shifted = sample(params, jax.random.key(3), 6, temperature=0.0, context=other)
  assert float(np.max(np.abs(shifted - zero_t[0]))) > 1e-4


def test_realnvp_batch_norm_training_and_evaluation_modes():
  kwargs = dict(levels=2, num_blocks=1, features=8)
  train = models.realnvp((8, 8, 1), use_running_average=False, **kwargs)
  evaluate = models.realnvp((8, 8, 1), **kwargs)
  x = jax.random.uniform(
    jax.random.key(0), (16, 8, 8, 1), minval=0.1, maxval=0.6
  )
  params = train.init(jax.random.key(1), x)
  # Right after init the running averages are the init batch's statistics,
  # so both modes agree on it.
  np.testing.assert_allclose(
    train.log_prob(params, x), evaluate.log_prob(params, x), rtol=1e-5
  )
  shifted = x * 0.5 + 0.3
  assert not np.allclose(
    train.log_prob(params, shifted),
    evaluate.log_prob(params, shifted),
    rtol=1e-3,
  )
  # One built flow serves both modes: the call-time mode overrides the
  # factory's default and gives the same numbers as the other build.
  for flow in (train, evaluate):
    np.testing.assert_array_equal(
      flow.log_prob(params, shifted, training=True),
      train.log_prob(params, shifted),
    )
    np.testing.assert_array_equal(
      flow.log_prob(params, shifted, training=False),
      evaluate.log_prob(params, shifted),
    )
  # update_stats follows the training activations whichever the default.
  jax.tree.map(
    np.testing.assert_array_equal,
    evaluate.update_stats(params, shifted),
    train.update_stats(params, shifted),
  )
  # update_stats moves every running mean toward the new batch's statistics.
  updated = train.update_stats(params, shifted)
  before = [
    a
    for a in jax.tree_util.tree_leaves_with_path(params)
    if "running_mean" in jax.tree_util.keystr(a[0])
  ]
  after = [
    a
    for a in jax.tree_util.tree_leaves_with_path(updated)
    if "running_mean" in jax.tree_util.keystr(a[0])
  ]
  assert len(before) == len(after) == 10  # 6 + 4 couplings
  assert any(
    not np.allclose(b[1], a[1]) for b, a in zip(before, after, strict=True)
  )
  gap_before = abs(
    float(
      jnp.mean(
        train.log_prob(params, shifted) - evaluate.log_prob(params, shifted)
      )
    )
  )
  gap_after = abs(
    float(
      jnp.mean(
        train.log_prob(updated, shifted) - evaluate.log_prob(updated, shifted)
      )
    )
  )
  assert gap_after < gap_before


def test_nice_defaults_follow_the_paper():
  flow = models.nice()
  x = jnp.zeros((2, 784))
  params = jax.eval_shape(flow.init, jax.random.key(0), x)
  couplings = params[:4]
  for coupling in couplings:
    kernels = [v["kernel"].shape for v in coupling["params"].values()]
    assert kernels == [(392, 1000)] + [(1000, 1000)] * 4 + [(1000, 392)]
  assert params[4]["log_scale"].shape == (784,)


def test_default_coupling_scale_is_bounded_in_both_directions():
  # Sampling runs the couplings' inverses, x = (y - t) / s; with Glow's
  # sigmoid(h + 2) a very negative h gives 1 / s ~ exp(-h), which overflowed
  # float32 within a few steps. exp(tanh(h)) keeps 1 / s within (1/e, e).
  h = jnp.array([-1e4, -50.0, -3.0, 0.0, 3.0, 50.0, 1e4])
  theta = (jnp.zeros_like(h), h)
  y = jnp.ones_like(h)
  default = inspect.signature(models.glow).parameters["scale_fn"].default
  x, log_deriv = transformers.affine(default).inverse(theta, y)
  x, log_deriv = np.asarray(x), np.asarray(log_deriv)
  assert np.isfinite(x).all()
  assert (np.abs(x) <= np.e * (1 + 1e-6)).all(), x
  np.testing.assert_allclose(np.log(x), log_deriv, rtol=1e-6, atol=1e-6)
  x_sigmoid, _ = transformers.affine("sigmoid").inverse(theta, y)
  assert float(x_sigmoid[1]) > 1e20


def test_configs_saved_before_version_2_rebuild_the_sigmoid_scale():
  old = {"model": "glow", "model_kwargs": {"levels": 2}}
  migrated = with_defaults(old)
  assert migrated["model_kwargs"] == {"levels": 2, "scale_fn": "sigmoid"}
  assert migrated["config_version"] == CONFIG_VERSION
  chosen = {"model": "glow", "model_kwargs": {"scale_fn": "exp_tanh"}}
  assert with_defaults(chosen)["model_kwargs"]["scale_fn"] == "exp_tanh"
  current = {"model": "glow", "model_kwargs": {}, "config_version": 2}
  assert "scale_fn" not in with_defaults(current)["model_kwargs"]
  other = {"model": "realnvp", "model_kwargs": {}}
  assert "scale_fn" not in with_defaults(other)["model_kwargs"]


def test_flowpp_configs_saved_before_version_3_rebuild_the_3x3_gate():
  """Every flowpp run before ``gate_kernel_size`` had a 3x3 gate
  convolution; its recorded config must rebuild that net (its checkpoint
  holds 3x3 kernels), while a current config keeps the factory default."""
  old = {
    "model": "flowpp",
    "model_kwargs": {"features": 32},
    "config_version": 2,
  }
  migrated = with_defaults(old)
  assert migrated["model_kwargs"] == {"features": 32, "gate_kernel_size": 3}
  assert migrated["config_version"] == CONFIG_VERSION == 3
  chosen = {"model": "flowpp", "model_kwargs": {"gate_kernel_size": 1}}
  assert with_defaults(chosen)["model_kwargs"]["gate_kernel_size"] == 1
  current = {"model": "flowpp", "model_kwargs": {}, "config_version": 3}
  assert "gate_kernel_size" not in with_defaults(current)["model_kwargs"]
  glow = {"model": "glow", "model_kwargs": {}, "config_version": 2}
  assert "gate_kernel_size" not in with_defaults(glow)["model_kwargs"]


def test_glow_spline_coupling_settings():
  """coupling="spline" gives each coupling network 3 K - 1 outputs per
  transformed channel (K = 8 by default); bin settings are refused for the
  couplings that have no bins, and bad ones name the field."""
  x = jnp.zeros((2, 8, 8, 1))

  def zero_conv_kernels(**kwargs):
    flow = models.glow(
      (8, 8, 1), levels=1, steps_per_level=1, hidden_channels=4, **kwargs
    )
    params = jax.eval_shape(flow.init, jax.random.key(0), x)
    return [
      leaf.shape
      for path, leaf in jax.tree_util.tree_leaves_with_path(params)
      if "ZeroConv" in jax.tree_util.keystr(path)
      and "kernel" in jax.tree_util.keystr(path)
    ]

  # After the squeeze, 4 channels: 2 condition the other 2.
  assert zero_conv_kernels() == [(1, 3, 3, 4, 2 * 2)]
  assert zero_conv_kernels(coupling="spline") == [(1, 3, 3, 4, 23 * 2)]
  assert zero_conv_kernels(coupling="spline", num_bins=3) == [
    (1, 3, 3, 4, 8 * 2)
  ]
  assert zero_conv_kernels(coupling="spline", num_bins=8, bound=4.0) == (
    zero_conv_kernels(coupling="spline")
  )
  for kwargs in ({"num_bins": 4}, {"bound": 2.0}):
    with np.testing.assert_raises_regex(ValueError, "coupling='spline'"):
      models.glow((8, 8, 1), **kwargs)
  with np.testing.assert_raises_regex(ValueError, "num_bins"):
    models.glow((8, 8, 1), coupling="spline", num_bins=0)
  with np.testing.assert_raises_regex(ValueError, "bound"):
    models.glow((8, 8, 1), coupling="spline", bound=-1.0)


FLOW_FACTORIES = {
  "nice": lambda: models.nice((64,), hidden_features=(16,)),
  "realnvp": lambda: models.realnvp(
    (8, 8, 1), levels=2, num_blocks=1, features=8
  ),
  "glow": lambda: models.glow(
    (8, 8, 1), levels=2, steps_per_level=2, hidden_channels=8
  ),
  "glow_spline": lambda: models.glow(
    (8, 8, 1),
    levels=1,
    steps_per_level=2,
    hidden_channels=8,
    coupling="spline",
  ),
  "nsf": lambda: models.nsf((64,), hidden_features=(16,)),
  "maf": lambda: models.maf((64,), hidden_features=(16,)),
}


@pytest.mark.parametrize("name", sorted(FLOW_FACTORIES))
def test_log_density_of_an_example_does_not_depend_on_its_batch(name):
  """RealNVP's batch norm once scored two examples [-1.158, -0.750] in a
  batch of 64 and [-1.014, -0.785] on their own; by default every flow
  uses running statistics, and only ``training=True`` the batch's."""
  flow = FLOW_FACTORIES[name]()
  shape = (64, *flow.event_shape)
  x = jax.random.uniform(jax.random.key(0), shape, minval=0.05, maxval=0.95)
  params = perturb(jax.jit(flow.init)(jax.random.key(1), x), jax.random.key(2))
  shifted = x * 0.8 + 0.1  # other statistics than the init batch's
  log_prob = jax.jit(flow.log_prob)
  np.testing.assert_allclose(
    np.asarray(log_prob(params, shifted[:2])),
    np.asarray(log_prob(params, shifted))[:2],
    rtol=1e-5,
    atol=1e-4,
  )


def test_one_set_of_safe_defaults():
  """Every coupling and factory defaults to the bounded exp(tanh) scale,
  and every spline to one bound."""
  from flowjax_gen import bijectors as fb  # noqa: PLC0415
  from flowjax_gen.bijectors.spline import DEFAULT_BOUND  # noqa: PLC0415
  from flowjax_gen.models.flows import GLOW_SPLINE_DEFAULTS  # noqa: PLC0415

  def default(factory, name):
    return inspect.signature(factory).parameters[name].default

  for factory in (
    fb.affine_coupling,
    fb.masked_autoregressive,
    models.glow,
    models.realnvp,
    models.maf,
    models.variational_dequantizer,
  ):
    assert default(factory, "scale_fn") == "exp_tanh", factory.__name__
  for factory in (
    fb.rational_quadratic_spline,
    fb.spline_coupling,
    fb.masked_autoregressive,
    models.nsf,
    models.maf,
  ):
    assert default(factory, "bound") == DEFAULT_BOUND, factory.__name__
  assert GLOW_SPLINE_DEFAULTS["bound"] == DEFAULT_BOUND


def test_an_eager_flow_compiles_its_init_and_log_prob_whole(caplog):
  """Called eagerly, ``Flow.init`` and ``log_prob`` run as one program each
  (plus the key's seeding), not one per primitive: a data-dependent init
  compiled op by op took most of the 8 s to a tiny Glow's first log-prob."""
  # Shapes no other test uses: no eager primitive is compiled already.
  flow = models.glow((8, 8, 1), levels=2, steps_per_level=2, hidden_channels=5)
  x = np.random.default_rng(0).uniform(size=(3, 8, 8, 1)).astype(np.float32)
  with caplog.at_level(logging.WARNING, logger="jax"), jax.log_compiles():
    params = flow.init(jax.random.key(0), x)
    log_prob = np.asarray(flow.log_prob(params, x))
  compiled = [r for r in caplog.records if "Compiling" in r.getMessage()]
  assert np.all(np.isfinite(log_prob))
  assert len(compiled) <= 4, [r.getMessage()[:60] for r in compiled]
  # On the CPU the eager init is compiled at XLA's lowest optimisation
  # level; its params are the traced init's up to float32 rounding.
  traced = jax.jit(flow.init)(jax.random.key(0), x)
  for eager_leaf, traced_leaf in zip(
    jax.tree.leaves(params), jax.tree.leaves(traced), strict=True
  ):
    np.testing.assert_allclose(eager_leaf, traced_leaf, rtol=1e-5, atol=1e-6)
