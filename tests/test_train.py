"""End-to-end training: every config's smoke variant, exact resume after
kill -9, two processes equal one, bad configs fail before compute."""

from __future__ import annotations

import glob
import importlib
import json
import os
import random
import re

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from scripts import ROOT, kill_after_checkpoint, run_processes, run_python

from flowjax_gen import runs
from flowjax_gen.models import registry as model_registry
from flowjax_gen.parallel import shard_batch
from flowjax_gen.training import config as config_lib
from flowjax_gen.training import loop, reporting
from flowjax_gen.training.experiment import Experiment

TRAIN = os.path.join(ROOT, "experiments", "train.py")
EVALUATE = os.path.join(ROOT, "experiments", "evaluate.py")
CONFIGS = sorted(
  os.path.basename(p)[:-3]
  for p in glob.glob(os.path.join(ROOT, "experiments", "configs", "*.py"))
  if not os.path.basename(p).startswith(("_", "common"))
)


def smoke_config(name: str) -> dict:
  module = importlib.import_module(f"configs.{name}")
  return module.get_config("smoke").to_dict()


def test_every_config_is_listed():
  families = ("ae", "dae", "vae", "gan", "classifier")
  assert {
    "glow_digits",
    "nice_mnist",
    "realnvp_mnist",
    "glow_mnist",
    "realnvp_cifar10",
    "glow_cifar10",
    "flowpp_mnist",
    "flowpp_cifar10",
    *(
      f"{family}_{data}" for family in families for data in ("mnist", "digits")
    ),
  } <= set(CONFIGS)


@pytest.mark.parametrize(
  "name",
  ["glow_mnist", "flowpp_mnist", "realnvp_mnist", "nice_mnist", "vae_mnist"],
)
def test_cpu_hour_recipes_are_valid_configs(name):
  """The one-CPU-hour recipes of docs/results.md: valid, evaluated during
  the run and at its end, with the EMA the evaluation reads."""
  module = importlib.import_module(f"configs.{name}")
  config = module.get_config("cpu_hour").to_dict()
  config_lib.validate_config(config, num_devices=1, num_processes=1)
  assert 0 < config["eval_every"] < config["num_steps"]
  assert 0 < config["ema_decay"] < 1
  assert "cpu_hour" in module.__doc__
  if config["model"] == "vae":  # 8-bit pixels, in one table with the flows
    assert config["model_kwargs"]["likelihood"] == "logistic"


def test_flowpp_wide_changes_only_the_conditioner():
  """``cpu_hour,wide`` (docs/results.md's 1.175 hour) is the recipe with
  48 channels and a 1x1 gate convolution, nothing else."""
  module = importlib.import_module("configs.flowpp_mnist")
  recipe = module.get_config("cpu_hour").to_dict()
  wide = module.get_config("cpu_hour,wide").to_dict()
  config_lib.validate_config(wide, num_devices=1, num_processes=1)
  assert recipe["model_kwargs"]["features"] == 32
  recipe["model_kwargs"].update(features=48, gate_kernel_size=1)
  assert wide == recipe
  with pytest.raises(ValueError, match="'cpu_hour,wide'"):
    module.get_config("wide")


# One full run per model family (checkpoints, evaluation, pictures, logs);
# the other configs train a few steps of the same step function below.
END_TO_END = (
  "glow_digits",
  "ae_digits",
  "dae_digits",
  "vae_digits",
  "gan_digits",
  "classifier_digits",
)


def test_end_to_end_runs_cover_every_family():
  families = {
    model_registry.family_of(smoke_config(name)["model"]) for name in END_TO_END
  }
  assert families == set(model_registry.FAMILIES)


@pytest.mark.slow
@pytest.mark.parametrize("name", END_TO_END)
def test_smoke_variant_trains_end_to_end(name, tmp_path):
  config = smoke_config(name)
  result = loop.train_and_evaluate(config, str(tmp_path))
  headline = {
    "autoencoder": "mse",
    "gan": "discriminator_loss",
    "classifier": "error",
  }.get(config["model"], "bits_per_dim")
  assert np.isfinite(result[headline])
  assert result["num_examples"] == config["num_test_examples"]
  assert os.path.isfile(result["samples"])
  assert os.path.isfile(tmp_path / "learning_curves.png")
  assert os.path.isfile(tmp_path / "learning_curves_wall_time.png")
  records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  elapsed = [r["elapsed_s"] for r in records]
  assert elapsed == sorted(elapsed) and elapsed[0] >= 0
  assert all(r["time"] > 1.7e9 for r in records)  # Unix seconds
  train = [r for r in records if r["split"] == "train"]
  assert [r["step"] for r in train] == list(range(1, config["num_steps"] + 1))
  assert all(np.isfinite(r["loss"]) for r in train)
  assert glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*"))
  assert os.listdir(tmp_path / "checkpoints")


@pytest.mark.slow
@pytest.mark.parametrize(
  "name", [name for name in CONFIGS if name not in END_TO_END]
)
def test_smoke_variant_trains_a_few_steps_on_mock_data(name, tmp_path):
  """The config's data (tfds mock data), model, objective and step: the
  parts that differ between configs of one family."""
  config = smoke_config(name)
  config_lib.validate_config(config)
  with tfds.testing.mock_data(
    num_examples=32, policy=tfds.testing.MockPolicy.USE_CODE
  ):
    run = Experiment(config, str(tmp_path))
  state = run.init_state()
  train_step = run.train_step()
  losses = []
  for _ in range(2):
    state, metrics = train_step(
      state, shard_batch(next(run.iterator), run.mesh)
    )
    losses.append(float(metrics["loss"]))
  assert np.all(np.isfinite(losses)), losses
  assert int(state.step) == 2 and int(state.skipped) == 0


def _params_of(workdir):
  _, state, step = runs.load_trained(workdir)
  return step, jax.tree.leaves(jax.device_get(state))


@pytest.mark.slow
def test_kill_at_random_step_then_resume_is_bit_identical(tmp_path):
  """A variational-dequantisation run (the flow and q(u | x) trained
  together, each with its own params and random draws) killed with SIGKILL
  after a random checkpoint and run again ends with the straight run's
  state, bit for bit, and evaluate.py reports both bounds of it."""
  steps = 14
  flags = [
    "--config="
    + os.path.join(ROOT, "experiments", "configs", "glow_digits.py")
    + ":smoke,variational",
    f"--config.num_steps={steps}",
    "--config.checkpoint_every=1",
    "--config.eval_every=1000",
  ]
  straight = run_python([TRAIN, *flags, f"--workdir={tmp_path / 'straight'}"])
  assert straight.returncode == 0, straight.stderr[-3000:]

  killed_dir = tmp_path / "killed"
  kill_after = random.Random().randint(3, steps - 6)
  kill_after_checkpoint(
    [TRAIN, *flags, f"--workdir={killed_dir}"], killed_dir, kill_after
  )
  done = sorted(
    int(d) for d in os.listdir(killed_dir / "checkpoints") if d.isdigit()
  )
  assert done[-1] < steps, f"killed after the end ({done})"

  resumed = run_python([TRAIN, *flags, f"--workdir={killed_dir}"])
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  # The steps between the restored checkpoint and the kill are logged once.
  logged = [
    r["step"] for r in map(json.loads, open(killed_dir / "metrics.jsonl"))
  ]
  assert logged == [*range(1, steps + 1), steps]  # train records, then test
  step_a, leaves_a = _params_of(str(tmp_path / "straight"))
  step_b, leaves_b = _params_of(str(killed_dir))
  assert step_a == step_b == steps
  _, state, _ = runs.load_trained(str(killed_dir))
  assert set(state.params) == {"flow", "dequantizer"}
  assert len(leaves_a) == len(leaves_b)
  for a, b in zip(leaves_a, leaves_b, strict=True):
    np.testing.assert_array_equal(a, b)

  final = json.load(open(killed_dir / "final_metrics.json"))
  for name in ("bits_per_dim", "bits_per_dim_variational"):
    assert np.isfinite(final[name]) and final[f"{name}_stderr"] > 0, name
  report = run_python(
    [EVALUATE, f"--workdir={killed_dir}", "--num_dequantization_samples=4"]
  )
  assert report.returncode == 0, report.stderr[-3000:]
  assert "variational dequantisation" in report.stdout
  assert "(importance-weighted, 4 draws of q)" in report.stdout
  evaluation = json.load(open(killed_dir / "evaluation.json"))
  assert evaluation["checkpoint_step"] == steps
  assert evaluation["dequantization"] == "variational"
  figures = evaluation["dequantization_of_figures"]
  assert figures["bits_per_dim"] == figures["bits_per_dim_stderr"] == "uniform"
  assert figures["bits_per_dim_variational"] == "variational"
  assert figures["bits_per_dim_variational_iw"] == "variational"
  # The extra draws leave the one-draw figures as training reported them.
  # (After a few steps q is nearly uniform and the draws' weights nearly
  # equal: test_dequantization tests the k-draw bound's gain on a flow whose
  # draws differ.)
  for name in ("bits_per_dim", "bits_per_dim_variational"):
    assert evaluation[name] == pytest.approx(final[name], abs=1e-6), name
  assert np.isfinite(evaluation["bits_per_dim_variational_iw"])
  assert evaluation["bits_per_dim_variational_iw_stderr"] > 0
  assert "dequantised" in evaluation["definition"]
  assert "q(u | x)" in evaluation["definition"]
  assert "importance-weighted bound with k = 4" in evaluation["definition"]


def _failure_excerpt(stderr: str) -> str:
  """The lines of a crashed process that say why, not its module list."""
  lines = stderr.splitlines()
  marks = [
    i
    for i, line in enumerate(lines)
    if re.search(r"Error|error|Check failed|^F\d{4}|Fatal|Traceback", line)
  ]
  start = max(marks[0] - 5, 0) if marks else max(len(lines) - 40, 0)
  return "\n".join(line[:300] for line in lines[start : start + 60])


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
  common = [
    "--config="
    + os.path.join(ROOT, "experiments", "configs", "glow_digits.py")
    + ":smoke",
    "--config.num_steps=4",
    "--num_cpu_devices=2",
  ]
  one = run_python(
    [
      TRAIN,
      *common[:-1],
      "--num_cpu_devices=4",
      f"--workdir={tmp_path / 'one'}",
    ]
  )
  assert one.returncode == 0, one.stderr[-3000:]
  results = run_processes([TRAIN, *common, f"--workdir={tmp_path / 'two'}"], 2)
  for i, (status, err) in enumerate(results):
    (tmp_path / f"process_{i}.stderr").write_text(err)
    assert status == 0, _failure_excerpt(err)

  def losses(workdir):
    records = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    return [(r["step"], r["loss"]) for r in records if r["split"] == "train"]

  single, multi = losses(tmp_path / "one"), losses(tmp_path / "two")
  assert [s for s, _ in single] == [s for s, _ in multi] == [1, 2, 3, 4]
  np.testing.assert_allclose(
    [v for _, v in multi], [v for _, v in single], rtol=1e-5
  )


@pytest.mark.parametrize(
  "field, value, message",
  [
    ("model", "no_such_model", "config.model"),
    ("batch_size", -8, "config.batch_size"),
    ("batch_size", 6, "divisible by the number of devices"),
    ("n_bits", 9, "config.n_bits"),
    ("optimizer", "sgd", "config.optimizer"),
    ("ema_decay", 1.0, "config.ema_decay"),
    ("compute_dtype", "float16", "config.compute_dtype"),
  ],
)
def test_bad_config_values_name_the_field(field, value, message):
  config = smoke_config("glow_digits")
  config[field] = value
  with pytest.raises(ValueError, match=message):
    loop.validate_config(config, num_devices=4, num_processes=1)


def test_missing_dataset_file_and_foreign_workdir(tmp_path):
  config = smoke_config("glow_mnist")
  config.update(dataset="npz", data_path=str(tmp_path / "missing.npz"))
  with pytest.raises(ValueError, match="config.data_path"):
    loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()  # refused before any work

  os.makedirs(tmp_path / "other")
  with open(tmp_path / "other" / "config.json", "w") as f:
    json.dump({"model": "nice"}, f)
  digits = smoke_config("glow_digits")
  with pytest.raises(ValueError, match="different config"):
    loop.train_and_evaluate(digits, str(tmp_path / "other"))


def test_training_minutes_add_up_the_runs_of_a_resumed_log(tmp_path):
  # Two runs: the second resumed after step 2 and its clock restarted.
  records = [
    {"step": 1, "split": "train", "elapsed_s": 30.0},
    {"step": 2, "split": "train", "elapsed_s": 90.0},
    {"step": 3, "split": "train", "elapsed_s": 12.0},
    {"step": 3, "split": "test", "elapsed_s": 18.0, "bits_per_dim": 2.0},
    {"step": 4, "split": "train", "elapsed_s": 60.0},
  ]
  np.testing.assert_allclose(
    reporting.training_minutes(records), [0.5, 1.5, 1.7, 1.8, 2.5]
  )
  # Records of an older release (no elapsed_s) have no wall time.
  assert reporting.training_minutes([{"step": 1, "split": "train"}]) == [None]
  for r in records:
    r.setdefault("bits_per_dim", 3.0)
  path = tmp_path / "curve.png"
  reporting.save_learning_curves(records, str(path), against="minutes")
  assert path.stat().st_size > 0
  with pytest.raises(ValueError, match="against must be"):
    reporting.save_learning_curves(records, str(path), against="epochs")
