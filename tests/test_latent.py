"""Latent arithmetic: attribute vectors, the encoding store, interpolation,
codecs of every family, and the command line end to end."""

from __future__ import annotations

import importlib
import json
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scripts import ROOT, run_python

from flowjax_gen import data, latent, runs
from flowjax_gen.models import autoencoder, glow, vae
from flowjax_gen.objectives import dequantize
from flowjax_gen.training import loop

SCRIPT = os.path.join(ROOT, "experiments", "latent_arithmetic.py")


def _synthetic_store(path, *, rows=(5, 7, 3), d=4, fingerprint="abc"):
  """A store of string ids and two attribute columns, one chunk per size."""
  rng = np.random.default_rng(0)
  store = latent.EncodingStore.create(
    path, fingerprint=fingerprint, latent_size=d, attribute_names=["a", "b"]
  )
  written = []
  start = 0
  for n in rows:
    chunk = {
      "z": rng.standard_normal((n, d)).astype(np.float32),
      "id": np.asarray([f"img_{start + i:04d}" for i in range(n)]),
      "attributes": rng.integers(0, 2, (n, 2)).astype(np.int32),
    }
    store.append(chunk["z"], chunk["id"], attributes=chunk["attributes"])
    written.append(chunk)
    start += n
  store.finalize()
  return store, written


def test_planted_direction_is_recovered(tmp_path):
  rng = np.random.default_rng(1)
  n, d = 3000, 32
  planted = rng.standard_normal((3, d))
  attributes = rng.integers(0, 2, (n, 3))
  z = rng.standard_normal((n, d)) + attributes @ planted
  store = latent.EncodingStore.create(
    str(tmp_path / "s"),
    fingerprint="f",
    latent_size=d,
    attribute_names=["x", "y", "w"],
  )
  for begin in range(0, n, 700):
    rows = slice(begin, begin + 700)
    store.append(z[rows], np.arange(n)[rows], attributes=attributes[rows])
  store.finalize()
  vectors = latent.attribute_vectors(store, fingerprint="f", latent_size=d)
  for name, direction in zip(["x", "y", "w"], planted, strict=True):
    found = vectors[name]["vector"]
    cosine = (
      found @ direction / np.linalg.norm(found) / np.linalg.norm(direction)
    )
    assert cosine > 0.99
    column = ["x", "y", "w"].index(name)
    assert vectors[name]["num_positive"] == attributes[:, column].sum()
    assert vectors[name]["num_negative"] == n - attributes[:, column].sum()
  np.testing.assert_array_equal(
    latent.attribute_vector(store, "y"), vectors["y"]["vector"]
  )


def test_label_column_gives_one_vs_rest_vectors(tmp_path):
  labels = np.repeat(np.arange(3), 4)
  z = np.eye(3, 5)[labels] * 2.0
  store = latent.EncodingStore.create(
    str(tmp_path / "s"), fingerprint="f", latent_size=5
  )
  store.append(z[:5], np.arange(5), labels=labels[:5])
  store.append(z[5:], np.arange(5, 12), labels=labels[5:])
  store.finalize()
  vectors = latent.attribute_vectors(store)
  assert list(vectors) == ["label_0", "label_1", "label_2"]
  # mean of class 1 is 2 e_1; the rest average to e_0 + e_2.
  np.testing.assert_allclose(vectors["label_1"]["vector"], [-1, 2, -1, 0, 0])


def test_store_round_trip_is_exact_and_streams(tmp_path):
  path = str(tmp_path / "store")
  _, written = _synthetic_store(path)
  store = latent.EncodingStore.open(path)
  assert store.num_examples == 15 and store.complete
  chunks = list(store.iter_chunks())
  assert [len(c["z"]) for c in chunks] == [5, 7, 3]
  for read, wrote in zip(chunks, written, strict=True):
    for name in ("z", "id", "attributes"):
      np.testing.assert_array_equal(read[name], wrote[name])
  only_ids = list(store.iter_chunks(["id"]))
  assert all(set(c) == {"id"} for c in only_ids)
  everything = store.read_all()
  np.testing.assert_array_equal(
    everything["z"], np.concatenate([c["z"] for c in written])
  )
  assert everything["z"].dtype == np.float32
  with pytest.raises(ValueError, match="exists"):
    latent.EncodingStore.create(path, fingerprint="x", latent_size=4)


def test_mismatched_fingerprint_or_latent_size_is_refused(tmp_path):
  store, _ = _synthetic_store(str(tmp_path / "s"), fingerprint="aaa")
  with pytest.raises(latent.StoreMismatchError, match="aaa.*bbb"):
    latent.attribute_vectors(store, fingerprint="bbb")
  with pytest.raises(latent.StoreMismatchError, match="size 4, not 8"):
    latent.attribute_vectors(store, latent_size=8)
  path = str(tmp_path / "v.npz")
  latent.save_vectors(
    path, latent.attribute_vectors(store), fingerprint="aaa", latent_size=4
  )
  assert set(latent.load_vectors(path, fingerprint="aaa")) == {"a", "b"}
  with pytest.raises(latent.StoreMismatchError, match="aaa, not bbb"):
    latent.load_vectors(path, fingerprint="bbb")


def test_fingerprint_changes_with_any_param_or_model_field():
  params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
  config = {"model": "glow", "model_kwargs": {"levels": 2}, "n_bits": 8}
  base = runs.fingerprint(params, config)
  assert base == runs.fingerprint(jax.tree.map(jnp.copy, params), config)
  changed = {**params, "b": params["b"].at[1].set(1e-7)}
  assert runs.fingerprint(changed, config) != base
  other = {**config, "model_kwargs": {"levels": 3}}
  assert runs.fingerprint(params, other) != base


def _digits(n):
  return np.asarray(data.load("digits", "train")["image"][:n])


def _digits_with_labels(n):
  source = data.load("digits", "train")
  return {k: v[:n] for k, v in source.items()}


@pytest.fixture(scope="module")
def tiny_glow():
  flow = glow((8, 8, 1), levels=2, steps_per_level=1, hidden_channels=4)
  x = dequantize(None, _digits(32), 8)
  params = jax.jit(flow.init)(jax.random.key(0), x)
  # Zero-initialised couplings start as identities; perturb every param so
  # the round trip exercises a non-trivial bijection.
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(1), len(leaves))
  leaves = [
    p + 0.05 * jax.random.normal(k, p.shape, p.dtype)
    for p, k in zip(leaves, keys, strict=True)
  ]
  return flow, jax.tree.unflatten(treedef, leaves)


def test_flow_encode_store_decode_reproduces_the_input(tiny_glow, tmp_path):
  flow, params = tiny_glow
  codec = latent.flow_codec(flow, n_bits=8)
  assert codec.latent_size == 64
  source = _digits_with_labels(70)
  store = latent.encode_dataset(
    codec,
    params,
    source,
    str(tmp_path / "s"),
    fingerprint=runs.fingerprint(params, {"model": "glow"}),
    batch_size=32,
  )
  assert [c["rows"] for c in store.manifest["chunks"]] == [32, 32, 6]
  stored = store.read_all()
  np.testing.assert_array_equal(stored["id"], np.arange(70))
  np.testing.assert_array_equal(stored["label"], source["label"])
  x = dequantize(None, source["image"], 8)
  z = jnp.asarray(stored["z"])
  # Finest latents first, flattened per example.
  pieces = [a.reshape(70, -1) for a in jax.tree.leaves(flow.encode(params, x))]
  np.testing.assert_allclose(z, jnp.concatenate(pieces, 1), atol=1e-5)
  decoded = jax.jit(codec.decode)(params, z)
  assert decoded.shape == (70, 8, 8, 1)
  assert float(np.max(np.abs(decoded - x))) < 1e-4
  draws = latent.sample_latents(codec, params, jax.random.key(2), 500, 0.5)
  assert draws.shape == (500, 64)
  assert abs(float(jnp.std(draws)) - 0.5) < 0.02


def test_interrupted_encode_refuses_to_read_then_resumes(tmp_path, monkeypatch):
  model = autoencoder((8, 8, 1), latent_size=3, hidden_features=(8,))
  params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  codec = latent.autoencoder_codec(model)
  source = _digits_with_labels(50)
  mnist, names = latent.mnist_attributes(source["image"], source["label"])
  source = {"image": source["image"], "attributes": mnist}
  kwargs = {"fingerprint": "fp", "batch_size": 16, "attribute_names": names}
  straight = latent.encode_dataset(
    codec, params, source, str(tmp_path / "straight"), **kwargs
  )

  append = latent.EncodingStore.append
  calls = []

  def failing_append(self, *args, **kw):
    if len(calls) == 2:
      raise KeyboardInterrupt
    calls.append(1)
    append(self, *args, **kw)

  path = str(tmp_path / "resumed")
  monkeypatch.setattr(latent.EncodingStore, "append", failing_append)
  with pytest.raises(KeyboardInterrupt):
    latent.encode_dataset(codec, params, source, path, **kwargs)
  monkeypatch.setattr(latent.EncodingStore, "append", append)
  with pytest.raises(latent.IncompleteStoreError, match="32 examples"):
    latent.EncodingStore.open(path)
  with pytest.raises(latent.StoreMismatchError, match="fp"):
    latent.encode_dataset(
      codec, params, source, path, **{**kwargs, "fingerprint": "other"}
    )
  shuffled = {**source, "id": np.arange(50)[::-1]}
  with pytest.raises(ValueError, match="cannot resume"):
    latent.encode_dataset(codec, params, shuffled, path, **kwargs)
  resumed = latent.encode_dataset(codec, params, source, path, **kwargs)
  assert [c["rows"] for c in resumed.manifest["chunks"]] == [16, 16, 16, 2]
  a, b = straight.read_all(), resumed.read_all()
  for name in ("z", "id", "attributes"):
    np.testing.assert_array_equal(a[name], b[name])
  with pytest.raises(ValueError, match="complete"):
    latent.encode_dataset(codec, params, source, path, **kwargs)


def test_slerp_endpoints_norms_and_linear_midpoint():
  rng = np.random.default_rng(3)
  z0 = rng.standard_normal((4, 16)).astype(np.float32)
  z1 = rng.standard_normal((4, 16)).astype(np.float32)
  z1 *= np.linalg.norm(z0, axis=1, keepdims=True) / np.linalg.norm(
    z1, axis=1, keepdims=True
  )
  ts = np.linspace(0.0, 1.0, 7)
  path = latent.interpolate(z0, z1, ts, kind="slerp")
  assert path.shape == (7, 4, 16)
  np.testing.assert_array_equal(path[0], z0)
  np.testing.assert_array_equal(path[-1], z1)
  np.testing.assert_allclose(
    jnp.linalg.norm(path, axis=-1),
    np.broadcast_to(np.linalg.norm(z0, axis=-1), (7, 4)),
    rtol=1e-5,
  )
  line = latent.interpolate(z0, z1, [0.0, 0.5, 1.0])
  np.testing.assert_allclose(line[1], (z0 + z1) / 2, rtol=1e-6)
  np.testing.assert_array_equal(line[0], z0)
  # Parallel endpoints: the angle is 0 and slerp falls back to the line.
  parallel = latent.interpolate(z0, 2 * z0, [0.5], kind="slerp")
  np.testing.assert_allclose(parallel[0], 1.5 * z0, rtol=1e-6)
  with pytest.raises(ValueError, match="kind"):
    latent.interpolate(z0, z1, ts, kind="cubic")


def test_manipulate_and_analogy():
  z = np.arange(6.0).reshape(2, 3)
  dz = np.array([1.0, 0.0, -1.0])
  moved = latent.manipulate(z, dz, [-1.0, 0.0, 2.0])
  assert moved.shape == (3, 2, 3)
  np.testing.assert_allclose(moved[2], z + 2 * dz)
  np.testing.assert_allclose(moved[1], z)
  a, b, c = np.zeros(3), np.ones(3), np.full(3, 5.0)
  np.testing.assert_allclose(latent.analogy(a, b, c), np.full(3, 6.0))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_nearest_neighbours_match_brute_force(tmp_path, metric):
  store, written = _synthetic_store(str(tmp_path / "s"), rows=(6, 9, 4))
  z = np.concatenate([c["z"] for c in written]).astype(np.float64)
  ids = np.concatenate([c["id"] for c in written])
  queries = np.random.default_rng(5).standard_normal((3, 4))
  found_ids, found = latent.nearest_neighbours(store, queries, 5, metric)
  if metric == "euclidean":
    brute = np.linalg.norm(queries[:, None] - z[None], axis=-1)
  else:
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    brute = 1 - queries @ unit.T / np.linalg.norm(queries, axis=1)[:, None]
  order = np.argsort(brute, axis=1)[:, :5]
  np.testing.assert_array_equal(found_ids, ids[order])
  np.testing.assert_allclose(
    found, np.take_along_axis(brute, order, 1), atol=1e-9
  )


def test_vae_and_autoencoder_codecs():
  images = _digits(6)
  model = vae((8, 8, 1), latent_size=4, hidden_features=(16,))
  params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  codec = latent.vae_codec(model)
  z = codec.encode(params, images)
  assert z.shape == (6, 4)
  x = codec.decode(params, z)
  assert x.shape == (6, 8, 8, 1) and 0 <= float(x.min()) <= float(x.max()) <= 1
  np.testing.assert_allclose(
    x,
    model.reconstruct(params, model.inputs({"image": images}, None)),
    atol=1e-6,
  )
  sampling = latent.vae_codec(model, posterior="sample")
  assert sampling.encode(params, images, jax.random.key(1)).shape == (6, 4)
  with pytest.raises(ValueError, match="key"):
    sampling.encode(params, images)
  assert codec.sample(params, jax.random.key(2), 3, 0.7).shape == (3, 4)

  ae = autoencoder((8, 8, 1), latent_size=5, latent_dtype="bfloat16")
  ae_params = ae.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  ae_codec = latent.autoencoder_codec(ae)
  code = ae_codec.encode(ae_params, images)
  assert code.shape == (6, 5) and code.dtype == jnp.float32
  assert ae_codec.decode(ae_params, code).shape == (6, 8, 8, 1)
  with pytest.raises(ValueError, match="no prior"):
    latent.sample_latents(ae_codec, ae_params, jax.random.key(0), 2)
  with pytest.raises(ValueError, match="family"):
    latent.codec_from_task(types.SimpleNamespace(family="gan"), {})


def test_mnist_attributes_follow_ink_and_slant():
  images = np.zeros((4, 9, 9), np.uint8)
  for row in range(9):
    images[0, row, 4] = 255  # upright, thin
    images[1, row, 3:6] = 255  # upright, thick
    images[2, row, 8 - row] = 255  # top leans right, thin
    images[3, row, row] = 255  # top leans left, thin
  attributes, names = latent.mnist_attributes(images, [1, 1, 7, 7])
  columns = dict(zip(names, attributes.T, strict=True))
  np.testing.assert_array_equal(columns["digit_7"], [0, 0, 1, 1])
  np.testing.assert_array_equal(columns["thick"], [0, 1, 0, 0])
  np.testing.assert_array_equal(columns["slanted"], [0, 0, 1, 0])
  with pytest.raises(ValueError, match="labels"):
    latent.mnist_attributes(images, [1, 1, 7, 10])


def _run(*args):
  result = run_python([SCRIPT, *args])
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


@pytest.mark.slow
def test_command_line_end_to_end(tmp_path):
  config = importlib.import_module("configs.glow_digits")
  config = config.get_config("smoke").to_dict()
  workdir, store = str(tmp_path / "run"), str(tmp_path / "store")
  loop.train_and_evaluate(config, workdir)
  out = _run(
    "encode",
    f"--workdir={workdir}",
    f"--store={store}",
    "--split=test",
    "--attributes=mnist",
    "--batch_size=128",
  )
  assert "297 encodings of size 64" in out
  vectors = str(tmp_path / "vectors.npz")
  out = _run("vectors", f"--store={store}", f"--output={vectors}")
  assert "thick" in out and os.path.isfile(vectors)
  grid = str(tmp_path / "thick.png")
  _run(
    "manipulate",
    f"--workdir={workdir}",
    f"--vectors={vectors}",
    "--attribute=thick",
    "--indices=0,1,2",
    f"--output={grid}",
  )
  strip = str(tmp_path / "strip.png")
  _run(
    "interpolate",
    f"--workdir={workdir}",
    "--indices=0,1,2",
    "--steps=5",
    "--kind=slerp",
    f"--output={strip}",
  )
  assert os.path.isfile(grid) and os.path.isfile(strip)
  with open(os.path.join(store, "manifest.json")) as f:
    manifest = json.load(f)
  assert manifest["complete"] and manifest["source"]["split"] == "test"
