"""Latent arithmetic with a trained flow, VAE or auto-encoder.

  # 1. encode a labelled split once (MNIST-style attributes from the labels
  #    and the pixels, or the data's own attribute columns)
  python experiments/latent_arithmetic.py encode \
      --workdir=workdirs/glow_mnist --store=stores/glow_mnist \
      --split=train --attributes=mnist
  # 2. attribute vectors: mean(positives) - mean(negatives) per attribute
  python experiments/latent_arithmetic.py vectors \
      --store=stores/glow_mnist --output=stores/glow_mnist_vectors.npz
  # 3. move test images along one vector: a PNG grid, one row per image,
  #    the input then one column per alpha
  python experiments/latent_arithmetic.py manipulate \
      --workdir=workdirs/glow_mnist --vectors=stores/glow_mnist_vectors.npz \
      --attribute=thick --indices=0,1,2,3 --alphas=-2,-1,0,1,2
  # 4. interpolate between consecutive test images (a PNG strip per pair)
  python experiments/latent_arithmetic.py interpolate \
      --workdir=workdirs/glow_mnist --indices=0,1,2 --steps=8 --kind=slerp

The data default to the run's own dataset and data file; the split defaults
to "train" for ``encode`` and "test" otherwise. ``manipulate`` refuses a
vectors file made from another checkpoint (its fingerprint differs).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import distributed  # noqa: E402
import failures  # noqa: E402

# The multi-process and device flags (--num_cpu_devices, ...) in --helpshort.
flags.adopt_module_key_flags(distributed)

COMMANDS = ("encode", "vectors", "manipulate", "interpolate")

_WORKDIR = flags.DEFINE_string(
  "workdir", None, "training run directory (experiments/train.py)."
)
_BEST = flags.DEFINE_bool(
  "best", False, "use the best checkpoint instead of the latest."
)
_POSTERIOR = flags.DEFINE_enum(
  "posterior",
  "mean",
  ["mean", "sample"],
  "VAEs: encode the posterior mean or one posterior sample.",
)
_STORE = flags.DEFINE_string("store", None, "encoding store directory.")
_DATASET = flags.DEFINE_string(
  "dataset", None, "dataset name (default: the run's)."
)
_DATA_PATH = flags.DEFINE_string(
  "data_path", None, "local dataset file (default: the run's)."
)
_SPLIT = flags.DEFINE_enum(
  "split",
  None,
  ["train", "test"],
  "split (default: train for encode, test otherwise).",
)
_NUM_EXAMPLES = flags.DEFINE_integer(
  "num_examples", 0, "use the first examples of the split only (0: all)."
)
_ATTRIBUTES = flags.DEFINE_enum(
  "attributes",
  "source",
  ["source", "mnist"],
  "'source': the data's own "
  "attribute columns (or its label); 'mnist': digit one-hot, thick and "
  "slanted from the labels and pixels.",
)
_BATCH = flags.DEFINE_integer(
  "batch_size", None, "encoding batch (default: the run's eval batch)."
)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "replace the store.")
_OUTPUT = flags.DEFINE_string("output", None, "output file.")
_VECTORS = flags.DEFINE_string(
  "vectors", None, "attribute vectors file written by 'vectors'."
)
_ATTRIBUTE = flags.DEFINE_string("attribute", None, "attribute to move along.")
_ALPHAS = flags.DEFINE_list(
  "alphas", ["-2", "-1", "0", "1", "2"], "multiples of the vector to add."
)
_INDICES = flags.DEFINE_list(
  "indices", ["0", "1"], "examples of the split to manipulate/interpolate."
)
_STEPS = flags.DEFINE_integer("steps", 8, "points along each interpolation.")
_KIND = flags.DEFINE_enum(
  "kind", "linear", ["linear", "slerp"], "interpolation path."
)


def _required(flag) -> str:
  if not flag.value:
    raise app.UsageError(f"--{flag.name} is required for this command.")
  return flag.value


def _data_fields(experiment) -> tuple[str, str]:
  """The dataset name and file: the flags, else the run's own."""
  config = experiment.config
  return (
    _DATASET.value or config["dataset"],
    _DATA_PATH.value or config["data_path"],
  )


def _load_split(experiment, split: str) -> dict:
  from flowjax_gen import data  # noqa: PLC0415

  dataset, path = _data_fields(experiment)
  return data.load(
    dataset,
    split,
    path=path or None,
    num_examples=_NUM_EXAMPLES.value or None,
    seed=experiment.config["seed"],
  )


def _encode_command(latent, codec, params, fingerprint, experiment) -> str:
  from flowjax_gen import data  # noqa: PLC0415

  store_path = _required(_STORE)
  split = _SPLIT.value or "train"
  source = dict(_load_split(experiment, split))
  names = None
  if _ATTRIBUTES.value == "mnist":
    if "label" not in source:
      raise ValueError("--attributes=mnist needs a labelled dataset.")
    attributes, names = latent.mnist_attributes(
      source["image"], source.pop("label")
    )
    source["attributes"] = attributes
  dataset, path = _data_fields(experiment)
  if names is None and "attributes" in source and dataset == "npz":
    names = data.attribute_names(path)
  info = {
    "workdir": os.path.abspath(_WORKDIR.value),
    "checkpoint": "best" if _BEST.value else "latest",
    "dataset": dataset,
    "data_path": path,
    "split": split,
    "attributes": _ATTRIBUTES.value,
    "posterior": _POSTERIOR.value,
  }
  store = latent.encode_dataset(
    codec,
    params,
    source,
    store_path,
    fingerprint=fingerprint,
    batch_size=_BATCH.value or experiment.config["eval_batch_size"],
    mesh=experiment.mesh,
    attribute_names=names,
    source_info=info,
    overwrite=_OVERWRITE.value,
  )
  columns = store.attribute_names or list(store.columns)
  return (
    f"store: {store_path} ({store.num_examples} encodings of size "
    f"{store.latent_size}; columns {columns})"
  )


def _vectors_command(latent) -> str:
  import jax  # noqa: PLC0415

  store_path = _required(_STORE)
  store = latent.EncodingStore.open(store_path)
  checks = {}
  if _WORKDIR.value:
    from flowjax_gen import runs  # noqa: PLC0415

    codec, _, fingerprint, _ = runs.load_codec(_WORKDIR.value, best=_BEST.value)
    checks = {"fingerprint": fingerprint, "latent_size": codec.latent_size}
  vectors = latent.attribute_vectors(store, **checks)
  output = _OUTPUT.value or store_path.rstrip(os.sep) + "_vectors.npz"
  if jax.process_index() == 0:
    latent.save_vectors(
      output,
      vectors,
      fingerprint=store.fingerprint,
      latent_size=store.latent_size,
    )
  counts = ", ".join(
    f"{name} ({v['num_positive']}+/{v['num_negative']}-)"
    for name, v in vectors.items()
  )
  return f"vectors: {output}: {counts}"


def _images(experiment, codec):
  import numpy as np  # noqa: PLC0415

  if len(codec.event_shape) != 3:
    raise ValueError(
      f"images are needed; the model's data are {codec.event_shape}."
    )
  source = _load_split(experiment, _SPLIT.value or "test")
  indices = [int(i) for i in _INDICES.value]
  n = len(source["image"])
  if not indices or min(indices) < 0 or max(indices) >= n:
    raise ValueError(f"--indices must be in 0..{n - 1}; got {indices}.")
  return np.asarray(source["image"])[indices]


def _save_grid(images, name: str, columns: int) -> str:
  """Writes the PNG (process 0 only; every process computed the images)."""
  import jax  # noqa: PLC0415

  from flowjax_gen.training import reporting  # noqa: PLC0415

  output = _OUTPUT.value or os.path.join(_WORKDIR.value, "latent", name)
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    scale = max(1, 64 // images.shape[1])
    reporting.save_image_grid(images, output, scale=scale, columns=columns)
  return output


def _manipulate_command(latent, codec, params, fingerprint, experiment) -> str:
  import jax  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415

  vectors = latent.load_vectors(
    _required(_VECTORS), fingerprint=fingerprint, latent_size=codec.latent_size
  )
  name = _required(_ATTRIBUTE)
  if name not in vectors:
    raise ValueError(
      f"--attribute must be one of {list(vectors)}; got {name!r}."
    )
  images = _images(experiment, codec)
  alphas = [float(a) for a in _ALPHAS.value]
  key = jax.random.key(experiment.config["seed"])
  z = jax.jit(codec.encode)(params, images, key)
  moved = latent.manipulate(z, vectors[name], alphas)  # (alphas, B, d)
  moved = moved.transpose(1, 0, 2).reshape(-1, codec.latent_size)
  decoded = np.asarray(jax.jit(codec.decode)(params, moved))
  decoded = decoded.reshape(len(images), len(alphas), *codec.event_shape)
  inputs = (np.asarray(images, np.float32) / 255.0)[:, None]
  grid = np.concatenate([inputs, decoded], axis=1).reshape(
    -1, *codec.event_shape
  )
  output = _save_grid(grid, f"manipulate_{name}.png", len(alphas) + 1)
  return (
    f"manipulation: {output} (rows: examples {_INDICES.value}; columns: the "
    f"input, then {name} at alpha = {alphas})"
  )


def _interpolate_command(latent, codec, params, experiment) -> str:
  import jax  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415

  images = _images(experiment, codec)
  if len(images) < 2:
    raise ValueError(
      f"--indices must name two or more examples; got {_INDICES.value}."
    )
  key = jax.random.key(experiment.config["seed"])
  z = jax.jit(codec.encode)(params, images, key)
  ts = np.linspace(0.0, 1.0, _STEPS.value)
  path = latent.interpolate(z[:-1], z[1:], ts, kind=_KIND.value)  # (T, P, d)
  path = path.transpose(1, 0, 2).reshape(-1, codec.latent_size)
  decoded = np.asarray(jax.jit(codec.decode)(params, path))
  output = _save_grid(decoded, f"interpolate_{_KIND.value}.png", len(ts))
  pairs = list(zip(_INDICES.value[:-1], _INDICES.value[1:], strict=True))
  return (
    f"interpolation: {output} ({_KIND.value}, {len(ts)} points; rows {pairs})"
  )


def main(argv):
  if len(argv) != 2 or argv[1] not in COMMANDS:
    raise app.UsageError(f"give one command of {COMMANDS}; got {argv[1:]}.")
  command = argv[1]
  logging.set_verbosity(logging.WARNING)
  distributed.initialize()
  try:
    return _run(command)
  except app.UsageError:
    raise
  except Exception as error:  # noqa: BLE001 -- one line; traceback in a log
    folder = _WORKDIR.value or _STORE.value
    return failures.report(
      error, failures.log_path(folder, "latent_arithmetic.log")
    )


def _run(command: str) -> int:
  import jax  # noqa: PLC0415

  from flowjax_gen import latent, runs  # noqa: PLC0415

  if command == "vectors":
    message = _vectors_command(latent)
  else:
    codec, params, fingerprint, experiment = runs.load_codec(
      _required(_WORKDIR), best=_BEST.value, posterior=_POSTERIOR.value
    )
    if command == "encode":
      message = _encode_command(latent, codec, params, fingerprint, experiment)
    elif command == "manipulate":
      message = _manipulate_command(
        latent, codec, params, fingerprint, experiment
      )
    else:
      message = _interpolate_command(latent, codec, params, experiment)
  if jax.process_index() == 0:
    print(message)
  return 0


if __name__ == "__main__":
  app.run(main)
