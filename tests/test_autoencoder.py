"""Auto-encoders: code size and compression ratio, corruptions, PSNR, and a
denoiser that, trained briefly on the digits, beats its noisy input."""

from __future__ import annotations

import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax_gen.models.ae import autoencoder
from flowjax_gen.objectives import autoencoder as ae_objectives
from flowjax_gen.training import loop


def test_code_shape_dtype_and_compression_ratio():
  model = autoencoder(
    (28, 28, 1), latent_size=32, latent_dtype="float16", hidden_features=(8,)
  )
  x = jax.random.uniform(jax.random.key(0), (3, 28, 28, 1))
  params = model.init(jax.random.key(1), x)
  z = model.encode(params, x)
  assert z.shape == (3, 32) and z.dtype == jnp.float16
  x_hat = model.reconstruct(params, x)
  assert x_hat.shape == x.shape
  assert float(x_hat.min()) >= 0.0 and float(x_hat.max()) <= 1.0
  assert model.latent_bits == 32 * 16
  assert model.compression_ratio == pytest.approx(784 * 8 / 512)


@pytest.mark.parametrize("network", ["mlp", "conv"])
def test_code_rounding_passes_gradients(network):
  model = autoencoder(
    (8, 8, 1),
    latent_size=4,
    latent_dtype="bfloat16",
    network=network,
    hidden_features=(16,),
    channels=(4, 8),
  )
  objective = ae_objectives.reconstruction_objective(model)
  batch = {"image": np.arange(2 * 64).reshape(2, 8, 8, 1) % 256}
  params = model.init(
    jax.random.key(0), ae_objectives.autoencoder_inputs(batch)
  )
  grads = jax.grad(lambda p: objective(p, batch, jax.random.key(1))[0])(params)
  encoder_norm = sum(
    float(jnp.sum(g**2)) for g in jax.tree.leaves(grads["encoder"])
  )
  assert math.isfinite(encoder_norm) and encoder_norm > 0


def test_corruptions_have_their_statistics():
  x = jnp.full((200, 8, 8, 1), 0.5)
  key = jax.random.key(0)
  gaussian = ae_objectives.corrupt(
    key, x, corruption="gaussian", noise_level=0.1
  )
  assert float(jnp.std(gaussian - x)) == pytest.approx(0.1, rel=0.05)
  masked = ae_objectives.corrupt(key, x, corruption="mask", noise_level=0.3)
  assert float(jnp.mean(masked == 0)) == pytest.approx(0.3, abs=0.02)
  assert set(np.unique(np.asarray(masked))) <= {0.0, 0.5}
  salted = ae_objectives.corrupt(
    key, x, corruption="salt_and_pepper", noise_level=0.2
  )
  assert float(jnp.mean(salted == 1)) == pytest.approx(0.1, abs=0.02)
  assert float(jnp.mean(salted == 0)) == pytest.approx(0.1, abs=0.02)


def test_psnr_is_ten_log10_of_inverse_mse():
  x = jnp.zeros((2, 4, 4, 1))
  x_hat = x.at[0].set(0.1).at[1].set(0.01)
  mse = ae_objectives.squared_error(x, x_hat)
  np.testing.assert_allclose(mse, [0.01, 0.0001], rtol=1e-5)
  np.testing.assert_allclose(ae_objectives.psnr(mse), [20.0, 40.0], rtol=1e-5)


@pytest.mark.parametrize(
  "kwargs",
  [
    {"latent_size": 0},
    {"latent_dtype": "int8"},
    {"network": "rnn"},
    {"hidden_features": ()},
  ],
)
def test_bad_model_arguments_raise(kwargs):
  with pytest.raises(ValueError, match=next(iter(kwargs))):
    autoencoder((8, 8, 1), **kwargs)


@pytest.mark.parametrize(
  ("corruption", "level"),
  [("blur", 0.1), ("gaussian", 0.0), ("mask", 1.0), ("salt_and_pepper", -1)],
)
def test_bad_corruptions_raise(corruption, level):
  with pytest.raises(ValueError, match="corruption|noise_level"):
    ae_objectives.check_corruption(corruption, level)


@pytest.mark.slow
def test_denoiser_trained_briefly_beats_its_noisy_input(tmp_path):
  config = importlib.import_module("configs.dae_digits").get_config()
  config.num_steps = 1500
  config.eval_every = 1500
  config.checkpoint_every = 1500
  result = loop.train_and_evaluate(config.to_dict(), str(tmp_path))
  assert result["num_examples"] == 297
  # Noise of sigma 0.3 (clipped) costs ~0.05 MSE; the denoiser must remove
  # most of it, on the same noise draws.
  assert result["mse"] < 0.6 * result["noisy_mse"]
  assert result["psnr"] > result["noisy_psnr"] + 2.0
