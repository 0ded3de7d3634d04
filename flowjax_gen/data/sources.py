"""In-memory array sources: ``load(name, split) -> {"image", "label"}``.

A source is a dict of numpy arrays sharing one leading (example) axis. Images
are uint8 NHWC for pixel data and float32 ``(N, 2)`` for the 2-D toy
densities; ``is_discrete`` tells the two apart so the objective knows whether
to dequantise. Every source has the splits ``"train"`` and ``"test"`` only.

* ``"digits"``: scikit-learn's 8x8 digits (bundled, no download). Pixels
  ``v`` in 0..16 become ``round(v * 255 / 16)`` (round half to even, so 8 maps
  to 128). The split is fixed: a permutation drawn from seed 0, whatever
  ``seed`` is, whose first 1500 examples are "train" and last 297 "test".
* ``"two_moons"``, ``"8gaussians"``, ``"checkerboard"``, ``"pinwheel"``: the
  toy densities of FFJORD (Grathwohl et al. 2019, ``lib/toy_data.py``), drawn
  from ``default_rng([seed, split_id])`` so train and test never share draws.
  ``"label"`` is the mixture component (moon, Gaussian, arm); 0 on the
  checkerboard. Moons use noise 0.05 (FFJORD used 0.1) for sharper arcs.
* ``"npz"``: a local ``.npz`` at ``path`` with ``x_train``, ``y_train``,
  ``x_test``, ``y_test`` (the Keras MNIST layout); rank-3 images gain a
  trailing channel axis. Or a labelled-attribute file with ``images``,
  ``attributes`` (0/1 per column), optional ``attr_names`` and
  ``image_ids`` (a face set such as a CelebA subset): it has no split of
  its own, so the last ``ATTRIBUTE_TEST_SIZE`` examples are "test" and the
  rest "train"; the source then holds ``"attributes"`` (int32) and ``"id"``,
  and ``attribute_names(path)`` gives the column names.
* ``"records"``: a folder at ``path`` of ArrayRecord files that
  ``records.write_records`` wrote (``records.RecordSource``, read whole).
* any other name: ``tfds.data_source``, which reads prepared ArrayRecord files
  without TensorFlow; a dataset not prepared in the data directory is
  refused at once, naming the directory (it is never downloaded). The
  whole split is read into memory, so pass ``num_examples`` for large sets
  (CelebA's train split is about 19 GB).
  CelebA has no label; its 40 boolean attributes become ``"attributes"``,
  int32 ``(N, 40)``, columns in sorted attribute-name order.

Every split is checked once, at load: an example with a NaN or inf in any
array, or an image value outside ``value_range`` (integer images: always
0..255, the pixel levels the models read), is refused with a
``BadDataError`` naming the split, the number of bad examples and the first
one's index (and the file, for ``npz``), before a model trains on it and
skips updates or initialises on NaN. ``drop_bad=True`` drops them instead,
with a warning that gives the count.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Sequence
from typing import Any, Optional, cast

import numpy as np

SPLITS = ("train", "test")
TOY_DENSITIES = ("two_moons", "8gaussians", "checkerboard", "pinwheel")
Source = dict[str, np.ndarray]

_DIGITS_TRAIN = 1500
ATTRIBUTE_TEST_SIZE = 1000
_TOY_SIZES = {"train": 10000, "test": 2000}
PIXEL_RANGE = (0, 255)


class BadDataError(ValueError):
  """A split holds examples with NaN/inf or out-of-range values."""


def load(
  name: str,
  split: str = "train",
  *,
  path: Optional[str] = None,
  data_dir: Optional[str] = None,
  num_examples: Optional[int] = None,
  seed: int = 0,
  value_range: Optional[tuple[float, float]] = None,
  drop_bad: bool = False,
) -> Source:
  """Loads one split of a named source into numpy arrays and checks them.

  Args:
    name: ``"digits"``, a toy density, ``"npz"``, ``"records"`` or a TFDS
      dataset name.
    split: ``"train"`` or ``"test"``.
    path: The ``.npz`` file or the records folder, for ``name="npz"`` or
      ``"records"`` only.
    data_dir: TFDS data directory (TFDS's default when ``None``).
    num_examples: Keep the first ``num_examples`` examples; for the toy
      densities, the number drawn (default 10000 train, 2000 test).
    seed: Seed of the toy densities; the other sources ignore it.
    value_range: Bounds ``(low, high)`` every ``"image"`` value must lie
      in; ``None`` checks integer images against 0..255 and float ones
      only for finiteness.
    drop_bad: Drop the examples that fail the check (with a warning giving
      their number) instead of refusing the split.

  Returns:
    A dict of arrays with equal leading length, with at least ``"image"``.

  Raises:
    BadDataError: Some examples hold NaN/inf or values outside the range,
      and ``drop_bad`` is false.
    ValueError: For an unknown split or dataset, or a malformed npz file.
  """
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  if num_examples is not None and num_examples <= 0:
    raise ValueError(f"num_examples must be positive, got {num_examples}")
  origin = name
  if name in TOY_DENSITIES:
    n = num_examples or _TOY_SIZES[split]
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    points, labels = _TOY_FNS[name](rng, n)
    source = {
      "image": points.astype(np.float32),
      "label": labels.astype(np.int32),
    }
  elif name == "digits":
    source = _digits(split)
  elif name == "npz":
    source, origin = _npz(path, split), f"npz file {path}"
  elif name == "records":
    # Imported here: the records module checks with this one's functions.
    from flowjax_gen.data.records import RecordSource  # noqa: PLC0415

    records = RecordSource(name, split, path=path, num_examples=num_examples)
    source = records.read(range(len(records)))  # checked below, as a whole
    origin = f"records in {path}"
  else:
    source = _tfds(name, split, data_dir, num_examples)
    origin = f"tfds dataset {name!r}"
  if num_examples is not None:
    source = {k: v[:num_examples] for k, v in source.items()}
  return _checked(
    source, f"{split} split of {origin}", value_range, drop_bad=drop_bad
  )


def bad_examples(
  source: Source, value_range: Optional[tuple[float, float]]
) -> tuple[np.ndarray, np.ndarray]:
  """Masks of the examples with a NaN/inf in any float array and of those
  with an ``"image"`` value outside ``value_range``."""
  n = len(source["image"])
  non_finite = np.zeros(n, bool)
  for array in source.values():
    if np.issubdtype(array.dtype, np.inexact):
      non_finite |= ~np.isfinite(array.reshape(n, -1)).all(axis=1)
  image = source["image"]
  low, high = value_range or (None, None)
  if value_range is None and np.issubdtype(image.dtype, np.integer):
    low, high = PIXEL_RANGE
    info = np.iinfo(image.dtype)
    if low <= info.min and info.max <= high:  # uint8: nothing to check
      low = high = None
  outside = np.zeros(n, bool)
  if low is not None and high is not None:
    flat = image.reshape(n, -1)
    outside = ((flat < low) | (flat > high)).any(axis=1) & ~non_finite
  return non_finite, outside


def _checked(
  source: Source,
  what: str,
  value_range: Optional[tuple[float, float]],
  *,
  drop_bad: bool,
) -> Source:
  """``source`` if every example is usable; else refused, or without the
  bad examples when ``drop_bad``."""
  non_finite, outside = bad_examples(source, value_range)
  bad = non_finite | outside
  count = int(bad.sum())
  if not count:
    return source
  kinds = []
  if non_finite.any():
    kinds.append(f"{int(non_finite.sum())} with NaN/inf values")
  if outside.any():
    bounds = value_range or PIXEL_RANGE
    kinds.append(
      f"{int(outside.sum())} with image values outside "
      f"[{bounds[0]}, {bounds[1]}]"
    )
  counts = f"{count} of {len(bad)} examples"
  details = f"({', '.join(kinds)}), the first at index {int(np.argmax(bad))}"
  if not drop_bad:
    raise BadDataError(
      f"{what}: {counts} are bad {details}. Fix the data, or drop them "
      "(drop_bad=True; config.drop_bad_examples = True for training)."
    )
  warnings.warn(f"{what}: dropped {counts} {details}.", stacklevel=3)
  return {k: v[~bad] for k, v in source.items()}


def event_shape(source: Source) -> tuple[int, ...]:
  """The shape of one example's ``"image"``, e.g. ``(28, 28, 1)``."""
  return tuple(source["image"].shape[1:])


def is_discrete(source: Source) -> bool:
  """Whether ``"image"`` holds integer pixel levels (uint8) to dequantise."""
  return bool(np.issubdtype(source["image"].dtype, np.integer))


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
  """``(1797, 64)`` pixels (the 8x8 images, flattened) and the digits.

  Read from the CSV file scikit-learn ships (the file
  ``sklearn.datasets.load_digits`` parses, the same way): importing
  scikit-learn takes ~2.5 s, more than the rest of a small run's start-up.
  If the file is not where it has always been, ``load_digits`` it is.
  """
  spec = importlib.util.find_spec("sklearn")
  if spec is not None and spec.origin is not None:
    path = os.path.join(
      os.path.dirname(spec.origin), "datasets", "data", "digits.csv.gz"
    )
    if os.path.isfile(path):
      table = np.loadtxt(path, delimiter=",")
      return table[:, :-1], table[:, -1].astype(int)
  from sklearn.datasets import load_digits  # noqa: PLC0415

  flat, target = load_digits(return_X_y=True)
  return np.asarray(flat), np.asarray(target)


def _digits(split: str) -> Source:
  flat, target = _digits_arrays()
  images = flat.reshape(-1, 8, 8)
  # Independent of ``seed`` so every run evaluates on the same 297 digits.
  order = np.random.default_rng(0).permutation(len(target))
  order = order[:_DIGITS_TRAIN] if split == "train" else order[_DIGITS_TRAIN:]
  pixels = np.round(images[order] * 255.0 / 16.0)
  return {
    "image": pixels.astype(np.uint8)[..., None],
    "label": target[order].astype(np.int32),
  }


def _npz(path: Optional[str], split: str) -> Source:
  if path is None:
    raise ValueError('name="npz" needs path=<file.npz>')
  if not os.path.isfile(path):
    raise ValueError(f"npz file not found: {path}")
  with np.load(path, allow_pickle=False) as arrays:
    present = sorted(arrays.files)
    if "images" in present and "attributes" in present:
      return _attribute_npz(path, arrays, split)
    for key in (f"x_{split}", f"y_{split}"):
      if key not in present:
        raise ValueError(f"{path} has no array {key!r}; it has {present}")
    images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
  if len(images) != len(labels):
    raise ValueError(
      f"{path}: x_{split} has {len(images)} examples but "
      f"y_{split} has {len(labels)}"
    )
  if images.ndim == 3:
    images = images[..., None]
  if np.issubdtype(labels.dtype, np.integer):
    labels = labels.astype(np.int32)
  return {"image": images, "label": labels}


def _attribute_npz(path: str, arrays, split: str) -> Source:
  images, attributes = arrays["images"], arrays["attributes"]
  n = len(images)
  if len(attributes) != n:
    raise ValueError(
      f"{path}: images has {n} examples but attributes has {len(attributes)}"
    )
  if n <= 2 * ATTRIBUTE_TEST_SIZE:
    raise ValueError(
      f"{path}: {n} examples; the last {ATTRIBUTE_TEST_SIZE} are the test "
      "split, so there must be more than twice as many"
    )
  ids = arrays["image_ids"] if "image_ids" in arrays.files else np.arange(n)
  rows = slice(None, n - ATTRIBUTE_TEST_SIZE)
  if split == "test":
    rows = slice(n - ATTRIBUTE_TEST_SIZE, None)
  if images.ndim == 3:
    images = images[..., None]
  return {
    "image": images[rows],
    "attributes": attributes[rows].astype(np.int32),
    "id": np.asarray(ids)[rows],
  }


def attribute_names(path: str) -> list[str]:
  """Column names of a labelled-attribute ``.npz`` (``attr_names``, or
  ``attribute_0``, ... when the file has none)."""
  with np.load(path, allow_pickle=False) as arrays:
    if "attributes" not in arrays.files:
      raise ValueError(f"{path} has no 'attributes' array")
    if "attr_names" in arrays.files:
      return [str(name) for name in arrays["attr_names"]]
    return [f"attribute_{i}" for i in range(arrays["attributes"].shape[1])]


def tfds_records(
  name: str, split: str, data_dir: Optional[str], *, alternative: str
) -> Sequence[Any]:
  """The random-access records of a TFDS split (``tfds.data_source``).

  Never a download: offline it retries for minutes before failing, and
  preparing a dataset is a step of its own (``tfds build``).

  Raises:
    ValueError: ``name`` is no TFDS dataset, or it is not prepared in the
      data directory (the message says how to prepare it, then
      ``alternative``).
  """
  import tensorflow_datasets as tfds  # noqa: PLC0415

  try:
    # One split name gives one source (a tree of them for a tree of names).
    return cast(
      Sequence[Any],
      tfds.data_source(name, split=split, data_dir=data_dir, download=False),
    )
  except tfds.core.DatasetNotFoundError as e:
    raise ValueError(
      f"unknown dataset {name!r}: not a built-in source and not a TFDS dataset"
    ) from e
  except Exception:
    builder = tfds.builder(name, data_dir=data_dir)
    if builder.is_prepared():
      raise
    root = builder.data_dir_root
    raise ValueError(
      f"TFDS dataset {name!r} is not prepared as ArrayRecord in {root}: "
      f"prepare it there (tfds build {name} --data_dir={root} "
      f"--file_format=array_record), {alternative}"
    ) from None  # TFDS's own error here speaks of file formats, misleadingly


def _tfds(
  name: str, split: str, data_dir: Optional[str], num_examples: Optional[int]
) -> Source:
  records = tfds_records(
    name,
    split,
    data_dir,
    alternative="or train on a local file with --config.dataset=npz "
    "--config.data_path=FILE.npz",
  )
  n = len(records) if num_examples is None else min(num_examples, len(records))
  # One record at a time: ``__getitems__`` is faster on real ArrayRecord
  # files but is broken under ``tfds.testing.mock_data`` in TFDS 4.9.10.
  examples = [records[i] for i in range(n)]
  if not examples or "image" not in examples[0]:
    found = sorted(examples[0]) if examples else "no records"
    raise ValueError(
      f"{name!r} split {split!r}: expected an 'image' feature, got {found}"
    )
  source = {"image": np.stack([np.asarray(ex["image"]) for ex in examples])}
  if "label" in examples[0]:
    source["label"] = np.asarray([ex["label"] for ex in examples], np.int32)
  if "attributes" in examples[0]:
    names = sorted(examples[0]["attributes"])
    source["attributes"] = np.asarray(
      [[ex["attributes"][a] for a in names] for ex in examples], np.int32
    )
  return source


def _two_moons(rng: np.random.Generator, n: int):
  from sklearn.datasets import make_moons  # noqa: PLC0415

  points, labels = make_moons(
    n_samples=n, noise=0.05, random_state=int(rng.integers(2**31 - 1))
  )
  # FFJORD's affine map centres the moons on the origin at radius ~2.
  return np.asarray(points) * 2.0 + np.array([-1.0, -0.2]), np.asarray(labels)


def _eight_gaussians(rng: np.random.Generator, n: int):
  angles = np.arange(8) * (np.pi / 4.0)
  centers = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
  labels = rng.integers(8, size=n)
  points = centers[labels] + 0.5 * rng.standard_normal((n, 2))
  # FFJORD divides by 1.414, not sqrt(2); kept so results are comparable.
  return points / 1.414, labels


def _checkerboard(rng: np.random.Generator, n: int):
  x1 = rng.random(n) * 4.0 - 2.0
  # Drop x2 into [-2, -1) or [0, 1), then shift odd columns up by one, which
  # fills the 4x4 board's alternate squares.
  x2 = rng.random(n) - 2.0 * rng.integers(0, 2, size=n) + np.floor(x1) % 2
  return 2.0 * np.stack([x1, x2], axis=1), np.zeros(n, np.int32)


def _pinwheel(rng: np.random.Generator, n: int):
  num_arms, radial_std, tangential_std, rate = 5, 0.3, 0.1, 0.25
  labels = rng.permutation(np.arange(n) % num_arms)
  features = rng.standard_normal((n, 2)) * np.array(
    [radial_std, tangential_std]
  )
  features[:, 0] += 1.0
  # Each arm is a Gaussian blob rotated by an angle growing exponentially
  # with its radial coordinate, which bends it into a spiral arm.
  angles = (2.0 * np.pi / num_arms) * labels + rate * np.exp(features[:, 0])
  cos, sin = np.cos(angles), np.sin(angles)
  points = np.stack(
    [
      features[:, 0] * cos + features[:, 1] * sin,
      -features[:, 0] * sin + features[:, 1] * cos,
    ],
    axis=1,
  )
  return 2.0 * points, labels


_TOY_FNS = {
  "two_moons": _two_moons,
  "8gaussians": _eight_gaussians,
  "checkerboard": _checkerboard,
  "pinwheel": _pinwheel,
}
