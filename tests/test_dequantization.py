"""Variational dequantisation: q(u | x) is a density on [0, 1)^D whose
log-density matches a change of variables, the bound it gives is a bound.
A run trained with it, killed, resumed and evaluated (both bounds) is
test_train's kill-and-resume test."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax_gen import models, objectives
from flowjax_gen.training import config as config_lib
from flowjax_gen.training import tasks


def _perturbed(params, key, scale):
  """Params moved off their zero-initialised last layers (identity
  couplings would make every check trivial)."""
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(
    treedef,
    [
      leaf + scale * jax.random.normal(k, leaf.shape, leaf.dtype)
      for leaf, k in zip(leaves, keys, strict=True)
    ],
  )


def _tiny_dequantizer(shape=(4, 4, 1), **kwargs):
  kwargs = {"num_couplings": 2, "features": 4, "context_features": 3, **kwargs}
  return models.variational_dequantizer(shape, **kwargs)


def _grid(key, shape, n_bits, batch=2, dtype=jnp.float32):
  x_int = jax.random.randint(key, (batch, *shape), 0, 2**n_bits)
  return (x_int / 2**n_bits).astype(dtype)


@pytest.mark.parametrize("base", models.dequantization.BASES)
def test_log_q_is_a_change_of_variables(base):
  """log q(u | x) = log b(eps) - log|det du/deps|, with the determinant of
  the autodiff Jacobian of eps -> u, in float64."""
  with jax.enable_x64(True):
    shape = (4, 4, 1)
    dequantizer = _tiny_dequantizer(shape, base=base)
    x = _grid(jax.random.key(0), shape, 2, dtype=jnp.float64)
    params = _perturbed(
      dequantizer.init(jax.random.key(1), x), jax.random.key(2), 0.3
    )
    key = jax.random.key(3)
    u, log_q = dequantizer.sample(params, key, x)
    eps = dequantizer.flow.base.sample(
      key, jax.ShapeDtypeStruct(x.shape, x.dtype)
    )

    def u_of(eps_i, x_i):
      context = dequantizer.features(params, x_i[None])
      u_i, _ = dequantizer.flow.bijector.inverse_and_log_det(
        params["flow"], eps_i.reshape((1, *shape)), context
      )
      return u_i.reshape(-1)

    jacobian = jax.jit(jax.jacfwd(u_of))
    for i in range(len(x)):
      u_i = jax.jit(u_of)(eps[i].reshape(-1), x[i])
      np.testing.assert_allclose(u_i, np.asarray(u[i]).reshape(-1))
      sign, log_det = jnp.linalg.slogdet(jacobian(eps[i].reshape(-1), x[i]))
      assert sign == 1.0  # eps -> u is increasing along the flow
      log_base = dequantizer.flow.base.log_prob(eps[i][None])[0]
      np.testing.assert_allclose(log_q[i], log_base - log_det, rtol=1e-10)
    # The density of the draw, evaluated in the other direction.
    np.testing.assert_allclose(
      dequantizer.log_prob(params, u, x), log_q, rtol=1e-10
    )
    # The draws are not the uniform ones: q moved away from U[0, 1).
    assert np.all(np.abs(np.asarray(log_q)) > 1e-3)


def test_q_starts_uniform_with_the_logistic_base():
  dequantizer = _tiny_dequantizer()
  x = _grid(jax.random.key(0), (4, 4, 1), 3)
  params = dequantizer.init(jax.random.key(1), x)
  u, log_q = dequantizer.sample(params, jax.random.key(2), x)
  np.testing.assert_allclose(log_q, 0.0, atol=1e-4)
  u = np.asarray(u)
  assert np.all((u >= 0) & (u < 1))


def test_u_stays_below_one_where_the_sigmoid_saturates():
  """sigmoid(h) rounds to 1.0 in float32 for h > ~17; x + u must stay in
  the bin of x, so u is held just below 1."""
  dequantizer = _tiny_dequantizer()
  x = _grid(jax.random.key(0), (4, 4, 1), 3, batch=4)
  params = dequantizer.init(jax.random.key(1), x)
  # A shift of -40 in the last coupling's output layer: drawing runs its
  # inverse, (eps - t) / s, which lands the entries it moves far in the
  # sigmoid's upper tail.
  *rest, last = params["flow"]
  head = last["params"]["ZeroConv_0"]["Conv_0"]
  bias = head["bias"].at[: head["bias"].shape[0] // 2].set(-40.0)
  zero_conv = {**last["params"]["ZeroConv_0"], "Conv_0": {**head, "bias": bias}}
  last = {"params": {**last["params"], "ZeroConv_0": zero_conv}}
  params = {**params, "flow": (*rest, last)}
  u, log_q = dequantizer.sample(params, jax.random.key(2), x)
  u, log_q = np.asarray(u), np.asarray(log_q)
  assert np.all(np.isfinite(log_q))
  assert np.all((u >= 0) & (u < 1))
  assert np.sum(u == np.nextafter(np.float32(1), np.float32(0))) >= 16


def _log_mean_exp(values: np.ndarray) -> float:
  top = np.max(values)
  return float(top + np.log(np.mean(np.exp(values - top))))


def test_both_bounds_lie_above_the_discrete_nll():
  """For a small random flow on 2x2 images with 2-bit pixels, -log P(x) is
  estimated by importance sampling with many uniform draws,
  -log mean(p(x + u) / 2^(nD)) (biased upwards by a term that vanishes
  with the number of draws); the uniform and the variational bound,
  averaged over as many draws, must not lie below it."""
  with jax.enable_x64(True):
    shape, n_bits, draws = (2, 2, 1), 2, 20_000
    flow = models.glow(shape, levels=1, steps_per_level=2, hidden_channels=4)
    dequantizer = _tiny_dequantizer(shape)
    image = jnp.asarray([[[[64], [192]], [[255], [0]]]], jnp.uint8)
    grid = objectives.reduce_bits(image, n_bits) / 2**n_bits
    example = jax.random.uniform(jax.random.key(4), (16, *shape), grid.dtype)
    params = {
      "flow": flow.init(jax.random.key(0), example),
      "dequantizer": dequantizer.init(jax.random.key(1), grid),
    }
    params = _perturbed(params, jax.random.key(2), 0.2)
    batch = {"image": jnp.broadcast_to(image, (draws, *shape))}
    key_u, key_q = jax.random.split(jax.random.key(3))

    # Compiled: op by op, 20,000 draws through two flows take seconds.
    @jax.jit
    def bounds(params, batch):
      uniform = objectives.flow_bits_per_dim(
        flow.log_prob,
        params["flow"],
        batch,
        key_u,
        n_bits=n_bits,
        num_classes=None,
      )["nll_nats"]
      variational = objectives.flow_variational_bits_per_dim(
        flow.log_prob,
        dequantizer,
        params,
        batch,
        key_q,
        n_bits=n_bits,
        num_classes=None,
      )["nll_nats_variational"]
      return uniform, variational

    uniform, variational = bounds(params, batch)
    uniform, variational = np.asarray(uniform), np.asarray(variational)
    assert np.all(np.isfinite(uniform)) and np.all(np.isfinite(variational))
    nll = -_log_mean_exp(-uniform)  # importance sampling with U[0, 1)^D
    for bound in (uniform, variational):
      margin = 4 * bound.std() / math.sqrt(draws)
      assert bound.mean() + margin >= nll, (bound.mean(), nll)
    # The two bounds differ: q is not uniform.
    assert abs(variational.mean() - uniform.mean()) > 1e-3


def _random_pair(shape, n_bits, image):
  """A small perturbed Glow and dequantiser and the reduced grid of
  ``image``."""
  flow = models.glow(shape, levels=1, steps_per_level=2, hidden_channels=4)
  dequantizer = _tiny_dequantizer(shape)
  grid = objectives.reduce_bits(image, n_bits) / 2**n_bits
  example = jax.random.uniform(jax.random.key(4), (16, *shape), grid.dtype)
  params = {
    "flow": flow.init(jax.random.key(0), example),
    "dequantizer": dequantizer.init(jax.random.key(1), grid),
  }
  return flow, dequantizer, _perturbed(params, jax.random.key(2), 0.2)


def test_importance_weighted_bound_combines_its_draws():
  """The k-draw bound is -log mean_i exp(-nats_i) of the one-draw bounds
  with keys split(key, k)[i], per example; so it equals the one-draw bound
  at k = 1 and never exceeds the mean of its own draws (Jensen)."""
  with jax.enable_x64(True):
    shape, n_bits, k = (4, 4, 1), 3, 5
    rng = np.random.default_rng(0)
    image = jnp.asarray(rng.integers(0, 256, (3, *shape)), jnp.uint8)
    flow, dequantizer, params = _random_pair(shape, n_bits, image)
    batch, key = {"image": image}, jax.random.key(7)
    common = {"n_bits": n_bits, "num_classes": None}

    def one_draw(draw_key):
      return objectives.flow_variational_bits_per_dim(
        flow.log_prob, dequantizer, params, batch, draw_key, **common
      )

    def weighted(num_samples):
      return objectives.flow_importance_weighted_bits_per_dim(
        flow.log_prob,
        dequantizer,
        params,
        batch,
        key,
        num_samples=num_samples,
        **common,
      )

    draws = np.stack(
      [
        np.asarray(one_draw(draw_key)["nll_nats_variational"])
        for draw_key in jax.random.split(key, k)
      ]
    )
    assert np.all(np.isfinite(draws))
    out = weighted(k)
    expected = [-_log_mean_exp(-draws[:, i]) for i in range(len(image))]
    # The pixels, hence the figures, are float32.
    np.testing.assert_allclose(
      out["nll_nats_variational_iw"], expected, rtol=1e-6
    )
    np.testing.assert_allclose(
      out["bits_per_dim_variational_iw"],
      np.asarray(expected) / (16 * math.log(2)),
      rtol=1e-6,
    )
    # The draws differ by far more than rounding, and the bound lies below
    # their mean.
    assert np.all(draws.std(0) > 0.1), draws.std(0)
    assert np.all(np.asarray(out["nll_nats_variational_iw"]) < draws.mean(0))
    single = one_draw(jax.random.split(key, 1)[0])
    np.testing.assert_allclose(
      weighted(1)["bits_per_dim_variational_iw"],
      single["bits_per_dim_variational"],
      rtol=1e-6,
    )
    with pytest.raises(ValueError, match="num_samples"):
      weighted(0)


def test_importance_weighted_bound_closes_on_the_discrete_nll():
  """On 2x2 images with 2-bit pixels, where -log P(x) can be estimated
  closely (uniform importance sampling with 20,000 draws, as in
  test_both_bounds_lie_above_the_discrete_nll), the 64-draw bound
  averaged over 300 repeats lies above that estimate and much closer to it
  than the one-draw variational bound."""
  with jax.enable_x64(True):
    shape, n_bits, repeats = (2, 2, 1), 2, 300
    image = jnp.asarray([[[[64], [192]], [[255], [0]]]], jnp.uint8)
    flow, dequantizer, params = _random_pair(shape, n_bits, image)
    common = {"n_bits": n_bits, "num_classes": None}

    @jax.jit
    def figures(params):
      nll = -_log_mean_exp_jax(
        -objectives.flow_bits_per_dim(
          flow.log_prob,
          params["flow"],
          {"image": jnp.broadcast_to(image, (20_000, *shape))},
          jax.random.key(3),
          **common,
        )["nll_nats"]
      )
      batch = {"image": jnp.broadcast_to(image, (repeats, *shape))}
      one = objectives.flow_variational_bits_per_dim(
        flow.log_prob, dequantizer, params, batch, jax.random.key(5), **common
      )["nll_nats_variational"]
      weighted = objectives.flow_importance_weighted_bits_per_dim(
        flow.log_prob,
        dequantizer,
        params,
        batch,
        jax.random.key(6),
        num_samples=64,
        **common,
      )["nll_nats_variational_iw"]
      return nll, one, weighted

    nll, one, weighted = (np.asarray(a) for a in figures(params))
    assert np.all(np.isfinite(one)) and np.all(np.isfinite(weighted))
    margin = 4 * weighted.std() / math.sqrt(repeats)
    assert weighted.mean() + margin >= nll, (weighted.mean(), nll)
    gap_one, gap_weighted = one.mean() - nll, weighted.mean() - nll
    assert gap_one > 0.05, gap_one  # q is not the model's bin density
    assert gap_weighted < gap_one / 4, (gap_weighted, gap_one)


def _log_mean_exp_jax(values: jax.Array) -> jax.Array:
  return jax.nn.logsumexp(values) - math.log(values.shape[0])


def test_nested_flow_reads_its_entry():
  flow = models.glow((4, 4, 1), levels=1, steps_per_level=2, hidden_channels=4)
  x = jax.random.uniform(jax.random.key(0), (2, 4, 4, 1))
  params = _perturbed(flow.init(jax.random.key(1), x), jax.random.key(2), 0.1)
  nested = models.nested_flow(flow)
  both = {"flow": params, "dequantizer": {"w": jnp.ones(3)}}
  np.testing.assert_array_equal(
    nested.log_prob(both, x), flow.log_prob(params, x)
  )
  np.testing.assert_array_equal(
    nested.sample(both, jax.random.key(3), 2),
    flow.sample(params, jax.random.key(3), 2),
  )
  assert jax.tree.structure(nested.init(jax.random.key(1), x)) == (
    jax.tree.structure({"flow": params})
  )


def _variational_digits_config() -> dict:
  from configs import glow_digits  # noqa: PLC0415

  return glow_digits.get_config("smoke,variational").to_dict()


def test_a_few_training_steps_give_finite_bounds():
  """The flow task's objective and evaluation on params trained a few
  steps: both bounds finite, the variational one equal to its definition
  from log p and log q."""
  config = config_lib.with_defaults(_variational_digits_config())
  rng = np.random.default_rng(0)
  batch = {"image": (rng.integers(0, 17, (8, 8, 8, 1)) * 15).astype(np.uint8)}
  task = tasks.build_task(config, (8, 8, 1))
  params = jax.jit(task.init)(jax.random.key(0), batch)
  assert set(params) == {"flow", "dequantizer"}
  grad = jax.jit(jax.grad(lambda p, k: task.objective(p, batch, k)[0]))
  for step in range(3):
    g = grad(params, jax.random.key(10 + step))
    params = jax.tree.map(lambda p, d: p - 1e-3 * d, params, g)
  key = jax.random.key(4)
  out = jax.jit(task.per_example)(params, batch, key)
  for name in ("bits_per_dim", "bits_per_dim_variational"):
    assert np.all(np.isfinite(np.asarray(out[name]))), name
  x, context, log_q = objectives.variational_inputs(
    models.variational_dequantizer((8, 8, 1), **config["objective_kwargs"]),
    params["dequantizer"],
    batch,
    jax.random.fold_in(key, 1),
    n_bits=8,
    num_classes=None,
  )
  log_p = task.model.log_prob(params, x, context)
  expected = (-log_p + log_q) / (64 * math.log(2)) + 8
  np.testing.assert_allclose(
    out["bits_per_dim_variational"], expected, rtol=1e-5
  )
  assert "bits_per_dim_variational_iw" not in out

  # eval_kwargs.num_dequantization_samples adds the importance-weighted
  # bound, from draws of its own key; the other figures stay the same.
  weighted = tasks.build_task(
    {**config, "eval_kwargs": {"num_dequantization_samples": 3}}, (8, 8, 1)
  )
  out_weighted = jax.jit(weighted.per_example)(params, batch, key)
  for name, value in out.items():
    np.testing.assert_allclose(out_weighted[name], value, rtol=1e-6)
  draws = np.stack(
    [
      np.asarray(
        objectives.flow_variational_bits_per_dim(
          lambda flow_params, x, context: task.model.log_prob(
            {"flow": flow_params}, x, context
          ),
          models.variational_dequantizer(
            (8, 8, 1), **config["objective_kwargs"]
          ),
          params,
          batch,
          draw_key,
          n_bits=8,
          num_classes=None,
        )["nll_nats_variational"],
        np.float64,
      )
      for draw_key in jax.random.split(jax.random.fold_in(key, 2), 3)
    ]
  )
  expected = [-_log_mean_exp(-draws[:, i]) for i in range(len(draws[0]))]
  np.testing.assert_allclose(
    out_weighted["nll_nats_variational_iw"], expected, rtol=1e-5
  )


@pytest.mark.parametrize(
  "changes, message",
  [
    ({"dequantization": "gaussian"}, "config.dequantization"),
    ({"dequantization": "variational", "n_bits": 0}, "discrete data"),
    ({"objective_kwargs": {"features": 4}}, "config.objective_kwargs"),
    (
      {"eval_kwargs": {"num_dequantization_samples": 4}},
      "needs config.dequantization = 'variational'",
    ),
    (
      {
        "dequantization": "variational",
        "eval_kwargs": {"num_dequantization_samples": 0},
      },
      "config.eval_kwargs.num_dequantization_samples",
    ),
    (
      {
        "dequantization": "variational",
        "eval_kwargs": {"num_importance_samples": 4},
      },
      r"\['num_importance_samples'\] do not apply to a flow run",
    ),
  ],
)
def test_bad_dequantization_settings_name_the_field(changes, message):
  from configs import glow_digits  # noqa: PLC0415

  config = {**glow_digits.get_config("smoke").to_dict(), **changes}
  with pytest.raises(ValueError, match=message):
    config_lib.validate_config(config, num_devices=1, num_processes=1)


def test_the_other_families_refuse_the_flows_eval_option():
  from configs import vae_digits  # noqa: PLC0415

  config = vae_digits.get_config().to_dict()
  config_lib.validate_config(config, num_devices=1, num_processes=1)
  config["eval_kwargs"] = {"num_dequantization_samples": 4}
  with pytest.raises(ValueError, match="do not apply to a vae run"):
    config_lib.validate_config(config, num_devices=1, num_processes=1)


def test_runs_recorded_before_the_field_read_uniform():
  from configs import glow_digits  # noqa: PLC0415

  config = glow_digits.get_config("smoke").to_dict()
  del config["dequantization"]
  assert config_lib.with_defaults(config)["dequantization"] == "uniform"


def test_glow_mnist_variational_and_cpu_hour_variants_are_valid():
  from configs import glow_mnist  # noqa: PLC0415

  variants = (
    "variational",
    "variational,smoke",
    "cpu_hour,variational",
    "cpu_hour,variational,long",
    "cpu_hour,variational,batch64",
    "cpu_hour,variational,batch64,long",
    "cpu_hour,variational,large",
    "cpu_hour,variational,large,long",
    "cpu_hour,variational,xlarge",
    "cpu_hour,variational,xlarge,long",
  )
  for arg in variants:
    config = glow_mnist.get_config(arg).to_dict()
    config_lib.validate_config(config, num_devices=1, num_processes=1)
    assert config["dequantization"] == "variational"
    models.variational_dequantizer((28, 28, 1), **config["objective_kwargs"])
  with pytest.raises(ValueError, match="unknown config argument"):
    glow_mnist.get_config("variationl")

  def get(arg):
    return glow_mnist.get_config(arg).to_dict()

  # The variational hour is the uniform hour's flow and optimiser with a
  # dequantiser, fewer steps (a step costs more) and its own evaluations.
  uniform, hour = get("cpu_hour"), get("cpu_hour,variational")
  changed = {k for k in hour if hour[k] != uniform[k]}
  assert changed == {
    "dequantization",
    "objective_kwargs",
    "num_steps",
    "eval_every",
  }
  assert hour["num_steps"] < uniform["num_steps"]
  assert hour["num_steps"] % hour["eval_every"] == 0
  # 'long' triples the steps and halves the checkpoint interval, nothing
  # else, for every cpu_hour recipe.
  for recipe in (
    "cpu_hour",
    "cpu_hour,variational",
    "cpu_hour,batch64",
    "cpu_hour,variational,batch64",
    "cpu_hour,variational,large",
    "cpu_hour,variational,xlarge",
  ):
    short, long = get(recipe), get(recipe + ",long")
    assert long["num_steps"] == 3 * short["num_steps"]
    assert long["checkpoint_every"] == short["checkpoint_every"] // 2
    changed = {k for k in short if short[k] != long[k]}
    assert changed == {"num_steps", "checkpoint_every"}
  # The documented batch-64 runs (docs/results.md) keep the values they
  # were measured with.
  for arg, steps, eval_every in (
    ("cpu_hour,batch64", 16_500, 3_000),
    ("cpu_hour,variational,batch64", 11_500, 2_300),
  ):
    config = get(arg)
    assert config["batch_size"] == 64
    assert config["model_kwargs"]["steps_per_level"] == 8
    assert config["model_kwargs"]["hidden_channels"] == 64
    assert (config["num_steps"], config["eval_every"]) == (steps, eval_every)
    assert (config["checkpoint_every"], config["log_every"]) == (1_000, 100)
  assert get("cpu_hour,variational,batch64,long")["checkpoint_every"] == 500
  for arg in ("variational,long", "batch64", "variational,batch64"):
    with pytest.raises(ValueError, match="modifies a cpu_hour recipe"):
      glow_mnist.get_config(arg)
  # 'large' and 'xlarge' are the variational hour's recipe with a larger
  # flow and their own steps; each needs that recipe and excludes the other
  # flows.
  hour = get("cpu_hour,variational")
  for size, depth, width in (("large", 16, 96), ("xlarge", 32, 128)):
    sized = get(f"cpu_hour,variational,{size}")
    changed = {k for k in hour if hour[k] != sized[k]}
    assert changed == {"model_kwargs", "num_steps", "eval_every"}
    assert sized["model_kwargs"]["steps_per_level"] == depth
    assert sized["model_kwargs"]["hidden_channels"] == width
    assert sized["num_steps"] % sized["eval_every"] == 0
    for arg in (size, f"cpu_hour,{size}", f"variational,{size}"):
      with pytest.raises(ValueError, match=f"'{size}' modifies the variati"):
        glow_mnist.get_config(arg)
  for pair, message in (
    ("large,batch64", "'batch64' and 'large'"),
    ("xlarge,batch64", "'batch64' and 'xlarge'"),
    ("large,xlarge", "'large' and 'xlarge'"),
  ):
    with pytest.raises(ValueError, match=message):
      glow_mnist.get_config(f"cpu_hour,variational,{pair}")
