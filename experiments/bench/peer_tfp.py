"""Peer candidates written with TensorFlow Probability's JAX substrate.

TFP bijectors and distributions are stateless functions of their arguments,
so every model is rebuilt from its parameters on each call; the networks
are ``flax.linen`` modules (TFP's own network helpers are TensorFlow-only).

* ``tabular_d*``: ``tfd.TransformedDistribution`` of a standard
  ``MultivariateNormalDiag`` by a ``tfb.Chain`` of 8 ``tfb.RealNVP``
  (``num_masked`` alternating between d/2 and -d/2, i.e. first and last
  halves) with a 2x256 ReLU ``shift_and_log_scale_fn``. TFP computes a
  bijector's value and log-det in separate calls, so ``log_prob`` evaluates
  each conditioner twice (``inverse`` and ``inverse_log_det_jacobian``).
* ``nice``: ``tfb.Invert`` of the data -> latent chain ``tfb.Permute`` (even
  features first), 4 shift-only ``tfb.RealNVP(is_constant_jacobian=True)``
  (TFP's NICE recipe; halves alternating) and ``tfb.Scale(log_scale=s)``,
  over ``tfd.Sample(tfd.Logistic(0, 1), 784)``.
* ``glow``: a composite of tfb building blocks (there is no ``tfb.Glow`` in
  the JAX substrate), written after TFP's TensorFlow ``Glow`` and matching
  the benchmark's Glow: squeeze (``tfb.Reshape`` -> ``tfb.Transpose`` ->
  ``tfb.Reshape``), then K steps of actnorm (``tfb.Shift`` + ``tfb.Scale``
  with learned per-channel parameters, plainly initialised to the identity,
  not data-dependent), LU-parameterised 1x1 convolution applied per pixel
  (initialised from the LU factors of a random orthogonal matrix like TFP's
  ``OneByOneConv``; see :func:`_conv1x1`) and affine coupling (``tfb.Shift`` +
  ``tfb.Scale(log_scale=log_sigmoid(h + 2))`` on the second channel half,
  ``h`` from a 3x3 conv -> ReLU -> 1x1 conv -> ReLU -> zero-init 3x3 conv
  net with an ``exp(3 * logs)`` output scale). After every level but the
  last, half of the channels is factored out under a ``tfd.Normal`` whose
  mean and log-std come from a zero-init 3x3 conv of the kept half; the top
  latent has a learned per-position ``tfd.Normal``. The multi-scale driver
  (a Python loop over levels and steps, summing ``forward_log_det_jacobian``
  with ``event_ndims=3``) is written by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from tensorflow_probability.substrates import jax as tfp

from bench.candidate import (
  JaxCandidate,
  Unsupported,
  adam_candidate,
  flax_candidate,
)
from bench.nets import ZeroInitMLP
from bench.workloads import Workload

tfb = tfp.bijectors
tfd = tfp.distributions
tf = tfp.tf2jax

_SEED = 0


def candidate(workload: Workload) -> JaxCandidate:
  """TFP-JAX's candidate for ``workload``.

  Args:
    workload: one of the benchmark's workloads.

  Returns:
    The candidate.

  Raises:
    Unsupported: the workload's settings cannot be expressed.
  """
  if workload.name == "glow":
    return _glow(workload)
  if workload.name == "nice":
    return _nice(workload)
  if workload.name.startswith("tabular_d"):
    return _tabular(workload)
  raise Unsupported(f"no TFP model for workload {workload.name!r}")


def _candidate(init_params, log_prob_fn, note: str) -> JaxCandidate:
  return adam_candidate("TFP-JAX", init_params, log_prob_fn, note)


def _flax_candidate(model: nn.Module, workload: Workload, note: str):
  return flax_candidate("TFP-JAX", model, workload, note, _SEED)


# ----------------------------------------------------------------- tabular


class _RealNVP(nn.Module):
  """RealNVP on vectors: ``tfb.RealNVP`` layers over a normal base."""

  dim: int
  num_layers: int
  hidden: Sequence[int]

  def setup(self):
    half = self.dim // 2
    self.nets = [
      ZeroInitMLP(self.hidden, 2 * (self.dim - half))
      for _ in range(self.num_layers)
    ]

  def __call__(self, x):
    half = self.dim // 2

    def shift_and_log_scale_fn(net):
      def fn(x0, output_units):
        del output_units  # the net's output size is fixed in setup
        shift, log_scale = jnp.split(net(x0), 2, axis=-1)
        return shift, log_scale

      return fn

    layers = [
      tfb.RealNVP(
        num_masked=half if i % 2 == 0 else -half,
        shift_and_log_scale_fn=shift_and_log_scale_fn(net),
      )
      for i, net in enumerate(self.nets)
    ]
    base = tfd.MultivariateNormalDiag(
      loc=jnp.zeros(self.dim), scale_diag=jnp.ones(self.dim)
    )
    return tfd.TransformedDistribution(base, tfb.Chain(layers)).log_prob(x)


def _tabular(workload: Workload) -> JaxCandidate:
  """RealNVP with ``tfb.RealNVP``."""
  model = _RealNVP(
    dim=workload.batch_shape[1],
    num_layers=workload.settings["num_layers"],
    hidden=tuple(workload.settings["hidden_features"]),
  )
  note = (
    "tfd.TransformedDistribution(MultivariateNormalDiag(0, 1), tfb.Chain(8 x "
    "tfb.RealNVP(num_masked=+-d/2, shift_and_log_scale_fn=flax 2x256 ReLU "
    "MLP, zero-init output))); log_prob runs the inverse, and TFP evaluates "
    "each conditioner twice (inverse and inverse_log_det_jacobian are "
    "separate calls)."
  )
  return _flax_candidate(model, workload, note)


# -------------------------------------------------------------------- NICE


class _Nice(nn.Module):
  """NICE: shift-only ``tfb.RealNVP`` on odd/even halves, exp(s) scaling."""

  dim: int
  num_couplings: int
  hidden: Sequence[int]

  def setup(self):
    self.nets = [
      ZeroInitMLP(self.hidden, self.dim // 2) for _ in range(self.num_couplings)
    ]
    self.log_scale = self.param("log_scale", nn.initializers.zeros, (self.dim,))

  def __call__(self, x):
    half = self.dim // 2

    def shift_fn(net):
      def fn(x0, output_units):
        del output_units
        return net(x0), None

      return fn

    couplings = [
      tfb.RealNVP(
        num_masked=half if i % 2 == 0 else -half,
        shift_and_log_scale_fn=shift_fn(net),
        is_constant_jacobian=True,
      )
      for i, net in enumerate(self.nets)
    ]
    even_first = np.concatenate(
      [np.arange(0, self.dim, 2), np.arange(1, self.dim, 2)]
    )
    # tfb.Chain applies its last bijector first: this is data -> latent.
    encoder = tfb.Chain(
      [
        tfb.Scale(log_scale=self.log_scale),
        *reversed(couplings),
        tfb.Permute(permutation=even_first),
      ]
    )
    base = tfd.Sample(tfd.Logistic(loc=0.0, scale=1.0), self.dim)
    return tfd.TransformedDistribution(base, tfb.Invert(encoder)).log_prob(x)


def _nice(workload: Workload) -> JaxCandidate:
  """NICE with ``tfb.RealNVP`` in its NICE configuration."""
  model = _Nice(
    dim=math.prod(workload.batch_shape[1:]),
    num_couplings=workload.settings["num_couplings"],
    hidden=tuple(workload.settings["hidden_features"]),
  )
  note = (
    "tfd.TransformedDistribution(tfd.Sample(Logistic(0, 1), 784), "
    "tfb.Invert(Chain([Permute(even features first), 4 x tfb.RealNVP("
    "num_masked=+-392, shift only, is_constant_jacobian=True), "
    "Scale(log_scale=s)]))): odd/even halves alternating via the permute "
    "and the sign of num_masked; flax 5x1000 ReLU MLP conditioners with "
    "zero-init output."
  )
  return _flax_candidate(model, workload, note)


# -------------------------------------------------------------------- Glow


class _ZeroConv(nn.Module):
  """Zero-initialised 3x3 conv with a learned ``exp(3 * logs)`` scale."""

  features: int

  @nn.compact
  def __call__(self, x):
    y = nn.Conv(
      self.features,
      (3, 3),
      padding="SAME",
      kernel_init=nn.initializers.zeros,
      bias_init=nn.initializers.zeros,
    )(x)
    logs = self.param("logs", nn.initializers.zeros, (self.features,))
    return y * jnp.exp(3.0 * logs)


class _CouplingNet(nn.Module):
  """Glow's coupling net: 3x3 conv -> ReLU -> 1x1 conv -> ReLU -> zero conv."""

  hidden: int
  out: int

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(self.hidden, (3, 3), padding="SAME")(x))
    x = nn.relu(nn.Conv(self.hidden, (1, 1), padding="SAME")(x))
    return _ZeroConv(self.out)(x)


def _squeeze(height: int, width: int, channels: int) -> tfb.Bijector:
  """(h, w, c) -> (h/2, w/2, 4c), each 2x2 patch into channels."""
  h, w, c = height // 2, width // 2, channels
  return tfb.Chain(
    [
      tfb.Reshape(
        event_shape_out=(h, w, 4 * c), event_shape_in=(h, w, c, 2, 2)
      ),
      tfb.Transpose(perm=[0, 2, 4, 1, 3]),
      tfb.Reshape(
        event_shape_out=(h, 2, w, 2, c), event_shape_in=(height, width, c)
      ),
    ]
  )


def _conv1x1(lower_upper, inverse_perm) -> tfb.Bijector:
  """The 1x1 convolution ``W = P L U`` over channels, from tfb blocks.

  ``tfb.ScaleMatvecLU`` is TFP's bijector for this, but its forward
  (``tfp.math.lu_reconstruct``) builds a shape from ``tf.shape(...)``, which
  in this JAX version is a tracer under ``jit``, so it cannot be jitted.
  The same ``lower_upper`` parameter (strictly lower part of a unit-diagonal
  ``L`` packed with ``U``, as ``ScaleMatvecLU`` takes it) is therefore
  applied as three bijectors: ``U`` (``ScaleMatvecLinearOperator`` of a
  lower-triangular operator, adjoint), unit-diagonal ``L``
  (``ScaleMatvecTriL``) and the fixed row permutation (``Permute``); the
  log-det is ``sum(log|diag U|)`` per pixel.

  Args:
    lower_upper: ``(c, c)`` packed LU factors (trainable).
    inverse_perm: the permutation ``tfb.Permute`` applies (fixed).

  Returns:
    The bijector, forward = data -> latent.
  """
  c = lower_upper.shape[-1]
  lower = jnp.tril(lower_upper, -1) + jnp.eye(c, dtype=lower_upper.dtype)
  upper = tf.linalg.LinearOperatorLowerTriangular(jnp.triu(lower_upper).T)
  return tfb.Chain(
    [
      tfb.Permute(permutation=inverse_perm),
      tfb.ScaleMatvecTriL(scale_tril=lower),
      tfb.ScaleMatvecLinearOperator(upper, adjoint=True),
    ]
  )


def _forward(bijector: tfb.Bijector, h, total):
  """``bijector(h)`` and ``total`` plus its log-det over (H, W, C) events."""
  log_det = bijector.forward_log_det_jacobian(h, event_ndims=3)
  return bijector.forward(h), total + log_det


def make_glow(shape, levels: int, steps: int, hidden: int, seed: int = _SEED):
  """``(init(), log_prob(params, x))`` of the TFP-composite Glow.

  Args:
    shape: ``(height, width, channels)`` of one image.
    levels: number of levels (squeeze + ``steps`` flow steps each).
    steps: flow steps per level.
    hidden: channels of the coupling nets' hidden layers.
    seed: seed of the initial parameters.

  Returns:
    ``init() -> params`` and ``log_prob(params, x) -> (batch,)``.
  """
  height, width, channels = shape
  rng = np.random.default_rng(seed)
  # Per level: (h, w, c) after its squeeze; the 1x1 convs' LU factors and
  # fixed row permutations (kept out of the parameters), as TFP's
  # OneByOneConv draws them: LU of a random orthogonal matrix.
  level_shapes, lu_inits, perms = [], [], []
  h, w, c = height, width, channels
  for level in range(levels):
    h, w, c = h // 2, w // 2, 4 * c
    level_shapes.append((h, w, c))
    level_lu, level_perm = [], []
    for _ in range(steps):
      q = np.linalg.qr(rng.uniform(size=(c, c)))[0].astype(np.float32)
      # q[perm] = L @ U, so W = q takes rows back with argsort(perm).
      lower_upper, _, perm = jax.lax.linalg.lu(jnp.asarray(q))
      level_lu.append(np.asarray(lower_upper))
      level_perm.append(np.argsort(np.asarray(perm)))
    lu_inits.append(level_lu)
    perms.append(level_perm)
    if level < levels - 1:
      c //= 2
  nets = [_CouplingNet(hidden, c) for (_, _, c) in level_shapes]
  priors = [_ZeroConv(c) for (_, _, c) in level_shapes[:-1]]

  def init():
    key = jax.random.key(seed)
    params = {"levels": []}
    for level, (h, w, c) in enumerate(level_shapes):
      half = jnp.zeros((1, h, w, c // 2))
      step_params = []
      for step in range(steps):
        key, sub = jax.random.split(key)
        step_params.append(
          {
            "actnorm_shift": jnp.zeros((c,)),
            "actnorm_log_scale": jnp.zeros((c,)),
            "lower_upper": jnp.asarray(lu_inits[level][step]),
            "coupling": nets[level].init(sub, half)["params"],
          }
        )
      level_params = {"steps": step_params}
      if level < levels - 1:
        level_params["prior"] = priors[level].init(key, half)["params"]
      params["levels"].append(level_params)
    h, w, c = level_shapes[-1]
    params["top"] = {
      "loc": jnp.zeros((h, w, c)),
      "log_scale": jnp.zeros((h, w, c)),
    }
    return params

  def coupling(net_params, net, h, total):
    c = h.shape[-1]
    x0, x1 = h[..., : c // 2], h[..., c // 2 :]
    out = net.apply({"params": net_params}, x0)
    shift, raw = out[..., : c // 2], out[..., c // 2 :]
    affine = tfb.Chain(
      [tfb.Shift(shift), tfb.Scale(log_scale=jax.nn.log_sigmoid(raw + 2.0))]
    )
    y1, total = _forward(affine, x1, total)
    return jnp.concatenate([x0, y1], axis=-1), total

  def log_prob(params, x):
    h = tfb.Shift(-0.5).forward(x)
    total = jnp.zeros(x.shape[0], x.dtype)
    size = (height, width, channels)
    for level, p in enumerate(params["levels"]):
      h = _squeeze(*size).forward(h)  # volume preserving
      size = level_shapes[level]
      for step, sp in enumerate(p["steps"]):
        actnorm = tfb.Chain(
          [
            tfb.Scale(log_scale=sp["actnorm_log_scale"]),
            tfb.Shift(sp["actnorm_shift"]),
          ]
        )
        h, total = _forward(actnorm, h, total)
        conv1x1 = _conv1x1(sp["lower_upper"], perms[level][step])
        h, total = _forward(conv1x1, h, total)
        h, total = coupling(sp["coupling"], nets[level], h, total)
      if level < levels - 1:
        c = size[-1]
        h, z = h[..., : c // 2], h[..., c // 2 :]
        stats = priors[level].apply({"params": p["prior"]}, h)
        loc, log_scale = stats[..., : c // 2], stats[..., c // 2 :]
        prior = tfd.Independent(
          tfd.Normal(loc, jnp.exp(log_scale)), reinterpreted_batch_ndims=3
        )
        total = total + prior.log_prob(z)
        size = (*size[:2], c // 2)
    top = params["top"]
    prior = tfd.Independent(
      tfd.Normal(top["loc"], jnp.exp(top["log_scale"])),
      reinterpreted_batch_ndims=3,
    )
    return total + prior.log_prob(h)

  return init, log_prob


def _glow(workload: Workload) -> JaxCandidate:
  """The TFP-composite Glow of the ``glow`` workload."""
  s = workload.settings
  if s["coupling"] != "affine" or s["permutation"] != "conv1x1_lu":
    raise Unsupported("the TFP composite implements affine coupling + LU 1x1")
  init, log_prob = make_glow(
    workload.batch_shape[1:],
    s["levels"],
    s["steps_per_level"],
    s["hidden_channels"],
  )
  note = (
    "TFP-JAX composite (no tfb.Glow in the JAX substrate): squeeze as "
    "tfb.Reshape/Transpose/Reshape; per step actnorm = tfb.Shift + "
    "tfb.Scale (per-channel, identity init, not data-dependent), "
    "1x1 conv W = P L U per pixel as tfb.Permute + tfb.ScaleMatvecTriL + "
    "tfb.ScaleMatvecLinearOperator (tfb.ScaleMatvecLU cannot be jitted with "
    "this JAX; random-orthogonal LU init, fixed permutation, raw diag(U)), "
    "affine coupling = tfb.Shift + tfb.Scale(log_sigmoid(h+2)) "
    "from a flax conv net (3x3-ReLU-1x1-ReLU-zero 3x3 with exp(3 logs)); "
    "conditional tfd.Normal split priors from a zero 3x3 conv, learned top "
    "tfd.Normal; multi-scale loop by hand, Python-unrolled over the K "
    "steps (no lax.scan); input shifted by -0.5."
  )
  return _candidate(init, log_prob, note)
