"""The package's layer order, and the lint and type checks CI runs.

Every module's ``import`` statements are parsed (no module is executed) and
an import that reaches a higher layer fails, so the packages cannot form
cycles. The order is the one written in ``flowjax_gen/__init__.py`` and
``docs/architecture.md``.
"""

from __future__ import annotations

import ast
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "flowjax_gen"

# Bottom to top; a module may import its own layer and the layers below.
LAYERS = (
  ("_checks", "typing", "host_memory"),
  ("parallel",),
  ("distributions",),
  ("preprocess",),
  ("nets",),
  ("bijectors", "testing"),
  ("models",),
  ("data",),
  ("objectives",),
  ("sample_quality",),
  ("checkpoint",),
  ("training",),
  ("latent",),
  ("runs",),
)
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}
# Functions that hold the one-release aliases of moved names; they import
# the new location lazily, on first use of an old name.
DEPRECATION_SHIMS = ("__getattr__",)


def _component(module: str) -> str | None:
  """``flowjax_gen.<component>...`` -> component, else ``None``."""
  parts = module.split(".")
  if parts[0] != "flowjax_gen" or len(parts) < 2:
    return None
  return parts[1]


def _imports(path: pathlib.Path):
  """``(line, imported module)`` for every flowjax_gen import in ``path``,
  outside the deprecation shims."""
  tree = ast.parse(path.read_text(), filename=str(path))
  skipped = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.FunctionDef) and node.name in DEPRECATION_SHIMS:
      skipped.update(id(n) for n in ast.walk(node))
  for node in ast.walk(tree):
    if id(node) in skipped:
      continue
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield node.lineno, alias.name
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      if node.module == "flowjax_gen":
        for alias in node.names:
          yield node.lineno, f"flowjax_gen.{alias.name}"
      else:
        yield node.lineno, node.module


def _modules():
  for path in sorted(PACKAGE.rglob("*.py")):
    relative = path.relative_to(ROOT).with_suffix("")
    name = ".".join(relative.parts)
    if name == "flowjax_gen.__init__":
      continue  # the package's public facade re-exports every layer
    yield path, name


def test_every_module_has_a_layer():
  unplaced = sorted(
    {_component(name) for _, name in _modules()} - set(LEVEL) - {None}
  )
  assert not unplaced, f"add {unplaced} to LAYERS (and docs/architecture.md)"


def test_imports_run_down_the_layers():
  violations = []
  for path, name in _modules():
    level = LEVEL[_component(name)]
    for line, imported in _imports(path):
      target = _component(imported)
      if target is not None and LEVEL[target] > level:
        violations.append(
          f"{path.relative_to(ROOT)}:{line} ({_component(name)}, layer "
          f"{level}) imports {imported} (layer {LEVEL[target]})"
        )
  assert not violations, "imports up the layer order:\n" + "\n".join(violations)


def test_the_checker_sees_an_upward_import(tmp_path):
  # The parser must catch the forms the package uses: plain, from-package
  # and from-module imports, also inside functions.
  source = (
    "import flowjax_gen.training\n"
    "from flowjax_gen import runs\n"
    "def f():\n  from flowjax_gen.latent.codecs import Codec\n"
    "def __getattr__(name):\n  from flowjax_gen import experiments\n"
  )
  path = tmp_path / "probe.py"
  path.write_text(source)
  found = [module for _, module in _imports(path)]
  assert found == [
    "flowjax_gen.training",
    "flowjax_gen.runs",
    "flowjax_gen.latent.codecs",
  ]


def _tool(name: str) -> str:
  found = shutil.which(name, path=str(pathlib.Path(sys.executable).parent))
  if found is None:
    pytest.fail(f"{name} is not installed; pip install -e '.[test]'")
  return found


def _run(*command: str) -> subprocess.CompletedProcess:
  return subprocess.run(
    command, cwd=ROOT, capture_output=True, text=True, check=False
  )


def test_ruff_lint_and_format_are_clean():
  ruff = _tool("ruff")
  # The whole repository: the Python snippets of README.md and docs/ too.
  lint = _run(ruff, "check", ".")
  assert lint.returncode == 0, lint.stdout + lint.stderr
  fmt = _run(ruff, "format", "--check", ".")
  assert fmt.returncode == 0, fmt.stdout + fmt.stderr


@pytest.mark.slow
def test_pyright_reports_no_errors():
  # The [tool.pyright] settings of pyproject.toml (the package, "basic"
  # mode); imports resolve in the environment that runs the tests.
  pyright = _tool("pyright")
  result = _run(pyright, "--outputjson", "--pythonpath", sys.executable)
  try:
    report = json.loads(result.stdout)
  except json.JSONDecodeError:
    pytest.fail(f"pyright did not run:\n{result.stdout}{result.stderr}")
  errors = [
    f"{d['file']}:{d['range']['start']['line'] + 1}: {d['message']}"
    for d in report["generalDiagnostics"]
    if d["severity"] == "error"
  ]
  assert report["summary"]["errorCount"] == 0, "\n".join(errors)
