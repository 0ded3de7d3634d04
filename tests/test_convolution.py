"""``nets.convolution``: convolutions as GEMMs equal XLA's convolutions."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax_gen.nets.conditioners import (
  GlowConvNet,
  ResidualBlock,
  ResNet,
  ZeroConv,
)
from flowjax_gen.nets.convolution import conv_as_matmul, conv_function

NHWC = ("NHWC", "HWIO", "NHWC")


def _pair(c_in, c_out, k, dtype=jnp.float64):
  x = jax.random.normal(jax.random.key(0), (2, 7, 6, c_in), dtype)
  w = jax.random.normal(jax.random.key(1), (k, k, c_in, c_out), dtype)
  return x, w


@pytest.mark.parametrize(
  "c_in, c_out, k, padding",
  [
    (2, 16, 3, "SAME"),  # input side (im2col)
    (16, 4, 3, "SAME"),  # output side (col2im)
    (8, 8, 1, "SAME"),  # 1x1: one einsum
    (5, 3, 3, "VALID"),
    (3, 7, 5, [(1, 3), (2, 0)]),  # asymmetric explicit padding
    (6, 2, 4, "SAME"),  # even kernel: SAME pads more at the end
  ],
)
def test_values_and_gradients_equal_xla_convolution(c_in, c_out, k, padding):
  with jax.enable_x64(True):
    x, w = _pair(c_in, c_out, k)

    def xla(x, w):
      return jax.lax.conv_general_dilated(
        x, w, (1, 1), padding, dimension_numbers=NHWC
      )

    def ours(x, w):
      return conv_as_matmul(x, w, (1, 1), padding, dimension_numbers=NHWC)

    cotangent = jax.random.normal(jax.random.key(2), xla(x, w).shape)

    @jax.jit
    def value_and_grads(x, w):
      # One compiled program per implementation, not one per primitive.
      def run(conv):
        loss = lambda x, w: jnp.sum(conv(x, w) * cotangent)  # noqa: E731
        return conv(x, w), jax.grad(loss, (0, 1))(x, w)

      return run(ours), run(xla)

    (y, grads), (want_y, want_grads) = value_and_grads(x, w)
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, want_grads, strict=True):
      np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_other_cases_fall_back_to_xla():
  x, w = _pair(4, 4, 3, jnp.float32)
  for kwargs in (
    dict(window_strides=(2, 2), padding="SAME"),
    dict(window_strides=(1, 1), padding="SAME", rhs_dilation=(2, 2)),
  ):
    want = jax.lax.conv_general_dilated(x, w, dimension_numbers=NHWC, **kwargs)
    got = conv_as_matmul(x, w, dimension_numbers=NHWC, **kwargs)
    np.testing.assert_array_equal(got, want)


def test_glow_nets_have_the_same_params_under_both_implementations():
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 4))
  for module in (GlowConvNet, ZeroConv):
    kwargs = {"hidden_channels": 16} if module is GlowConvNet else {}
    gemm = module(8, convolution="matmul", **kwargs)
    xla = module(8, convolution="xla", **kwargs)
    params = gemm.init(jax.random.key(3), x)
    same = jax.tree.map(
      lambda a, b: bool(jnp.all(a == b)), params, xla.init(jax.random.key(3), x)
    )
    assert all(jax.tree.leaves(same))
    params = jax.tree.map(
      lambda v: v + 0.1 * jax.random.normal(jax.random.key(5), v.shape), params
    )
    np.testing.assert_allclose(
      gemm.apply(params, x), xla.apply(params, x), rtol=1e-5, atol=1e-5
    )


class _UnrolledResNet(nn.Module):
  """The ResNet conditioner as plain unrolled layers: the reference the
  scanned body must match (params, values and gradients)."""

  out_features: int
  num_blocks: int
  features: int

  @nn.compact
  def __call__(self, x):
    h = nn.Conv(self.features, (3, 3), padding="SAME")(x)
    for _ in range(self.num_blocks):
      h = ResidualBlock(self.features)(h)
    return nn.Conv(
      self.out_features,
      (3, 3),
      padding="SAME",
      kernel_init=nn.initializers.zeros,
    )(nn.relu(h))


@pytest.mark.parametrize("num_blocks", [0, 1, 3])
@pytest.mark.parametrize("convolution", ["matmul", "xla"])
def test_scanned_resnet_equals_unrolled_blocks(num_blocks, convolution):
  with jax.enable_x64(True):
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 3), jnp.float64)
    scanned = ResNet(
      4, num_blocks=num_blocks, features=5, convolution=convolution
    )
    unrolled = _UnrolledResNet(4, num_blocks=num_blocks, features=5)
    params = scanned.init(jax.random.key(3), x)
    reference = unrolled.init(jax.random.key(3), x)
    # Same tree, same initial values: checkpoints of either load in the other.
    assert jax.tree.structure(params) == jax.tree.structure(reference)
    for a, b in zip(
      jax.tree.leaves(params), jax.tree.leaves(reference), strict=True
    ):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The last conv starts at zero; perturb every leaf so the blocks matter.
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(5), len(leaves))
    params = jax.tree.unflatten(
      tree,
      [
        v + 0.3 * jax.random.normal(k, v.shape, v.dtype)
        for v, k in zip(leaves, keys, strict=True)
      ],
    )
    np.testing.assert_allclose(
      scanned.apply(params, x),
      unrolled.apply(params, x),
      rtol=1e-10,
      atol=1e-10,
    )
    loss = lambda module: lambda p: jnp.sum(jnp.sin(module.apply(p, x)))  # noqa: E731
    grads = jax.grad(loss(scanned))(params)
    expected = jax.grad(loss(unrolled))(params)
    for a, b in zip(
      jax.tree.leaves(grads), jax.tree.leaves(expected), strict=True
    ):
      np.testing.assert_allclose(
        np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-9
      )


def test_resnet_accepts_an_unbatched_image():
  x = jax.random.normal(jax.random.key(0), (6, 6, 3))
  net = ResNet(4, num_blocks=2, features=5)
  params = net.init(jax.random.key(1), x)
  leaves, tree = jax.tree.flatten(params)
  params = jax.tree.unflatten(tree, [v + 0.1 for v in leaves])
  np.testing.assert_allclose(
    net.apply(params, x), net.apply(params, x[None])[0], rtol=1e-6, atol=1e-6
  )


def test_unknown_convolution_is_refused():
  with pytest.raises(ValueError, match="convolution must be one of"):
    conv_function("winograd")
