"""Glow written in plain JAX, without any bijector abstraction.

The reference that the library's Glow must not be slower than: the same
model as ``models.glow`` on the ``glow`` workload (squeeze, K steps of
actnorm -> LU 1x1 conv -> affine coupling per level, a learned conditional
prior on every factored-out half and a learned top prior), written as one
function the way a JAX user would write it by hand, in two variants:

* ``"plain JAX"``: ``lax.conv`` for the coupling network's convolutions, the
  invertible 1x1 convolutions as matmuls over channels (the faster way on
  CPU), and a Python loop over the K steps (XLA's CPU convolution gradients
  are far slower inside a ``lax.scan`` body, see ``nets.convolution``);
* ``"plain JAX, GEMM convs"``: the library's own strategy without its
  abstractions: every convolution through ``nets.convolution.conv_as_matmul``
  and one ``lax.scan`` over the K steps. The library must not be slower than
  this: its composition must cost nothing.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from bench.candidate import JaxCandidate, adam_candidate
from bench.workloads import Workload
from flowjax_gen.nets.convolution import conv_as_matmul

LOG_2PI = math.log(2 * math.pi)


_CONVS = {"xla": jax.lax.conv_general_dilated, "matmul": conv_as_matmul}


def _conv(x, kernel, bias, kind):
  y = _CONVS[kind](
    x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
  )
  return y + bias


def _squeeze(x):
  n, h, w, c = x.shape
  x = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4)
  return x.reshape(n, h // 2, w // 2, 4 * c)


def _zero_conv_params(c_in, c_out):
  return {
    "kernel": jnp.zeros((3, 3, c_in, c_out)),
    "bias": jnp.zeros((c_out,)),
    "logs": jnp.zeros((c_out,)),
  }


def _zero_conv(p, x, kind):
  return _conv(x, p["kernel"], p["bias"], kind) * jnp.exp(3.0 * p["logs"])


def _step_params(key, channels, hidden):
  k1, k2, k3 = jax.random.split(key, 3)
  q, _ = jnp.linalg.qr(jax.random.normal(k1, (channels, channels)))
  perm, lower, upper = jax.scipy.linalg.lu(q)
  half = channels // 2
  fan1, fan2 = 9 * half, hidden
  return {
    "an_bias": jnp.zeros((channels,)),
    "an_logs": jnp.zeros((channels,)),
    "lower": lower,
    "upper": jnp.triu(upper, 1),
    "log_s": jnp.log(jnp.abs(jnp.diag(upper))),
    "perm": perm,
    "sign": jnp.sign(jnp.diag(upper)),
    "k1": jax.random.normal(k2, (3, 3, half, hidden)) / math.sqrt(fan1),
    "b1": jnp.zeros((hidden,)),
    "k2": jax.random.normal(k3, (1, 1, hidden, hidden)) / math.sqrt(fan2),
    "b2": jnp.zeros((hidden,)),
    "out": _zero_conv_params(hidden, channels),
  }


def _step(p, x, kind):
  """actnorm -> LU 1x1 conv -> affine coupling; returns (y, log_det)."""
  positions = x.shape[1] * x.shape[2]
  x = (x + p["an_bias"]) * jnp.exp(p["an_logs"])
  log_det = positions * jnp.sum(p["an_logs"])
  c = x.shape[-1]
  lower = jnp.tril(p["lower"], -1) + jnp.eye(c)
  upper = jnp.triu(p["upper"], 1) + jnp.diag(
    jax.lax.stop_gradient(p["sign"]) * jnp.exp(p["log_s"])
  )
  w = jax.lax.stop_gradient(p["perm"]) @ lower @ upper
  x = jnp.einsum("nhwj,ij->nhwi", x, w)
  log_det = log_det + positions * jnp.sum(p["log_s"])
  a, b = x[..., : c // 2], x[..., c // 2 :]
  h = jax.nn.relu(_conv(a, p["k1"], p["b1"], kind))
  h = jax.nn.relu(_conv(h, p["k2"], p["b2"], kind))
  h = _zero_conv(p["out"], h, kind)
  shift, raw = h[..., : c // 2], h[..., c // 2 :]
  log_scale = jax.nn.log_sigmoid(raw + 2.0)
  b = b * jnp.exp(log_scale) + shift
  log_det = log_det + jnp.sum(log_scale, axis=(1, 2, 3))
  return jnp.concatenate([a, b], axis=-1), log_det


def _gaussian_log_prob(z, mean, log_std):
  e = (z - mean) * jnp.exp(-log_std)
  return jnp.sum(-0.5 * (e * e + LOG_2PI) - log_std, axis=(1, 2, 3))


def make_glow(shape, levels, steps, hidden, *, conv="xla", scan=False):
  """``(init(key), log_prob(params, x))`` of the plain-JAX Glow.

  ``conv``: ``"xla"`` or ``"matmul"``; ``scan``: ``lax.scan`` over the K
  steps (else a Python loop).
  """
  height, width, channels = shape

  def init(key):
    params, c, hw = [], channels, (height, width)
    for level in range(levels):
      c, hw = 4 * c, (hw[0] // 2, hw[1] // 2)
      keys = jax.random.split(jax.random.fold_in(key, level), steps)
      level_params = {
        "steps": jax.vmap(lambda k, c=c: _step_params(k, c, hidden))(keys)
      }
      if level < levels - 1:
        level_params["prior"] = _zero_conv_params(c // 2, c)
        c //= 2
      else:
        level_params["top"] = {
          "mean": jnp.zeros(hw + (c,)),
          "log_std": jnp.zeros(hw + (c,)),
        }
      params.append(level_params)
    return params

  def log_prob(params, x):
    h = x - 0.5
    total = jnp.zeros(x.shape[0])
    for level, p in enumerate(params):
      h = _squeeze(h)

      def body(carry, step_params):
        h, total = carry
        h, log_det = _step(step_params, h, conv)
        return (h, total + log_det), None

      if scan:
        (h, total), _ = jax.lax.scan(body, (h, total), p["steps"])
      else:
        for k in range(steps):
          step_params = jax.tree.map(lambda v, k=k: v[k], p["steps"])
          (h, total), _ = body((h, total), step_params)
      if level < len(params) - 1:
        half = h.shape[-1] // 2
        h, z = h[..., :half], h[..., half:]
        mean, log_std = jnp.split(_zero_conv(p["prior"], h, conv), 2, axis=-1)
        total = total + _gaussian_log_prob(z, mean, log_std)
      else:
        top = p["top"]
        total = total + _gaussian_log_prob(h, top["mean"], top["log_std"])
    return total

  return init, log_prob


def candidate(
  workload: Workload, *, gemm_convs: bool = False, seed: int = 0
) -> JaxCandidate:
  """A plain-JAX Glow for the ``glow`` workload (module docstring)."""
  settings = workload.settings
  init_params, log_prob_fn = make_glow(
    workload.batch_shape[1:],
    settings["levels"],
    settings["steps_per_level"],
    settings["hidden_channels"],
    conv="matmul" if gemm_convs else "xla",
    scan=gemm_convs,
  )
  if gemm_convs:
    name, note = "plain JAX, GEMM convs", "hand-written: GEMM convs, scan"
  else:
    name, note = "plain JAX", "hand-written: lax.conv, 1x1 as matmul, loop"
  return adam_candidate(
    name, lambda: init_params(jax.random.key(seed)), log_prob_fn, note
  )
