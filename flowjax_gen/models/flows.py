"""Flow models: a bijector onto latents plus a fixed base density.

``make_flow(bijector, base, event_shape)`` turns any bijector (data ->
latents, possibly a tuple of multi-scale latents) into a model with::

    log p(x | c) = log base(f(x; c)) + log|det df/dx|

and ``nice``, ``realnvp`` and ``glow`` build the papers' architectures. Data
enters every model as continuous values in ``[0, 1)`` (dequantised pixels
divided by ``2 ** n_bits``); each model's first layers map that range to the
one its paper used (``preprocess``), and their log-dets are part of
``log_prob``, so ``objectives.bits_per_dim`` compares with the papers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

from flowjax_gen import distributions
from flowjax_gen._checks import check_choice, check_positive_int
from flowjax_gen.bijectors import (
  Bijector,
  actnorm,
  additive_coupling,
  affine_coupling,
  batch_norm,
  chain,
  conv1x1,
  conv1x1_lu,
  gaussian_split_prior,
  learned_prior,
  logit,
  multiscale,
  reshape,
  reverse,
  scale,
  scan,
  shift,
  shuffle,
  spline_coupling,
  squeeze,
)
from flowjax_gen.bijectors.base import forward_in_mode
from flowjax_gen.bijectors.checks import unchecked
from flowjax_gen.bijectors.spline import DEFAULT_BOUND, check_spline_args
from flowjax_gen.models.contract import (
  ParamsContract,
  cast_floating,
  check_context,
  check_events,
  check_finite,
  check_latents,
  params_dtype,
)
from flowjax_gen.nets.conditioners import MLP, GlowConvNet, ResNet
from flowjax_gen.typing import compute_dtype_of

PREPROCESSING = ("center", "logit", "none")
PERMUTATIONS = ("conv1x1", "conv1x1_lu", "reverse", "shuffle")
COUPLINGS = ("affine", "additive", "spline")
# What glow(..., num_bins=None, bound=None) uses. Its spline couplings act after
# actnorm, whose data-dependent init gives unit variance per channel: most
# entries lie inside [-4, 4].
GLOW_SPLINE_DEFAULTS = {"num_bins": 8, "bound": DEFAULT_BOUND}


class Flow(NamedTuple):
  """A normalising-flow model; every function is pure over ``params``.

  Every function checks its inputs before any compute and raises
  ``ValueError`` saying what it got and what to pass (``models.contract``):
  ``x`` is a floating batch of ``event_shape`` events (dequantise integer
  pixels first), ``context`` a floating array with one row per example, of
  a shape ``init`` saw, and ``params`` the tree this flow's ``init`` makes.

  Attributes:
    init: ``(key, x_example, context=None) -> params`` (data-dependent; the
      batch must be finite). Params come out in one dtype, the data's (at
      least float32).
    log_prob: ``(params, x, context=None, *, training=None) -> (batch,)``
      exact log density of ``x`` in ``[0, 1)^event_shape``. ``training``
      chooses the mode of batch-norm layers (``True``: batch statistics, as
      in training; ``False``: running averages; ``None``: the factory's
      default); flows without them ignore it.
    encode: ``(params, x, context=None) -> latents``: every latent (a tuple,
      finest level first, for multi-scale flows), whitened so that each is
      standard under the base density.
    decode: ``(params, latents, context=None) -> x``, the exact inverse.
    sample: ``(params, key, n, *, temperature=1.0, context=None) -> x`` in
      the params' dtype; a conditional flow takes ``n`` context rows.
    update_stats: ``(params, x, context=None) -> params`` for flows with
      batch-norm layers (running averages), else ``None``.
    event_shape: shape of one example.
    bijector: the underlying data -> latents bijector.
    base: the base density of the latents.
  """

  init: Callable[..., Any]
  log_prob: Callable[..., jax.Array]
  encode: Callable[..., Any]
  decode: Callable[..., jax.Array]
  sample: Callable[..., jax.Array]
  update_stats: Optional[Callable[..., Any]]
  event_shape: tuple[int, ...]
  bijector: Bijector
  base: distributions.Distribution


def _concrete(*trees) -> bool:
  """Whether no leaf is a tracer: the call is eager."""
  return not any(isinstance(leaf, Tracer) for leaf in jax.tree.leaves(trees))


# ``init`` runs once per model, so its eager program is compiled for compile
# time, not run time: on the CPU, XLA's backend at optimisation level 0
# compiles a tiny Glow's init in under half the time (1.15 s against 2.8 s
# on 2 idle cores) and runs it in the same 10 ms; its params differ from
# the default level's in the last bits of a float32 (docs/performance.md,
# "Time to first log-prob"). Other platforms keep XLA's defaults: there it
# was not measured.
_INIT_COMPILER_OPTIONS = {"cpu": {"xla_backend_optimization_level": 0}}


def make_flow(
  bijector: Bijector,
  event_shape: Sequence[int],
  *,
  base: Optional[distributions.Distribution] = None,
) -> Flow:
  """Wraps a data -> latent ``bijector`` and a base density into a ``Flow``.

  Every call checks its inputs first (``models.contract``): floating data
  of ``event_shape``, a floating context with one row per example and of a
  shape ``init`` saw, params of the tree this flow's ``init`` makes, and a
  finite ``init`` batch. ``init`` returns params of one dtype, the data's
  (at least float32), and ``sample`` draws in the params' dtype, so a
  float64 flow (``jax_enable_x64``) stays float64 end to end.

  Args:
    bijector: maps a batch of events to latents (an array or a tuple).
    event_shape: shape of one example, checked on every call.
    base: base density of the latents; standard normal by default.
  """
  event_shape = tuple(int(d) for d in event_shape)
  base = base or distributions.standard_normal()
  given = bijector
  # The flow checks every call itself (below), in its own terms.
  bijector = unchecked(bijector)
  contract = ParamsContract(bijector.init, event_shape)

  def checked(where, params, x, context):
    check_events(where, x, event_shape)
    context_shape = check_context(where, context, jnp.shape(x)[0])
    contract.check(where, params, context_shape)

  # Called eagerly, ``init`` and ``log_prob`` compile their computation
  # whole, once per flow and shape: op by op, a data-dependent init would
  # compile each of its primitives as a program of its own (58 programs,
  # 6 s of a tiny Glow's 7 s to its first log-prob). Traced (inside a
  # caller's ``jit``, ``grad`` or ``vmap``) they run the plain functions,
  # so the caller's program is what it would be without this. The checks
  # stay outside, on the values given.
  def init_computation(key, x, context):
    params = bijector.init(key, x, context)
    # One dtype for every leaf: Flax keeps float32 kernels and some
    # initialisers follow the x64 default, whatever the data are; the
    # data's precision (at least float32) is what the flow computes in.
    dtype = jax.dtypes.canonicalize_dtype(
      jnp.promote_types(jnp.result_type(x), jnp.float32)
    )
    return cast_floating(params, dtype)

  def log_prob_computation(params, x, context, training):
    latents, log_det = forward_in_mode(bijector, params, x, context, training)
    return base.log_prob(latents) + log_det

  @functools.cache
  def compiled_init(platform):
    options = _INIT_COMPILER_OPTIONS.get(platform)
    return jax.jit(init_computation, compiler_options=options)

  compiled_log_prob = jax.jit(log_prob_computation, static_argnames="training")

  def init(key, x, context=None):
    check_events("Flow.init", x, event_shape)
    context_shape = check_context("Flow.init", context, jnp.shape(x)[0])
    check_finite("Flow.init", "x", x)
    check_finite("Flow.init", "context", context)
    if _concrete(key, x, context):
      run = compiled_init(jax.default_backend())
    else:
      run = init_computation
    params = run(key, x, context)
    contract.record(context_shape, params)
    return params

  def encode(params, x, context=None):
    checked("Flow.encode", params, x, context)
    return bijector.forward_and_log_det(params, x, context)[0]

  def log_prob(params, x, context=None, *, training=None):
    checked("Flow.log_prob", params, x, context)
    if _concrete(params, x, context):
      return compiled_log_prob(params, x, context, training=training)
    return log_prob_computation(params, x, context, training)

  def unchecked_decode(params, latents, context):
    return bijector.inverse_and_log_det(params, latents, context)[0]

  def decode(params, latents, context=None):
    batch = check_latents("Flow.decode", latents)
    context_shape = check_context("Flow.decode", context, batch)
    contract.check("Flow.decode", params, context_shape)
    return unchecked_decode(params, latents, context)

  def sample(params, key, n, *, temperature=1.0, context=None):
    check_positive_int("n", n)
    context_shape = check_context("Flow.sample", context, n)
    contract.check("Flow.sample", params, context_shape)
    # The latents' shapes (and dtype) are those encode gives a batch of n
    # events in the params' precision; tracing costs no compute.
    example = jax.ShapeDtypeStruct((n,) + event_shape, params_dtype(params))
    shapes = jax.eval_shape(
      lambda p, x, c: bijector.forward_and_log_det(p, x, c)[0],
      params,
      example,
      context,
    )
    latents = base.sample(key, shapes, temperature)
    return unchecked_decode(params, latents, context)

  update_stats = None
  bijector_update_stats = bijector.update_stats
  if bijector_update_stats is not None:

    def checked_update_stats(params, x, context=None):
      checked("Flow.update_stats", params, x, context)
      return bijector_update_stats(params, x, context)

    update_stats = checked_update_stats

  return Flow(
    init,
    log_prob,
    encode,
    decode,
    sample,
    update_stats,
    event_shape,
    given,
    base,
  )


def _preprocess(kind: str, alpha: float) -> Sequence[Bijector]:
  check_choice("preprocess", kind, PREPROCESSING)
  if kind == "center":
    return (shift(-0.5),)
  if kind == "logit":
    return (logit(alpha),)
  return ()


def _image_shape(
  event_shape: Sequence[int], levels: int, squeezes: int, rule: str
) -> tuple[int, ...]:
  check_positive_int("levels", levels)
  shape = tuple(int(d) for d in event_shape)
  if len(shape) != 3 or min(shape) < 1:
    raise ValueError(
      f"event_shape must be (height, width, channels); got "
      f"{tuple(event_shape)!r}."
    )
  factor = 2**squeezes
  if shape[0] % factor or shape[1] % factor:
    raise ValueError(
      f"height and width must be divisible by {rule} = "
      f"{factor} (levels={levels}); got event_shape {shape}."
    )
  return shape


def nice(
  event_shape: Sequence[int] = (784,),
  *,
  num_couplings: int = 4,
  hidden_features: Sequence[int] = (1000,) * 5,
  prior: str = "logistic",
  compute_dtype: Optional[str] = None,
) -> Flow:
  """NICE (Dinh, Krueger & Bengio 2014) for flattened images or vectors.

  Defaults are the paper's MNIST model (§5.1): 4 additive couplings with
  alternating odd/even partitions, each conditioner a 5 x 1000 ReLU MLP, a
  learned diagonal scaling last, and a standard logistic prior. Images are
  flattened first. The paper reports 1980.50 nats (~4.36 bits/dim) on MNIST.

  Args:
    event_shape: shape of one example; its size must be even.
    num_couplings: number of additive couplings (paper: 4).
    hidden_features: MLP hidden widths (paper: five layers of 1000).
    prior: ``"logistic"`` (paper) or ``"normal"``.
    compute_dtype: what its networks compute in, ``"float32"`` (``None``:
      the data's precision) or ``"bfloat16"`` (``typing.COMPUTE_DTYPES``);
      params, log-determinants, priors and likelihoods stay in the data's
      precision.
  """
  check_positive_int("num_couplings", num_couplings)
  dtype = compute_dtype_of(compute_dtype)
  check_choice("prior", prior, ("logistic", "normal"))
  event_shape = tuple(int(d) for d in event_shape)
  size = int(np.prod(event_shape))
  if size % 2:
    raise ValueError(
      f"NICE splits the features in halves: the event size "
      f"must be even; got event_shape {event_shape} ({size})."
    )
  make_mlp = functools.partial(MLP, hidden_features=tuple(hidden_features))
  layers = [] if len(event_shape) == 1 else [reshape(event_shape, (size,))]
  layers += [
    additive_coupling(
      make_mlp, mask="alternating", parity=i % 2, compute_dtype=dtype
    )
    for i in range(num_couplings)
  ]
  layers.append(scale())
  base = (
    distributions.standard_logistic()
    if prior == "logistic"
    else distributions.standard_normal()
  )
  return make_flow(chain(*layers), event_shape, base=base)


def realnvp(
  event_shape: Sequence[int],
  *,
  levels: int = 3,
  num_blocks: int = 8,
  features: int = 64,
  scale_fn: str = "exp_tanh",
  use_batch_norm: bool = True,
  use_running_average: bool = True,
  preprocess: str = "logit",
  alpha: float = 0.05,
  compute_dtype: Optional[str] = None,
) -> Flow:
  """RealNVP (Dinh, Sohl-Dickstein & Bengio 2017), multi-scale.

  Each level but the last: 3 affine couplings with alternating checkerboard
  masks, a squeeze, 3 affine couplings with alternating channel masks, then
  half the channels are factored out; the last level is 4 checkerboard
  couplings (§3.6). The other defaults are the paper's CIFAR-10 model
  (§4.1: ResNet conditioners of 8 blocks x 64 features, logit
  pre-processing with ``alpha = 0.05``, batch-norm bijectors after
  couplings; 3.49 bits/dim), which downscales only once: ``levels = 2``
  (``experiments/configs/realnvp_cifar10.py``; the default of 3 is kept so
  that runs recorded without ``levels`` rebuild the same model). The number
  of levels is counted as squeezes plus one.

  Args:
    event_shape: ``(H, W, C)`` with ``H, W`` divisible by ``2**(levels-1)``.
    levels: number of scales (>= 1).
    num_blocks: residual blocks per conditioner.
    features: conditioner width.
    scale_fn: coupling scale function (see ``bijectors.coupling``).
    use_batch_norm: add a batch-norm bijector after every coupling.
    use_running_average: the batch-norm mode of calls that do not choose:
      ``True`` (running averages: densities independent of the batch) or
      ``False`` (batch statistics); ``log_prob(..., training=True)``, as
      the training objective calls it, uses batch statistics either way.
    preprocess: ``"logit"`` (paper), ``"center"`` or ``"none"``.
    alpha: logit boundary margin.
    compute_dtype: what its networks compute in, ``"float32"`` (``None``:
      the data's precision) or ``"bfloat16"`` (``typing.COMPUTE_DTYPES``);
      params, log-determinants, priors and likelihoods stay in the data's
      precision.
  """
  _image_shape(event_shape, levels, levels - 1, "2**(levels - 1)")
  dtype = compute_dtype_of(compute_dtype)
  make_net = functools.partial(ResNet, num_blocks=num_blocks, features=features)

  def couplings(mask, count):
    layers = []
    for i in range(count):
      layers.append(
        affine_coupling(
          make_net,
          mask=mask,
          parity=i % 2,
          scale_fn=scale_fn,
          compute_dtype=dtype,
        )
      )
      if use_batch_norm:
        layers.append(batch_norm(use_running_average=use_running_average))
    return layers

  stages = []
  for level in range(levels):
    if level < levels - 1:
      stages.append(
        chain(*couplings("checkerboard", 3), squeeze(), *couplings("half", 3))
      )
    else:
      stages.append(chain(*couplings("checkerboard", 4)))
  body = multiscale(stages)
  pre = _preprocess(preprocess, alpha)
  return make_flow(_prepend(pre, body), event_shape)


def _prepend(pre: Sequence[Bijector], body: Bijector) -> Bijector:
  return chain(*pre, body) if pre else body


def _spline_settings(
  coupling: str, num_bins: Optional[int], bound: Optional[float]
) -> dict:
  """``num_bins`` and ``bound`` of Glow's spline couplings, ``None``
  taking ``GLOW_SPLINE_DEFAULTS``. The other couplings have no bins: a
  value given for them is refused rather than ignored."""
  given = {
    name: value
    for name, value in (("num_bins", num_bins), ("bound", bound))
    if value is not None
  }
  if coupling != "spline":
    if given:
      raise ValueError(
        f"{' and '.join(given)} set the bins of spline couplings; this "
        f"Glow's coupling is {coupling!r}. Pass coupling='spline' or leave "
        "them out."
      )
    return {}
  settings = {**GLOW_SPLINE_DEFAULTS, **given}
  settings["bound"] = check_spline_args(settings["num_bins"], settings["bound"])
  return settings


def glow_step(
  *,
  hidden_channels: int = 512,
  coupling: str = "affine",
  permutation: str = "conv1x1",
  scale_fn: str = "exp_tanh",
  seed: int = 0,
  num_bins: Optional[int] = None,
  bound: Optional[float] = None,
  compute_dtype: Optional[str] = None,
) -> Bijector:
  """One step of flow: actnorm -> permutation -> coupling (Glow, Fig. 2a).

  ``coupling="spline"`` swaps the affine map of the transformed half for a
  rational-quadratic spline per entry (``num_bins`` bins on ``[-bound,
  bound]``, identity outside; Durkan et al. 2019's Glow-like image flows);
  its coupling network then outputs ``3 num_bins - 1`` values per
  transformed entry instead of 2.
  """
  check_choice("coupling", coupling, COUPLINGS)
  check_choice("permutation", permutation, PERMUTATIONS)
  check_positive_int("hidden_channels", hidden_channels)
  spline = _spline_settings(coupling, num_bins, bound)
  dtype = compute_dtype_of(compute_dtype)
  permute = {
    "conv1x1": conv1x1,
    "conv1x1_lu": conv1x1_lu,
    "reverse": reverse,
    "shuffle": functools.partial(shuffle, seed),
  }[permutation]()
  make_net = functools.partial(GlowConvNet, hidden_channels=hidden_channels)
  if coupling == "affine":
    couple = affine_coupling(
      make_net, mask="half", scale_fn=scale_fn, compute_dtype=dtype
    )
  elif coupling == "spline":
    couple = spline_coupling(
      make_net, mask="half", compute_dtype=dtype, **spline
    )
  else:
    couple = additive_coupling(make_net, mask="half", compute_dtype=dtype)
  return chain(actnorm(), permute, couple)


def glow(
  event_shape: Sequence[int],
  *,
  levels: int = 3,
  steps_per_level: int = 32,
  hidden_channels: int = 512,
  coupling: str = "affine",
  permutation: str = "conv1x1",
  scale_fn: str = "exp_tanh",
  split_prior: bool = True,
  learn_top: bool = True,
  preprocess: str = "center",
  remat: Union[bool, Callable[..., Any]] = False,
  invertible_backprop: bool = False,
  num_bins: Optional[int] = None,
  bound: Optional[float] = None,
  compute_dtype: Optional[str] = None,
) -> Flow:
  """Glow (Kingma & Dhariwal 2018), multi-scale.

  Each level: squeeze, ``K`` steps of actnorm -> invertible 1x1 conv ->
  coupling (one ``scan``, so compile time does not grow with ``K``), then
  (all but the last level) half the channels leave with a learned
  conditional Gaussian prior; the last level ends with a learned top prior.
  Defaults are the paper's CIFAR-10 model (§5, Table 2 / App. C: L = 3,
  K = 32, 512 hidden channels, affine coupling, 1x1 convolutions, data
  centred to [-0.5, 0.5); 3.35 bits/dim) except the coupling scale: Glow's
  code uses ``s = sigmoid(h + 2)``, whose inverse multiplies by
  ``1 / s = 1 + exp(-h - 2)`` without bound, so a tail latent can grow
  through a few steps of sampling until float32 overflows. The default
  ``s = exp(tanh(h))`` keeps every step's scale in (1/e, e) both ways;
  ``scale_fn="sigmoid"`` reproduces the paper's code.
  Pass ``context`` (one-hot class) to every call for a class-conditional
  model: the top prior and the couplings read it.

  Args:
    event_shape: ``(H, W, C)`` with ``H, W`` divisible by ``2**levels``.
    levels: ``L``, number of scales.
    steps_per_level: ``K``.
    hidden_channels: width of the coupling networks.
    coupling: ``"affine"``, ``"additive"`` or ``"spline"`` (rational-
      quadratic splines, see ``glow_step``; not in the paper).
    permutation: ``"conv1x1"``, ``"conv1x1_lu"``, ``"reverse"``,
      ``"shuffle"``.
    scale_fn: affine coupling scale, ``"exp_tanh"`` (bounded both ways) or
      ``"sigmoid"`` (Glow's code; see above).
    split_prior: learned conditional prior on factored-out halves (else
      standard normal).
    learn_top: learned (class-conditional) top prior (else standard normal).
    preprocess: ``"center"`` (paper), ``"logit"`` or ``"none"``.
    remat: recompute step activations in the backward pass (``True`` or a
      ``jax.checkpoint`` policy); see ``bijectors.scan``.
    invertible_backprop: rebuild each step's input from its output with the
      step's inverse in the backward pass, so activation memory does not
      grow with ``K`` (about one extra inverse and forward per step); an
      alternative to ``remat``. See ``bijectors.scan``.
    num_bins: bins per spline (``coupling="spline"`` only; ``None``: 8).
    bound: the splines act on ``[-bound, bound]`` (``coupling="spline"``
      only; ``None``: 4, which covers most entries after actnorm's
      unit-variance init). Both default to ``None``, not to their values,
      because a config records every factory argument that has a value
      (``experiments/configs/common.with_factory_defaults``): so Glow runs
      recorded before spline couplings existed still match their configs
      and resume, and a spline config sets them explicitly to record them.
    compute_dtype: what its networks compute in, ``"float32"`` (``None``:
      the data's precision) or ``"bfloat16"`` (``typing.COMPUTE_DTYPES``);
      params, log-determinants, priors and likelihoods stay in the data's
      precision.
      The split and top priors keep the data's precision too.
  """
  _image_shape(event_shape, levels, levels, "2**levels")
  check_positive_int("steps_per_level", steps_per_level)
  step = glow_step(
    hidden_channels=hidden_channels,
    coupling=coupling,
    permutation=permutation,
    scale_fn=scale_fn,
    num_bins=num_bins,
    bound=bound,
    compute_dtype=compute_dtype,
  )
  stages = []
  for level in range(levels):
    members = [
      squeeze(),
      scan(
        step,
        steps_per_level,
        remat=remat,
        invertible_backprop=invertible_backprop,
      ),
    ]
    if level < levels - 1 and split_prior:
      members.append(gaussian_split_prior())
    if level == levels - 1 and learn_top:
      members.append(learned_prior())
    stages.append(chain(*members))
  body = multiscale(stages)
  return make_flow(_prepend(_preprocess(preprocess, 0.05), body), event_shape)
