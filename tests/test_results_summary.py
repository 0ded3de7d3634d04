"""The summary at the top of docs/results.md is the one its JSON reports
give, and each row links to a section that exists."""

from __future__ import annotations

import json
import os
import re

import results_summary


def _document() -> str:
  with open(results_summary.DOCUMENT) as f:
    return f.read()


def test_the_summary_table_matches_the_json_reports():
  assert results_summary.current(_document()) == results_summary.render(), (
    "run `python experiments/results_summary.py` after changing "
    "docs/results/summary.json or a report it names"
  )


def test_every_row_links_to_a_section_with_its_config():
  text = _document()
  headings = re.findall(r"^#+ (.*)$", text, re.M)
  anchors = {results_summary.anchor(h): h for h in headings}
  with open(os.path.join(results_summary.RESULTS, "summary.json")) as f:
    rows = json.load(f)["rows"]
  for row in rows:
    heading = anchors.get(results_summary.anchor(row["section"]))
    assert heading is not None, row["section"]
    assert row["config"].split(" ")[0].split(",")[0] in heading


def test_anchors_follow_github():
  assert (
    results_summary.anchor("RealNVP (`realnvp_mnist.py:cpu_hour`)")
    == "realnvp-realnvp_mnistpycpu_hour"
  )
