"""The README's test command relies on ``--dist loadgroup`` keeping each
``xdist_group`` on one worker: the bijector contract cases compile their
programs once, the fault tests train their shared run once, and the
paper-sized configs never hold two workers' memory at once. A pytest that
pytest-xdist cannot group under splits the groups without a word (pytest 9.2
with pytest-xdist 3.8, pytest-xdist issue 1386), so this runs a small suite
the same way and checks where its tests ran."""

from __future__ import annotations

import json

pytest_plugins = ["pytester"]

GROUPED = 6

SMALL_SUITE = f"""
import json, os, pytest

def record(name):
  with open(os.path.join(os.environ["WHERE"], name), "w") as f:
    json.dump(os.environ.get("PYTEST_XDIST_WORKER"), f)

@pytest.mark.xdist_group("together")
@pytest.mark.parametrize("i", range({GROUPED}))
def test_grouped(i):
  record(f"grouped_{{i}}")

@pytest.mark.parametrize("i", range({GROUPED}))
def test_free(i):
  record(f"free_{{i}}")
"""


def test_loadgroup_runs_a_group_on_one_worker(pytester, monkeypatch):
  pytester.makepyfile(test_small_suite=SMALL_SUITE)
  where = pytester.mkdir("where")
  monkeypatch.setenv("WHERE", str(where))
  result = pytester.runpytest_subprocess(
    "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider"
  )
  result.assert_outcomes(passed=2 * GROUPED)

  def workers(kind: str) -> list[str]:
    return [
      json.loads((where / f"{kind}_{i}").read_text()) for i in range(GROUPED)
    ]

  grouped, free = workers("grouped"), workers("free")
  # Both workers ran tests (else one group would prove nothing), and the
  # grouped ones all ran on one of them.
  assert set(grouped) | set(free) == {"gw0", "gw1"}, (grouped, free)
  assert len(set(grouped)) == 1, (grouped, free)
