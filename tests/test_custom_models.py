"""A researcher's own pieces in the library's tools: ``check_bijector`` on a
bijector of their own, and a flow factory of their own trained, resumed and
evaluated by the experiment scripts."""

from __future__ import annotations

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from registry import perturb
from scripts import ROOT, run_python

from flowjax_gen import bijectors as fb
from flowjax_gen.bijectors.base import Bijector
from flowjax_gen.models import registry
from flowjax_gen.nets import MLP
from flowjax_gen.testing import check_bijector

TRAIN = os.path.join(ROOT, "experiments", "train.py")
EVALUATE = os.path.join(ROOT, "experiments", "evaluate.py")
HERE = os.path.dirname(os.path.abspath(__file__))


def _coupling_and_params():
  coupling = fb.affine_coupling(
    functools.partial(MLP, hidden_features=(8,)), mask="alternating"
  )
  x = jax.random.normal(jax.random.key(0), (4, 6))
  params = perturb(coupling.init(jax.random.key(1), x), jax.random.key(2))
  return coupling, params, x


def test_check_bijector_passes_a_correct_bijector_and_reports_errors():
  coupling, params, x = _coupling_and_params()
  report = check_bijector(coupling, x, params=params)
  assert set(report) == {
    "round_trip",
    "inverse_round_trip",
    "inverse_log_det",
    "log_det_float64",
    "jit",
    "vmap",
  }
  assert report["log_det_float64"] < 1e-6 and report["round_trip"] < 1e-4


def test_check_bijector_names_a_wrong_log_det():
  coupling, params, x = _coupling_and_params()

  def forward(p, v, context=None):
    y, log_det = coupling.forward_and_log_det(p, v, context)
    return y, 0.5 * log_det  # a forgotten factor

  wrong = Bijector(coupling.init, forward, coupling.inverse_and_log_det)
  with pytest.raises(AssertionError, match="inverse log-det is not the neg"):
    check_bijector(wrong, x, params=params)

  def half_forward(p, v, context=None):
    y, log_det = coupling.forward_and_log_det(p, v, context)
    return y, 0.5 * log_det

  def half_inverse(p, y, context=None):
    v, log_det = coupling.inverse_and_log_det(p, y, context)
    return v, 0.5 * log_det

  consistent_but_wrong = Bijector(coupling.init, half_forward, half_inverse)
  with pytest.raises(AssertionError, match="log\\|det J\\| of jax.jacfwd"):
    check_bijector(consistent_but_wrong, x, params=params)


def test_check_bijector_names_a_broken_inverse():
  shift = fb.shift(0.3)
  x = jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)

  def inverse(p, y, context=None):
    return y, jnp.zeros(y.shape[:1])  # forgets to shift back

  broken = Bijector(shift.init, shift.forward_and_log_det, inverse)
  with pytest.raises(AssertionError, match=r"inverse\(forward\(x\)\) differs"):
    check_bijector(broken, x)


def test_a_factory_of_your_own_is_checked_when_named():
  assert registry.family_of("custom_flow_module:small_glow") == "flow"
  assert registry.factory_arguments("custom_flow_module:small_glow") == [
    "steps",
    "width",
  ]
  with pytest.raises(ValueError, match="cannot import 'no_such_module'"):
    registry.family_of("no_such_module:flow")
  with pytest.raises(ValueError, match="has no callable 'missing'"):
    registry.family_of("custom_flow_module:missing")
  with pytest.raises(
    ValueError, match="returned a dict; .* must return a Flow"
  ):
    registry.build_model("custom_flow_module:not_a_flow", (8, 8, 1))
  with pytest.raises(ValueError, match=r"model_kwargs \['depth'\]"):
    registry.build_model(
      "custom_flow_module:small_glow", (8, 8, 1), {"depth": 2}
    )


CONFIG = """
from configs import common


def get_config(arg=""):
  config = common.base_config()
  config.model = "custom_flow_module:small_glow"
  config.model_kwargs.width = 8
  config.dataset = "digits"
  common.smoke(config)
  config.num_steps = 4
  return common.with_factory_defaults(config)
"""


@pytest.mark.slow
def test_your_own_flow_trains_resumes_and_evaluates_on_two_devices(tmp_path):
  config = tmp_path / "my_config.py"
  config.write_text(CONFIG)
  env = dict(os.environ, PYTHONPATH=HERE)
  workdir = tmp_path / "run"
  common = [TRAIN, f"--config={config}", f"--workdir={workdir}"]
  first = run_python([*common, "--num_cpu_devices=2"], env=env)
  assert first.returncode == 0, first.stderr[-3000:]
  recorded = json.load(open(workdir / "config.json"))
  assert recorded["model"] == "custom_flow_module:small_glow"
  assert recorded["model_kwargs"] == {"steps": 2, "width": 8}
  # Extended and resumed from the step-4 checkpoint.
  more = run_python(
    [*common, "--num_cpu_devices=2", "--config.num_steps=6"], env=env
  )
  assert more.returncode == 0, more.stderr[-3000:]
  assert "final: step 6" in more.stdout
  report = run_python([EVALUATE, f"--workdir={workdir}"], env=env)
  assert report.returncode == 0, report.stderr[-3000:]
  evaluation = json.load(open(workdir / "evaluation.json"))
  assert evaluation["checkpoint_step"] == 6
  assert np.isfinite(evaluation["bits_per_dim"])
  assert evaluation["bits_per_dim_stderr"] > 0
