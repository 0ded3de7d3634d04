"""Tests run on the CPU; the multi-device tests start their own processes."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
