"""Data sources and the batch iterator: shapes, determinism, resumption."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits

from flowjax_gen import data


def _rows(images: np.ndarray) -> np.ndarray:
  """Images as a lexicographically sorted 2-D array, for multiset checks."""
  flat = images.reshape(len(images), -1)
  return flat[np.lexsort(flat.T[::-1])]


def test_digits_shapes_range_and_fixed_split():
  train = data.load("digits", "train")
  test = data.load("digits", "test", seed=7)  # seed must not move the split
  assert train["image"].shape == (1500, 8, 8, 1)
  assert test["image"].shape == (297, 8, 8, 1)
  for split in (train, test):
    assert split["image"].dtype == np.uint8
    assert split["label"].dtype == np.int32
  assert train["image"].max() == 255 and train["image"].min() == 0
  assert data.is_discrete(train) and data.event_shape(train) == (8, 8, 1)
  # Train and test partition the 1797 digits (compared as multisets of
  # images, since some digits are duplicated in the raw set).
  raw = load_digits()
  full = np.round(raw.images * 255 / 16).astype(np.uint8)
  both = np.concatenate([train["image"], test["image"]])[..., 0]
  np.testing.assert_array_equal(_rows(both), _rows(full))
  np.testing.assert_array_equal(
    np.bincount(np.concatenate([train["label"], test["label"]])),
    np.bincount(raw.target),
  )
  again = data.load("digits", "test")
  np.testing.assert_array_equal(again["image"], test["image"])
  assert len(data.load("digits", num_examples=10)["label"]) == 10


@pytest.mark.parametrize("file_found", [True, False])
def test_digits_read_from_the_bundled_file_equal_load_digits(
  file_found, monkeypatch
):
  if not file_found:
    monkeypatch.setattr(
      data.sources.importlib.util, "find_spec", lambda _: None
    )
  flat, target = data.sources._digits_arrays()
  want_flat, want_target = load_digits(return_X_y=True)
  np.testing.assert_array_equal(flat, want_flat)
  np.testing.assert_array_equal(target, want_target)
  assert flat.dtype == want_flat.dtype and flat.shape == (1797, 64)


@pytest.mark.parametrize("name", data.sources.TOY_DENSITIES)
def test_toy_density_shapes_and_determinism(name):
  train = data.load(name, "train", seed=3)
  test = data.load(name, "test", seed=3, num_examples=500)
  assert train["image"].shape == (10000, 2)
  assert train["image"].dtype == np.float32
  assert train["label"].shape == (10000,)
  assert test["image"].shape == (500, 2)
  assert data.load(name, "test", seed=3)["image"].shape == (2000, 2)
  assert not data.is_discrete(train) and data.event_shape(train) == (2,)
  np.testing.assert_array_equal(
    train["image"], data.load(name, "train", seed=3)["image"]
  )
  assert not np.array_equal(train["image"][:500], test["image"])
  assert not np.array_equal(
    train["image"], data.load(name, "train", seed=4)["image"]
  )
  assert np.all(np.abs(train["image"]) < 6.0)


def test_toy_density_geometry():
  x = data.load("checkerboard", num_examples=4000)["image"]
  # Occupied 2x2 cells of the 8x8 board alternate like a checkerboard.
  parity = (np.floor(x[:, 0] / 2) + np.floor(x[:, 1] / 2)) % 2
  assert np.all(parity == parity[0])
  g = data.load("8gaussians", num_examples=4000)
  radii = np.linalg.norm(g["image"], axis=1)
  assert abs(np.median(radii) - 4 / 1.414) < 0.1
  p = data.load("pinwheel", num_examples=1001)
  assert np.bincount(p["label"]).tolist() == [201, 200, 200, 200, 200]


def _write_npz(path, **arrays):
  np.savez(path, **arrays)
  return str(path)


def test_npz_round_trip_and_errors(tmp_path):
  rng = np.random.default_rng(0)
  x_train = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
  y_train = rng.integers(0, 10, 12).astype(np.uint8)
  path = _write_npz(
    tmp_path / "mnist.npz",
    x_train=x_train,
    y_train=y_train,
    x_test=x_train[:4],
    y_test=y_train[:4],
  )
  train = data.load("npz", path=path)
  assert train["image"].shape == (12, 28, 28, 1)
  np.testing.assert_array_equal(train["image"][..., 0], x_train)
  np.testing.assert_array_equal(train["label"], y_train)
  assert train["label"].dtype == np.int32
  assert data.load("npz", "test", path=path)["image"].shape == (4, 28, 28, 1)
  assert len(data.load("npz", path=path, num_examples=5)["image"]) == 5

  missing = str(tmp_path / "nope.npz")
  with pytest.raises(ValueError, match="nope.npz"):
    data.load("npz", path=missing)
  with pytest.raises(ValueError, match="path"):
    data.load("npz")
  partial = _write_npz(
    tmp_path / "partial.npz", x_train=x_train, y_train=y_train
  )
  with pytest.raises(ValueError, match=r"'x_test'.*\['x_train', 'y_train'\]"):
    data.load("npz", "test", path=partial)
  ragged = _write_npz(
    tmp_path / "ragged.npz", x_train=x_train, y_train=y_train[:5]
  )
  with pytest.raises(ValueError, match="12 examples.*5"):
    data.load("npz", path=ragged)


def test_bad_split_and_num_examples():
  with pytest.raises(ValueError, match=r"\('train', 'test'\)"):
    data.load("digits", "validation")
  with pytest.raises(ValueError, match="num_examples"):
    data.load("two_moons", num_examples=0)


# USE_CODE builds the dataset info from the builder class, so neither the
# bundled metadata files nor the network (nor TensorFlow) is needed.
_MOCK = {"policy": tfds.testing.MockPolicy.USE_CODE}


def test_tfds_mnist_through_mock_data():
  with tfds.testing.mock_data(num_examples=6, **_MOCK):
    train = data.load("mnist", "train")
    few = data.load("mnist", "test", num_examples=4)
  assert train["image"].shape == (6, 28, 28, 1)
  assert train["image"].dtype == np.uint8
  assert train["label"].shape == (6,) and train["label"].dtype == np.int32
  assert np.all((train["label"] >= 0) & (train["label"] < 10))
  assert few["image"].shape == (4, 28, 28, 1)
  assert data.is_discrete(train) and data.event_shape(train) == (28, 28, 1)


def test_tfds_celeb_a_attributes_are_sorted_columns():
  with tfds.testing.mock_data(num_examples=3, **_MOCK):
    source = data.load("celeb_a", "test")
    raw = tfds.data_source("celeb_a", split="test")[1]["attributes"]
  assert source["image"].shape == (3, 218, 178, 3)
  assert source["attributes"].shape == (3, 40)
  assert "label" not in source
  expected = [int(raw[name]) for name in sorted(raw)]
  assert source["attributes"][1].tolist() == expected


def test_unknown_tfds_name(tmp_path):
  with pytest.raises(ValueError, match="no_such_dataset"):
    data.load("no_such_dataset", data_dir=str(tmp_path))


def _toy_source(n: int = 10) -> dict[str, np.ndarray]:
  return {
    "image": np.arange(n * 4 * 3, dtype=np.uint8).reshape(n, 4, 3, 1),
    "label": np.arange(n, dtype=np.int32),
  }


def test_epoch_coverage_and_remainder():
  source = _toy_source(10)
  it = data.BatchIterator(source, batch_size=4, seed=0, drop_remainder=False)
  assert it.steps_per_epoch == 3
  for _ in range(2):
    labels = [next(it)["label"] for _ in range(it.steps_per_epoch)]
    assert [len(x) for x in labels] == [4, 4, 2]
    assert sorted(np.concatenate(labels).tolist()) == list(range(10))
  dropped = data.BatchIterator(source, batch_size=4, seed=0)
  assert dropped.steps_per_epoch == 2
  epoch = np.concatenate([next(dropped)["label"] for _ in range(2)])
  assert len(set(epoch.tolist())) == 8
  assert dropped.get_state() == {"epoch": 1, "step_in_epoch": 0, "seed": 0}
  ordered = data.BatchIterator(source, batch_size=5, seed=0, shuffle=False)
  assert next(ordered)["label"].tolist() == [0, 1, 2, 3, 4]


def test_order_matches_documented_permutation_and_is_deterministic():
  source = _toy_source(12)
  a = data.BatchIterator(source, batch_size=4, seed=5)
  b = data.BatchIterator(source, batch_size=4, seed=5)
  labels = [next(a)["label"] for _ in range(6)]
  for x in labels:
    np.testing.assert_array_equal(x, next(b)["label"])
  for epoch in range(2):
    expected = np.random.default_rng([5, epoch]).permutation(12)
    np.testing.assert_array_equal(
      np.concatenate(labels[3 * epoch : 3 * epoch + 3]), expected
    )
  other = data.BatchIterator(source, batch_size=4, seed=6)
  assert not np.array_equal(next(other)["label"], labels[0])


@pytest.mark.parametrize("k", [0, 3, 5, 7])
def test_resume_from_state(k):
  source = _toy_source(11)
  kwargs = {"batch_size": 3, "seed": 2, "random_flip": True}
  reference = data.BatchIterator(source, **kwargs)
  expected = list(itertools.islice(reference, k + 5))[k:]
  interrupted = data.BatchIterator(source, **kwargs)
  for _ in range(k):
    next(interrupted)
  state = interrupted.get_state()
  assert all(type(v) is int for v in state.values())
  resumed = data.BatchIterator(source, **kwargs)
  resumed.set_state(dict(state))
  for want in expected:
    got = next(resumed)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])


def test_process_slices_concatenate_to_global_batch():
  source = _toy_source(16)
  kwargs = {"batch_size": 6, "seed": 1, "random_flip": True}
  single = data.BatchIterator(source, **kwargs)
  hosts = [
    data.BatchIterator(source, process_index=p, process_count=2, **kwargs)
    for p in range(2)
  ]
  for _ in range(2 * single.steps_per_epoch):
    full = next(single)
    parts = [next(h) for h in hosts]
    assert [len(p["label"]) for p in parts] == [3, 3]
    for key in full:
      np.testing.assert_array_equal(
        np.concatenate([p[key] for p in parts]), full[key]
      )


def test_random_flip_is_per_example_and_reproducible():
  source = _toy_source(64)
  flips = []
  for _ in range(2):
    it = data.BatchIterator(source, batch_size=32, seed=4, random_flip=True)
    batch = next(it)
    original = source["image"][batch["label"]]
    mirrored = original[:, :, ::-1]
    flipped = np.all(batch["image"] == mirrored, axis=(1, 2, 3))
    assert np.all(flipped | np.all(batch["image"] == original, axis=(1, 2, 3)))
    flips.append(flipped)
  np.testing.assert_array_equal(flips[0], flips[1])
  assert 0 < flips[0].sum() < 32


def test_iterator_errors():
  source = _toy_source(10)
  with pytest.raises(ValueError, match="batch_size=0|got 0"):
    data.BatchIterator(source, batch_size=0, seed=0)
  with pytest.raises(ValueError, match="batch_size=11"):
    data.BatchIterator(source, batch_size=11, seed=0)
  with pytest.raises(ValueError, match="batch_size=5.*process_count=2"):
    data.BatchIterator(source, batch_size=5, seed=0, process_count=2)
  with pytest.raises(ValueError, match="process_count=4"):
    data.BatchIterator(
      source, batch_size=4, seed=0, process_count=4, drop_remainder=False
    )
  with pytest.raises(ValueError, match="length"):
    data.BatchIterator(
      {"image": np.zeros((3, 2)), "label": np.zeros(4)}, batch_size=1, seed=0
    )
  with pytest.raises(ValueError, match="rank 4"):
    data.BatchIterator(
      {"image": np.zeros((3, 2))}, batch_size=1, seed=0, random_flip=True
    )
  it = data.BatchIterator(source, batch_size=2, seed=0)
  with pytest.raises(ValueError, match="seed=1"):
    it.set_state({"epoch": 0, "step_in_epoch": 0, "seed": 1})
  with pytest.raises(ValueError, match="step_in_epoch=5"):
    it.set_state({"epoch": 0, "step_in_epoch": 5, "seed": 0})
  with pytest.raises(ValueError, match="lacks"):
    it.set_state({"epoch": 0})


def test_attribute_npz_keeps_the_last_examples_for_test(tmp_path):
  n = data.sources.ATTRIBUTE_TEST_SIZE * 2 + 50
  rng = np.random.default_rng(0)
  path = str(tmp_path / "faces.npz")
  np.savez(
    path,
    images=rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8),
    attributes=rng.integers(0, 2, (n, 3), dtype=np.uint8),
    attr_names=np.array(["Smiling", "Eyeglasses", "Male"]),
    image_ids=np.arange(1, n + 1),
  )
  train = data.load("npz", "train", path=path)
  test = data.load("npz", "test", path=path)
  assert len(train["image"]) == n - data.sources.ATTRIBUTE_TEST_SIZE
  assert len(test["image"]) == data.sources.ATTRIBUTE_TEST_SIZE
  np.testing.assert_array_equal(test["id"], np.arange(n - 999, n + 1))
  assert test["attributes"].dtype == np.int32
  assert data.attribute_names(path) == ["Smiling", "Eyeglasses", "Male"]
  np.savez(path, images=np.zeros((10, 4, 4, 3)), attributes=np.zeros((10, 3)))
  with pytest.raises(ValueError, match="more than twice"):
    data.load("npz", "train", path=path)


def test_bad_examples_are_refused_or_dropped_at_load(tmp_path):
  images = np.full((10, 4, 4), 7, np.int64)
  images[2, 0, 0], images[6, 1, 1] = 300, -1  # not 8-bit pixel levels
  floats = images.clip(0, 255).astype(np.float32)
  floats[4, 3, 3] = np.nan
  path = _write_npz(
    tmp_path / "bad.npz",
    x_train=images,
    y_train=np.zeros(10, np.int64),
    x_test=floats,
    y_test=np.zeros(10, np.int64),
  )
  with pytest.raises(
    data.BadDataError,
    match=r"train split of npz file .*bad.npz: 2 of 10 examples are bad \(2 "
    r"with image values outside \[0, 255\]\), the first at index 2",
  ):
    data.load("npz", "train", path=path)
  assert len(data.load("npz", "train", path=path, num_examples=2)["image"]) == 2
  with pytest.raises(data.BadDataError, match="1 with NaN/inf values"):
    data.load("npz", "test", path=path)
  with pytest.raises(data.BadDataError, match=r"outside \[0, 5\]"):
    data.load("npz", "test", path=path, value_range=(0, 5), drop_bad=False)
  with pytest.warns(UserWarning, match="dropped 1 of 10 examples"):
    kept = data.load("npz", "test", path=path, drop_bad=True)
  assert len(kept["image"]) == len(kept["label"]) == 9
  assert np.isfinite(kept["image"]).all()
