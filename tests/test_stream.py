"""Streamed input: records on disk, the grain stream over them, and a run
that trains from it (resumes, falls back, refuses)."""

from __future__ import annotations

import json
import os
import random
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
from scripts import ROOT, kill_after_checkpoint, run_processes, run_python

from flowjax_gen import checkpoint, data, runs
from flowjax_gen.training import loop
from flowjax_gen.training.config import validate_config

TRAIN = os.path.join(ROOT, "experiments", "train.py")
SMOKE = os.path.join(ROOT, "experiments", "configs", "glow_digits.py:smoke")
NUM_RECORDS = 40


def _source(n: int = NUM_RECORDS, seed: int = 0) -> dict:
  """8x8x1 pixels whose label is the record's index, to trace records."""
  rng = np.random.default_rng(seed)
  return {
    "image": rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8),
    "label": np.arange(n, dtype=np.int32),
  }


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """A records folder: train (40 records in 3 shards) and test (16)."""
  path = tmp_path_factory.mktemp("records")
  data.write_records(_source(), str(path), "train", num_shards=3)
  data.write_records(_source(16, seed=1), str(path), "test")
  return str(path)


def _stream(folder, **kwargs) -> data.StreamIterator:
  records = data.RecordSource("records", "train", path=folder)
  kwargs.setdefault("batch_size", 8)
  kwargs.setdefault("seed", 3)
  return data.StreamIterator(records, **kwargs)


def test_records_read_back_what_was_written(folder):
  records = data.RecordSource("records", "train", path=folder)
  source = _source()
  assert len(records) == NUM_RECORDS
  assert len(data.records.record_files(folder, "train")) == 3
  batch = data.take(records, [0, 13, 39])
  np.testing.assert_array_equal(batch["image"], source["image"][[0, 13, 39]])
  assert batch["label"].tolist() == [0, 13, 39]
  assert batch["image"].dtype == np.uint8
  assert len(data.RecordSource("records", "test", path=folder)) == 16
  whole = data.load("records", "train", path=folder)  # into memory
  np.testing.assert_array_equal(whole["image"], source["image"])
  np.testing.assert_array_equal(whole["label"], source["label"])
  assert (
    len(data.RecordSource("records", "train", path=folder, num_examples=5)) == 5
  )


def test_each_epoch_is_a_permutation_and_batches_cross_epochs(folder):
  stream = _stream(folder, batch_size=12)
  # 40 records in batches of 12: the fourth batch holds the last 4 records
  # of epoch 0 and the first 8 of epoch 1.
  labels = np.concatenate([b["label"] for b in _take(stream, 10)])
  epochs = labels[: 3 * NUM_RECORDS].reshape(3, NUM_RECORDS)
  for epoch in epochs:
    assert sorted(epoch) == list(range(NUM_RECORDS))
  assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch
  assert stream.get_state()["batch"] == 10  # closing keeps the position
  np.testing.assert_array_equal(stream.record_indices(NUM_RECORDS), epochs[0])


@pytest.mark.parametrize("count", [2, 4])
def test_processes_read_disjoint_contiguous_parts_of_each_global_batch(
  folder, count
):
  single = _take(_stream(folder, random_flip=True), 7)
  parts = [
    _take(
      _stream(folder, random_flip=True, process_index=p, process_count=count),
      7,
    )
    for p in range(count)
  ]
  for step in range(7):
    joined = np.concatenate([parts[p][step]["label"] for p in range(count)])
    assert joined.tolist() == single[step]["label"].tolist()
    images = np.concatenate([parts[p][step]["image"] for p in range(count)])
    np.testing.assert_array_equal(images, single[step]["image"])
  # The first 5 global batches are epoch 0: every record read once, by one
  # process.
  seen = [
    label for p in range(count) for b in parts[p][:5] for label in b["label"]
  ]
  assert sorted(seen) == list(range(NUM_RECORDS))


def _take(stream, steps: int) -> list[dict]:
  batches = [next(stream) for _ in range(steps)]
  stream.close()
  return batches


def test_flips_mirror_about_half_of_the_images(folder):
  plain = _take(_stream(folder), 5)
  flipped = _take(_stream(folder, random_flip=True), 5)
  mirrored = same = 0
  for a, b in zip(plain, flipped, strict=True):
    assert a["label"].tolist() == b["label"].tolist()
    for x, y in zip(a["image"], b["image"], strict=True):
      mirrored += np.array_equal(x[:, ::-1], y) and not np.array_equal(x, y)
      same += np.array_equal(x, y)
  assert mirrored + same == 40 and 10 <= mirrored <= 30


@pytest.mark.parametrize(
  "resumed",
  [
    {"process_count": 2},
    {"process_count": 4, "threads": 0},
    {"threads": 3, "prefetch": 1},
  ],
  ids=["2 processes", "4 processes, no threads", "other threads"],
)
def test_a_saved_position_resumes_with_any_process_or_thread_count(
  folder, resumed
):
  straight = _take(_stream(folder), 9)
  first = _stream(folder)
  for _ in range(4):
    next(first)
  state = json.loads(json.dumps(first.get_state()))  # as a checkpoint holds it
  first.close()
  count = resumed.get("process_count", 1)
  streams = [_stream(folder, process_index=p, **resumed) for p in range(count)]
  for stream in streams:
    stream.set_state(state)
  for step in range(4, 9):
    joined = np.concatenate([next(s)["label"] for s in streams])
    assert joined.tolist() == straight[step]["label"].tolist()
  for stream in streams:
    stream.close()


def test_worker_processes_give_the_same_batches(folder):
  straight = _take(_stream(folder, random_flip=True), 6)
  stream = _stream(folder, random_flip=True, workers=2)
  stream.set_state({"batch": 2, "seed": 3, "num_records": NUM_RECORDS})
  got = _take(stream, 4)
  for a, b in zip(straight[2:], got, strict=True):
    np.testing.assert_array_equal(a["image"], b["image"])
    assert a["label"].tolist() == b["label"].tolist()


@pytest.mark.parametrize(
  "state, message",
  [
    ({"epoch": 0, "step_in_epoch": 1, "seed": 3}, "not a streamed input's"),
    ({"batch": 1, "seed": 4, "num_records": NUM_RECORDS}, "seed=4"),
    ({"batch": 1, "seed": 3, "num_records": 41}, "saved over 41 records"),
    ({"batch": -1, "seed": 3, "num_records": NUM_RECORDS}, "negative"),
  ],
)
def test_a_position_that_does_not_fit_is_refused(folder, state, message):
  with pytest.raises(ValueError, match=message):
    _stream(folder).set_state(state)


def test_bad_settings_are_refused(folder, tmp_path):
  with pytest.raises(ValueError, match="not divisible by process_count=3"):
    _stream(folder, batch_size=8, process_count=3)
  with pytest.raises(ValueError, match="seed"):
    _stream(folder, seed=-1)
  with pytest.raises(ValueError, match="no train-"):
    data.RecordSource("records", "train", path=str(tmp_path))
  with pytest.raises(ValueError, match="not a folder"):
    data.RecordSource("records", "train", path=str(tmp_path / "missing"))


@pytest.mark.parametrize(
  "image, what",
  [
    (np.float32(np.nan), "NaN/inf values"),
    (np.int16(300), r"image values outside \[0, 255\]"),
  ],
)
def test_a_bad_record_is_refused_when_its_batch_is_read(tmp_path, image, what):
  source = _source()
  images = source["image"].astype(np.asarray(image).dtype)
  images[17, 3, 3, 0] = image
  data.write_records({**source, "image": images}, str(tmp_path), "train")
  stream = _stream(str(tmp_path))  # no pass over the records: no error yet
  order = stream.record_indices(NUM_RECORDS).tolist()
  for _ in range(order.index(17) // 8):
    next(stream)
  with pytest.raises(data.BadDataError, match=f"record 17 holds {what}"):
    next(stream)
  stream.close()


def test_records_read_into_memory_are_checked_as_a_split(tmp_path):
  """``data.load`` reads a records folder whole and checks it as it checks
  any split: a bad record is refused with its index, or dropped."""
  source = _source()
  images = source["image"].astype(np.float32)
  images[17, 0, 0, 0] = np.nan
  data.write_records({**source, "image": images}, str(tmp_path), "train")
  with pytest.raises(data.BadDataError, match="the first at index 17"):
    data.load("records", "train", path=str(tmp_path))
  with pytest.warns(UserWarning, match="dropped 1 of 40 examples"):
    kept = data.load("records", "train", path=str(tmp_path), drop_bad=True)
  assert 17 not in kept["label"] and len(kept["label"]) == NUM_RECORDS - 1


def test_float_records_that_are_not_pixel_levels_are_refused(tmp_path):
  source = _source()
  images = source["image"].astype(np.float32)
  images[2, 0, 0, 0] = 0.5
  data.write_records({**source, "image": images}, str(tmp_path), "train")
  records = data.RecordSource(
    "records", "train", path=str(tmp_path), pixel_levels=True
  )
  assert records[1]["image"].dtype == np.uint8
  with pytest.raises(data.BadDataError, match="record 2 holds image values"):
    records[2]


def test_a_tfds_dataset_streams_through_mock_data():
  with tfds.testing.mock_data(
    num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE
  ):
    records = data.RecordSource("mnist", "train")
    batches = _take(data.StreamIterator(records, batch_size=4, seed=0), 5)
  assert len(records) == 20
  for batch in batches:
    assert batch["image"].shape == (4, 28, 28, 1)
    assert batch["image"].dtype == np.uint8
    assert batch["label"].dtype == np.int32


def _config(folder, **changes) -> dict:
  import importlib  # noqa: PLC0415

  config = importlib.import_module("configs.glow_digits").get_config("smoke")
  config = config.to_dict()
  config.update(
    input="stream",
    dataset="records",
    data_path=folder,
    num_train_examples=0,
    num_test_examples=0,
    num_steps=6,
    checkpoint_every=2,
    eval_every=4,
  )
  config.update(changes)
  return config


@pytest.mark.parametrize(
  "changes, message",
  [
    ({"dataset": "digits", "data_path": ""}, "is read into memory"),
    ({"dataset": "mnist"}, "is read only with config.dataset = 'npz'"),
    ({"data_path": "/no/such/folder"}, "no folder of ArrayRecord files"),
    ({"drop_bad_examples": True}, "refuses a bad record"),
    ({"input_workers": -1}, "config.input_workers"),
    ({"input": "disk"}, "config.input"),
    ({"batch_size": 6}, "divisible by the number of devices"),
  ],
)
def test_stream_configs_that_cannot_work_are_refused(folder, changes, message):
  config = _config(folder, **changes)
  with pytest.raises(ValueError, match=message):
    validate_config(config, num_devices=4, num_processes=2)


def test_a_global_batch_that_does_not_split_over_processes_is_refused(folder):
  config = _config(folder, batch_size=6)
  with pytest.raises(ValueError, match=r"processes \(4\)"):
    validate_config(config, num_devices=2, num_processes=4)


def _leaves(workdir, steps: int = 6) -> list[np.ndarray]:
  """The final state's leaves, after checking it is at ``steps``."""
  import jax  # noqa: PLC0415

  _, state, step = runs.load_trained(str(workdir))
  assert step == steps
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


@pytest.fixture(scope="module")
def finished_stream(folder, tmp_path_factory):
  """A 6-step streamed run (checkpoints at 2, 4, 6) and its final state."""
  workdir = tmp_path_factory.mktemp("stream") / "run"
  result = loop.train_and_evaluate(_config(folder), str(workdir))
  return workdir, result, _leaves(workdir)


# The tests of one trained run share a worker, which trains it once.
@pytest.mark.xdist_group("stream_run")
def test_a_corrupted_data_position_falls_back_like_a_corrupted_model(
  folder, finished_stream, tmp_path
):
  workdir = tmp_path / "run"
  shutil.copytree(finished_stream[0], workdir)
  meta = workdir / "checkpoints" / "6" / "meta" / "metadata"
  saved = json.loads(meta.read_text())
  assert saved["data"] == {"batch": 6, "seed": 0, "num_records": NUM_RECORDS}
  # One digit of the position changed: the checksums no longer match.
  meta.write_text(meta.read_text().replace('"batch": 6', '"batch": 7'))
  with pytest.warns(UserWarning, match="checkpoint step 6 could not be read"):
    result = loop.train_and_evaluate(_config(folder), str(workdir))
  assert (workdir / "checkpoints" / "corrupt" / "step_6").is_dir()
  assert result["bits_per_dim"] == finished_stream[1]["bits_per_dim"]
  for a, b in zip(_leaves(workdir), finished_stream[2], strict=True):
    np.testing.assert_array_equal(a, b)


@pytest.mark.xdist_group("stream_run")
def test_a_position_over_other_records_falls_back(
  folder, finished_stream, tmp_path
):
  workdir = tmp_path / "run"
  shutil.copytree(finished_stream[0], workdir)
  step_dir = workdir / "checkpoints" / "6"
  meta = step_dir / "meta" / "metadata"
  saved = json.loads(meta.read_text())
  saved["data"]["num_records"] = NUM_RECORDS + 1
  meta.write_text(json.dumps(saved))
  checkpoint._write_checksums(str(step_dir))  # valid, checksummed, wrong
  with pytest.warns(UserWarning, match="saved over 41 records"):
    loop.train_and_evaluate(_config(folder), str(workdir))
  for a, b in zip(_leaves(workdir), finished_stream[2], strict=True):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_two_processes_read_disjoint_records_whose_union_is_the_epoch(
  folder, tmp_path
):
  """Two gloo processes build a streamed run: each reads its own half of
  every global batch, the halves of the first epoch are disjoint and cover
  every record, and the assembled global batches are the one-process
  stream's."""
  prefix = str(tmp_path / "labels")
  worker = os.path.join(ROOT, "tests", "stream_worker.py")
  args = [worker, f"--records={folder}", "--steps=7", f"--output={prefix}"]
  for status, err in run_processes(args, 2):
    assert status == 0, err[-3000:]
  local = [json.load(open(f"{prefix}.{p}.json")) for p in range(2)]
  single = _take(_stream(folder, seed=0), 7)
  first_epoch = [set(), set()]
  for step in range(7):
    halves = [local[p]["local"][step] for p in range(2)]
    assert halves[0] + halves[1] == single[step]["label"].tolist()
    for p in range(2):
      assert local[p]["global"][step] == single[step]["label"].tolist()
      if step < 5:
        first_epoch[p] |= set(halves[p])
  assert not first_epoch[0] & first_epoch[1]
  assert first_epoch[0] | first_epoch[1] == set(range(NUM_RECORDS))


@pytest.mark.slow
def test_kill_9_then_resume_replays_the_same_batches(folder, tmp_path):
  """A streamed run killed with SIGKILL after a random checkpoint and run
  again logs the straight run's losses and ends with its state, bit for
  bit."""
  steps = 12
  flags = [
    f"--config={SMOKE}",
    "--config.input=stream",
    "--config.dataset=records",
    f"--config.data_path={folder}",
    f"--config.num_steps={steps}",
    "--config.checkpoint_every=1",
    "--config.eval_every=1000",
  ]
  straight = run_python([TRAIN, *flags, f"--workdir={tmp_path / 'straight'}"])
  assert straight.returncode == 0, straight.stderr[-3000:]
  killed = tmp_path / "killed"
  kill_after = random.Random().randint(2, steps - 5)
  kill_after_checkpoint(
    [TRAIN, *flags, f"--workdir={killed}"], killed, kill_after
  )
  resumed = run_python([TRAIN, *flags, f"--workdir={killed}"])
  assert resumed.returncode == 0, resumed.stderr[-3000:]

  def losses(workdir):
    records = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    return [(r["step"], r["loss"]) for r in records if r["split"] == "train"]

  assert losses(killed) == losses(tmp_path / "straight")
  for a, b in zip(
    _leaves(killed, steps), _leaves(tmp_path / "straight", steps), strict=True
  ):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_streamed_and_in_memory_digits_train_to_the_same_bits_per_dim(
  tmp_path,
):
  """The digits model trained 300 steps from records and from memory (same
  seed; only the data order differs) reaches the same test bits/dim within
  0.05, the spread between seeds (measured on the in-memory runs, seeds 0,
  1, 2: 5.747, 5.770, 5.838 bits/dim, standard deviation 0.047)."""
  folder = tmp_path / "records"
  for split in ("train", "test"):
    data.write_records(data.load("digits", split), str(folder), split)
  config = os.path.join(ROOT, "experiments", "configs", "glow_digits.py")
  common = [f"--config={config}", "--config.num_steps=300"]
  common.append("--config.eval_every=300")
  streamed = [
    "--config.input=stream",
    "--config.dataset=records",
    f"--config.data_path={folder}",
  ]
  figures = {}
  for name, extra in (("memory", []), ("stream", streamed)):
    workdir = tmp_path / name
    result = run_python([TRAIN, *common, *extra, f"--workdir={workdir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    figures[name] = json.load(open(workdir / "final_metrics.json"))
  memory, stream = figures["memory"], figures["stream"]
  assert memory["num_examples"] == stream["num_examples"] == 297
  assert np.isfinite(stream["bits_per_dim"]), stream
  assert abs(stream["bits_per_dim"] - memory["bits_per_dim"]) < 0.05, figures
