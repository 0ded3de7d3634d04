"""Tests run on the CPU; the multi-device tests start their own processes.

The test helpers (``registry``) and the experiment configs are imported by
path; the package itself comes from the working tree.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for path in (HERE, ROOT, os.path.join(ROOT, "experiments")):
  if path not in sys.path:
    sys.path.insert(0, path)
