"""Test figures of a trained checkpoint over a whole split.

  python experiments/evaluate.py --workdir=workdirs/glow_digits \
      [--best] [--data_path=/path/to/mnist.npz] [--output=report.json] \
      [--num_importance_samples=1000]                       # VAEs \
      [--num_dequantization_samples=16]     # variationally dequantised flows \
      [--classifier_workdir=workdirs/classifier_mnist]      # sample quality

Flows and VAEs report bits/dim with its standard error and nats per example
(for a VAE an importance-sampled estimate), auto-encoders reconstruction
error and PSNR, classifiers their error; every figure states exactly what it
is, in the printout and in a JSON report (default ``workdir/evaluation.json``).
A flow trained with ``dequantization="variational"`` reports both bounds,
``bits_per_dim`` (uniform noise, as every flow) and
``bits_per_dim_variational`` (its learned ``q(u | x)``), and the report's
``dequantization`` field says which noise produced each figure. With
``--num_dequantization_samples=k`` (k > 1) such a flow also reports
``bits_per_dim_variational_iw``, the importance-weighted bound with ``k``
draws of ``u`` per example: the same model's discrete NLL, estimated more
tightly (k times the evaluation's time).

The checkpoint read is the newest that passes its checksums; its step is
printed and recorded, and a latest one older than the step the run's
``final_metrics.json`` reports is refused.

With ``--classifier_workdir`` (a run of a ``classifier_*`` config on the same
data), generative models (flows, VAEs, GANs) also get the Fréchet distance
and KID between ``--num_samples`` samples and the test split in that
classifier's feature space -- named as such, since it is not Inception FID.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import distributed  # noqa: E402
import failures  # noqa: E402

# The multi-process and device flags (--num_cpu_devices, ...) in --helpshort.
flags.adopt_module_key_flags(distributed)

_WORKDIR = flags.DEFINE_string(
  "workdir", None, "training run directory.", required=True
)
_BEST = flags.DEFINE_bool(
  "best", False, "use the best checkpoint instead of the latest."
)
_DATA_PATH = flags.DEFINE_string(
  "data_path", None, "override the local dataset file."
)
_BATCH = flags.DEFINE_integer(
  "batch_size", None, "override the evaluation batch size."
)
_OUTPUT = flags.DEFINE_string("output", None, "JSON report path.")
_IMPORTANCE = flags.DEFINE_integer(
  "num_importance_samples",
  None,
  "VAEs: importance samples per example of the NLL estimate.",
)
_DEQUANTIZATION_SAMPLES = flags.DEFINE_integer(
  "num_dequantization_samples",
  None,
  "flows trained with dequantization='variational': draws of u per "
  "example of the importance-weighted bound (bits_per_dim_variational_iw).",
)
_CLASSIFIER = flags.DEFINE_string(
  "classifier_workdir",
  None,
  "a trained classifier run on the same data: adds the classifier-feature "
  "Fréchet distance and KID of the model's samples.",
)
_NUM_SAMPLES = flags.DEFINE_integer(
  "num_samples", 10_000, "samples for the sample-quality metric."
)
_TEMPERATURE = flags.DEFINE_float(
  "temperature", 1.0, "sampling temperature for the sample-quality metric."
)


def definition(config: dict, family: str) -> str:
  """What the reported figures mean, in words."""
  n_bits = config["n_bits"]
  if family == "autoencoder":
    corruption = config["objective_kwargs"].get("corruption")
    text = (
      "mse: mean squared error per entry between the test image (pixels / "
      "255) and its reconstruction; psnr: 10 log10(1 / mse) in dB per "
      "example, averaged; compression_ratio: input bits (8 per pixel) / "
      "code bits (latent size x bits of the latent dtype)."
    )
    if corruption:
      text += (
        f" The input is corrupted ({corruption}, level "
        f"{config['objective_kwargs']['noise_level']}, one fixed draw per "
        "example) and the target is the clean image; noisy_mse / noisy_psnr "
        "are those of the corrupted input itself."
      )
    return text
  if family == "gan":
    return (
      "discriminator and generator losses and mean critic scores on the "
      "test split; they are not measures of sample quality (see the "
      "classifier Fréchet distance)."
    )
  if family == "classifier":
    return "test error rate and cross-entropy (nats) per example."
  if family == "vae":
    return _vae_definition(config)
  text = _flow_definition(n_bits)
  if config["dequantization"] == "variational":
    text += (
      " bits_per_dim_variational (nll_nats_variational): the same with u "
      "drawn from the run's learned dequantiser q(u | x) (Flow++), one "
      "draw per example from a fixed seed, and log q(u | x) added: the "
      "variational bound E_q[-log p(x + u) + log q(u | x)], also an upper "
      "bound on the discrete NLL."
    )
    from flowjax_gen.training import config as config_lib  # noqa: PLC0415

    k = config_lib.dequantization_draws(config)
    if k > 1:
      text += (
        f" bits_per_dim_variational_iw (nll_nats_variational_iw): the "
        f"importance-weighted bound with k = {k} draws u_i of q per "
        "example (other draws than the one above), -log (1/k) sum_i "
        "p(x + u_i) / q(u_i | x) plus the same Jacobian terms: in "
        "expectation an upper bound on the discrete NLL of the same "
        "model, tighter than the variational one, which it equals at "
        "k = 1 (Burda et al. 2016; Hoogeboom et al. 2020)."
      )
  return text


def dequantization_of(result: dict) -> dict:
  """Which dequantisation noise produced each likelihood figure of a flow
  on discrete data: ``"uniform"`` for ``bits_per_dim`` and ``nll_nats``
  (and their standard errors), ``"variational"`` for their
  ``*_variational`` counterparts."""
  return {
    name: "variational" if "_variational" in name else "uniform"
    for name in result
    if name.startswith(("bits_per_dim", "nll_nats"))
  }


def _vae_definition(config: dict) -> str:
  n_bits = config["n_bits"]
  likelihood = config["model_kwargs"].get("likelihood", "bernoulli")
  k = config["eval_kwargs"].get("num_importance_samples")
  estimate = (
    f"importance-sampled estimate with k = {k} posterior samples per "
    "example, -log (1/k) sum_i p(x, z_i) / q(z_i | x) (Burda et al. "
    "2016): its expectation is an upper bound on the NLL that tightens "
    "as k grows; the negative ELBO is reported next to it"
  )
  if likelihood == "bernoulli":
    return (
      f"-log P(x) of dynamically binarised images (each pixel drawn as "
      f"Bernoulli(pixel / 255), one fixed draw per example), {estimate}. "
      "Binarised data are another dataset than 8-bit images: these "
      "figures do not compare with the flows'."
    )
  if likelihood == "logistic":
    return (
      f"-log P(x) of the {n_bits}-bit pixels under a discretised-logistic "
      f"decoder, {estimate}; bits/dim = nats / (D log 2), comparable with "
      "the flows' figures on the same data."
    )
  return (
    f"-log p(x) of uniformly dequantised {n_bits}-bit data plus D n log 2, "
    f"as for the flows, {estimate}."
  )


def _flow_definition(n_bits: int) -> str:
  if not n_bits:
    return (
      "negative log-density of continuous data in nats per example, "
      "divided by D log 2 for bits/dim; no dequantisation."
    )
  return (
    f"-log p(x) of {n_bits}-bit data, with pixels reduced to {n_bits} "
    f"bits (floor(x / 2^{8 - n_bits})), uniformly dequantised "
    f"((x + u) / 2^{n_bits}, one noise draw per example from a fixed "
    "seed) and every pre-processing Jacobian (the scaling to [0, 1) and "
    "the model's centring or logit) included; bits/dim = nats / (D log "
    "2) over all D entries of an example, averaged over every example "
    "of the test split (a variational upper bound on the discrete "
    "NLL, as reported by RealNVP and Glow)."
  )


def sample_quality_report(experiment, params, classifier_workdir: str):
  """Classifier-feature Fréchet distance and KID of the model's samples
  against the test split, and of the training images against it (the
  figure a perfect model would get with as many samples)."""
  import numpy as np  # noqa: PLC0415

  from flowjax_gen import data  # noqa: PLC0415
  from flowjax_gen.runs import load_trained  # noqa: PLC0415
  from flowjax_gen.sample_quality import sample_quality  # noqa: PLC0415

  judge, judge_state, judge_step = load_trained(classifier_workdir)
  if judge.task.embed is None:
    raise ValueError(
      f"{classifier_workdir!r} is a {judge.task.family} run, not a "
      "classifier run."
    )
  if tuple(judge.event_shape) != tuple(experiment.event_shape):
    raise ValueError(
      f"the classifier was trained on {judge.event_shape} images, the "
      f"model makes {experiment.event_shape}."
    )
  n = _NUM_SAMPLES.value
  samples = experiment.draw_samples(
    params, n, temperature=_TEMPERATURE.value, seed=1
  )
  # A flow's inverse can overflow for rare latents far out in the tails;
  # such samples cannot be embedded, so they are dropped and counted.
  finite = np.all(np.isfinite(samples.reshape(len(samples), -1)), axis=1)
  samples = samples[finite]
  outside = float(np.mean((samples < 0) | (samples > 1)))
  test = experiment.test_source
  real = data.take(test, np.arange(data.num_examples(test)))["image"]
  real = np.asarray(real, np.float32) / 255.0
  train = data.take(experiment.train_source, np.arange(n))["image"]
  train = np.asarray(train, np.float32) / 255.0
  params_judge = judge_state.ema_params

  def features(x):
    return judge.task.embed(params_judge, x)

  size = experiment.config["eval_batch_size"]
  model = sample_quality(
    features, real, np.clip(samples, 0.0, 1.0), batch_size=size
  )
  reference = sample_quality(features, real, train, batch_size=size)
  return {
    "classifier_frechet_distance": model["frechet_distance"],
    "classifier_kid": model["kernel_distance"],
    "classifier_kid_std": model["kernel_distance_std"],
    "train_images_frechet_distance": reference["frechet_distance"],
    "train_images_kid": reference["kernel_distance"],
    "num_samples": n,
    "sample_temperature": _TEMPERATURE.value,
    "samples_clipped_fraction": outside,
    "samples_non_finite": int(np.sum(~finite)),
    "classifier_workdir": os.path.abspath(classifier_workdir),
    "classifier_step": judge_step,
    "classifier_dataset": judge.config["dataset"],
    "sample_quality_definition": (
      "Fréchet distance and KID (x 1) between the model's samples "
      "(clipped to [0, 1]; samples with a non-finite pixel dropped and "
      "counted in samples_non_finite) and the test images in the "
      "penultimate-layer features of the library's own classifier trained "
      "on the same data; "
      "not Inception FID/KID, comparable only between models scored with "
      "this classifier. train_images_*: the same figures for as many "
      "training images, the floor a perfect model would reach."
    ),
  }


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  distributed.initialize()
  try:
    return _evaluate()
  except app.UsageError:
    raise
  except Exception as error:  # noqa: BLE001 -- one line; traceback in a log
    return failures.report(
      error, failures.log_path(_WORKDIR.value, "evaluate.log")
    )


def _evaluate() -> int:
  import jax  # noqa: PLC0415

  from flowjax_gen.runs import load_trained  # noqa: PLC0415
  from flowjax_gen.training import config as config_lib  # noqa: PLC0415
  from flowjax_gen.training import reporting  # noqa: PLC0415

  overrides = {}
  if _DATA_PATH.value:
    overrides["data_path"] = _DATA_PATH.value
  if _BATCH.value:
    overrides["eval_batch_size"] = _BATCH.value
  if _IMPORTANCE.value and _DEQUANTIZATION_SAMPLES.value is not None:
    raise app.UsageError(
      "--num_importance_samples is for VAEs and "
      "--num_dequantization_samples for variationally dequantised flows; "
      "a run is one or the other."
    )
  if _IMPORTANCE.value:
    overrides["eval_kwargs"] = {"num_importance_samples": _IMPORTANCE.value}
  if _DEQUANTIZATION_SAMPLES.value is not None:
    overrides["eval_kwargs"] = {
      "num_dequantization_samples": _DEQUANTIZATION_SAMPLES.value
    }
  experiment, state, step = load_trained(
    _WORKDIR.value, best=_BEST.value, overrides=overrides
  )
  result = experiment.evaluate(state.ema_params)
  if _CLASSIFIER.value:
    result.update(
      sample_quality_report(experiment, state.ema_params, _CLASSIFIER.value)
    )
  config = experiment.config
  report = {
    "workdir": os.path.abspath(_WORKDIR.value),
    "checkpoint_step": step,
    "checkpoint": "best" if _BEST.value else "latest",
    "model": config["model"],
    "dataset": config["dataset"],
    "split": "test",
    "params": "EMA" if config["ema_decay"] else "raw",
    **result,
    "definition": definition(config, experiment.task.family),
    "devices": jax.device_count(),
  }
  if experiment.task.family == "flow" and config["n_bits"]:
    # The noise the run was trained with, and the one behind each figure.
    report["dequantization"] = config["dequantization"]
    report["dequantization_of_figures"] = dequantization_of(result)
  if jax.process_index() == 0:
    print(
      f"{config['model']} on {config['dataset']} ({report['checkpoint']} "
      f"checkpoint, step {step}): "
      + reporting.result_line(
        result, dequantization_draws=config_lib.dequantization_draws(config)
      )
    )
    print(f"definition: {report['definition']}")
    if "classifier_frechet_distance" in result:
      print(
        "classifier Fréchet distance "
        f"{result['classifier_frechet_distance']:.3f} (training images: "
        f"{result['train_images_frechet_distance']:.3f}), "
        f"KID {result['classifier_kid']:.4f} +/- "
        f"{result['classifier_kid_std']:.4f} over {result['num_samples']} "
        f"samples at temperature {result['sample_temperature']} "
        f"({result['samples_non_finite']} non-finite samples dropped)"
      )
    output = _OUTPUT.value or os.path.join(_WORKDIR.value, "evaluation.json")
    with open(output, "w") as f:
      json.dump(report, f, indent=2)
    print(f"report: {output}")
  return 0


if __name__ == "__main__":
  app.run(main)
