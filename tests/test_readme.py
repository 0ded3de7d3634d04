"""The README's commands and code stay true."""

from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme():
  with open(os.path.join(ROOT, "README.md")) as f:
    return f.read()


def test_first_section_holds_the_two_commands():
  blocks = re.findall(r"```bash\n(.*?)```", _readme(), re.S)
  assert "experiments/train.py" in blocks[0] and "pip install" in blocks[0]
  assert "pytest" in blocks[1] and "pip install" in blocks[1]
  ci = open(os.path.join(ROOT, ".ci", "run")).read()
  assert "README.md" in ci


def test_compose_your_own_flow_snippet_runs_and_prints_bits_per_dim():
  code = re.findall(r"```python\n(.*?)```", _readme(), re.S)[0]
  result = subprocess.run(
    [sys.executable, "-c", code],
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
    env=dict(os.environ, PYTHONPATH=ROOT),
  )
  assert result.returncode == 0, result.stderr[-3000:]
  bits = float(result.stdout.strip().split()[0])
  assert 7.0 < bits < 10.0  # random 8-bit pixels under a fresh flow: ~8
