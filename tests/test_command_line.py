"""What ``experiments/train.py`` refuses before it trains: each test is a
command that once ran (or failed deep inside a library) with rc 0 or an
unreadable error. The configs and checks are called directly; one test
starts the script itself."""

from __future__ import annotations

import configparser
import glob
import importlib
import json
import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from absl import flags
from ml_collections import config_flags
from scripts import ROOT, run_python

from flowjax_gen import checkpoint, data
from flowjax_gen.models import registry
from flowjax_gen.training import config as config_lib
from flowjax_gen.training import loop, tasks

CONFIG_DIR = os.path.join(ROOT, "experiments", "configs")
CONFIGS = sorted(
  os.path.basename(p)[:-3]
  for p in glob.glob(os.path.join(CONFIG_DIR, "*.py"))
  if not os.path.basename(p).startswith(("_", "common"))
)
# The arguments each config file takes besides "smoke".
OPTIONS = {"vae_mnist": ("logistic",), "vae_digits": ("logistic",)}


def get_config(name: str, arg: str = "smoke") -> dict:
  return importlib.import_module(f"configs.{name}").get_config(arg).to_dict()


def parse_flags(*args: str):
  """The config ``train.py`` would get from ``args`` (absl parsing)."""
  argv = ["train.py", *args]
  values = flags.FlagValues()
  holder = config_flags.DEFINE_config_file(
    "config", None, "config file", flag_values=values, sys_argv=argv
  )
  values(argv)
  return holder.value


# --config=FILE.py:ARG with an ARG the file does not know.


@pytest.mark.parametrize("name", CONFIGS)
def test_unknown_config_argument_lists_the_valid_ones(name):
  module = importlib.import_module(f"configs.{name}")
  with pytest.raises(ValueError, match="unknown config argument 'smok'") as e:
    module.get_config("smok")
  for option in ("smoke", *OPTIONS.get(name, ())):
    assert repr(option) in str(e.value)
    module.get_config(option)  # every listed one is accepted


def test_unknown_config_argument_fails_flag_parsing():
  path = os.path.join(CONFIG_DIR, "glow_digits.py")
  with pytest.raises(flags.IllegalFlagValueError, match="'smoke'"):
    parse_flags(f"--config={path}:smok")


# Every argument of a model factory can be set on the command line.


@pytest.mark.parametrize("name", CONFIGS)
def test_configs_carry_every_factory_argument(name):
  config = get_config(name)
  expected = config_lib.model_kwargs_defaults(config["model"])
  assert set(expected) <= set(config["model_kwargs"])
  # The arguments a task derives from other fields stay out of model_kwargs
  # (a VAE's n_bits is config.n_bits, a classifier's num_classes is
  # config.num_classes).
  if config["model"] in ("vae", "classifier"):
    assert not {"n_bits", "num_classes"} & set(config["model_kwargs"])


def test_glow_memory_options_are_set_from_the_command_line():
  path = os.path.join(CONFIG_DIR, "glow_digits.py")
  config = parse_flags(
    f"--config={path}:smoke",
    "--config.model_kwargs.remat=True",
    "--config.model_kwargs.invertible_backprop=True",
  )
  assert config.model_kwargs.remat is True
  assert config.model_kwargs.invertible_backprop is True


def test_runs_saved_without_the_filled_arguments_rebuild_their_model():
  """A config recorded before the configs named every factory argument
  (and before ``config_version``) rebuilds the model it trained: the
  arguments it left out take the defaults of its release."""
  saved = get_config("glow_digits")
  del saved["config_version"]
  saved["model_kwargs"] = {
    "levels": 2,
    "steps_per_level": 2,
    "hidden_channels": 8,
    "permutation": "conv1x1_lu",
  }
  flow = tasks.build_task(config_lib.with_defaults(saved), (8, 8, 1)).model
  trained = registry.build_flow(
    "glow",
    (8, 8, 1),
    {**saved["model_kwargs"], "scale_fn": "sigmoid"},
    evaluation=True,
  )
  x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 1))
  params = trained.init(jax.random.key(1), x)
  np.testing.assert_allclose(
    flow.log_prob(params, x), trained.log_prob(params, x), rtol=1e-6
  )


# data_path, datasets, n_bits.


def test_data_path_without_npz_dataset_is_refused():
  config = config_lib.with_defaults(get_config("glow_digits"))
  config["data_path"] = "mnist.npz"
  with pytest.raises(ValueError, match="--config.dataset=npz"):
    config_lib.validate_config(config, num_devices=1, num_processes=1)


def test_unprepared_tfds_dataset_fails_at_once_in_one_line(
  tmp_path, monkeypatch
):
  def no_download(*args, **kwargs):
    raise AssertionError("a download was attempted")

  monkeypatch.setattr(
    tfds.core.DatasetBuilder, "download_and_prepare", no_download
  )
  with pytest.raises(ValueError) as info:
    data.load("mnist", "train", data_dir=str(tmp_path))
  message = str(info.value)
  assert "'mnist'" in message and str(tmp_path) in message
  assert "--config.dataset=npz" in message and "\n" not in message


def test_install_requires_what_tfds_imports():
  # TFDS imports importlib_resources but declares it for Python < 3.9 only.
  setup = configparser.ConfigParser()
  setup.read(os.path.join(ROOT, "setup.cfg"))
  requires = setup["options"]["install_requires"]
  assert "importlib_resources" in requires


def test_n_bits_must_match_the_kind_of_data():
  config = get_config("glow_digits")
  moons = data.load("two_moons", "train", num_examples=8)
  with pytest.raises(ValueError, match="--config.n_bits=0"):
    config_lib.check_data_kind(config, moons)
  config_lib.check_data_kind({**config, "n_bits": 0}, moons)
  # Float-stored pixel levels are levels.
  levels = {"image": np.full((2, 8, 8, 1), 128.0, np.float32)}
  config_lib.check_data_kind(config, levels)
  digits = {"image": np.zeros((2, 8, 8, 1), np.uint8)}
  with pytest.raises(ValueError, match="--config.n_bits=8"):
    config_lib.check_data_kind({**config, "n_bits": 0}, digits)
  # Only flows model the pixel levels themselves.
  config_lib.check_data_kind({**get_config("ae_digits"), "n_bits": 0}, digits)


# A run that fails before training leaves its workdir reusable.


def test_failed_start_leaves_the_workdir_reusable(tmp_path):
  path = tmp_path / "floats.npz"
  rng = np.random.default_rng(0)
  np.savez(
    path,
    x_train=rng.random((8, 8, 8), np.float32),
    y_train=np.zeros(8, np.int64),
    x_test=rng.random((8, 8, 8), np.float32),
    y_test=np.zeros(8, np.int64),
  )
  config = get_config("glow_digits")
  config.update(dataset="npz", data_path=str(path))  # n_bits stays 8
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match="--config.n_bits=0"):
    loop.train_and_evaluate(config, str(workdir))
  assert not (workdir / checkpoint.CONFIG_FILE).exists()
  # Another run takes the workdir: nothing recorded stands in its way.
  other = config_lib.with_defaults(get_config("nice_mnist"))
  assert checkpoint.check_or_write_config(str(workdir), other) is False


def test_config_mismatch_names_the_overwrite_flag(tmp_path):
  os.makedirs(tmp_path / "run")
  with open(tmp_path / "run" / checkpoint.CONFIG_FILE, "w") as f:
    json.dump({"model": "nice"}, f)
  with pytest.raises(checkpoint.ConfigMismatchError, match="--overwrite"):
    checkpoint.check_or_write_config(str(tmp_path / "run"), {"model": "glow"})


# The script itself: flags it refuses before doing anything.


def test_train_script_requires_workdir_and_a_known_config_argument(tmp_path):
  train = os.path.join(ROOT, "experiments", "train.py")
  config = os.path.join(CONFIG_DIR, "glow_digits.py")
  result = run_python([train, f"--config={config}:smoke"], timeout=300)
  assert result.returncode != 0
  assert "--workdir" in result.stderr
  workdir = tmp_path / "run"
  result = run_python(
    [train, f"--config={config}:smok", f"--workdir={workdir}"], timeout=300
  )
  assert result.returncode != 0
  assert "unknown config argument 'smok'" in result.stderr
  assert not workdir.exists()


def test_help_texts_name_every_family_and_the_device_flags():
  train = run_python(
    [os.path.join(ROOT, "experiments", "train.py"), "--helpshort"]
  )
  assert "Trains any model" in train.stdout + train.stderr
  assert "--num_cpu_devices" in train.stdout + train.stderr
  benchmark = run_python(
    [os.path.join(ROOT, "experiments", "benchmark.py"), "--help"]
  )
  text = benchmark.stdout + benchmark.stderr
  # absl formats the module docstring with "%": a bare one garbles it.
  assert "noisy (10 to 25 per cent" in text
  assert "benchmark.py'" not in text
