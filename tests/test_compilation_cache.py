"""The suite's persistent compilation cache (conftest.py): pruned to its
size limit by least recent access, once per session."""

from __future__ import annotations

import os

from conftest import prune_compilation_cache


def test_prune_deletes_the_least_recently_read_files_first(tmp_path):
  sizes = {"a-cache": 300, "b-cache": 200, "c-cache": 100, "d-atime": 8}
  # Read order, oldest first: c, a, d, b.
  atimes = {
    "c-cache": 1_000,
    "a-cache": 2_000,
    "d-atime": 3_000,
    "b-cache": 4_000,
  }
  for name, size in sizes.items():
    path = tmp_path / name
    path.write_bytes(b"x" * size)
    os.utime(path, (atimes[name], atimes[name]))
  prune_compilation_cache(str(tmp_path), limit_bytes=350)
  # c (100) then a (300) go: 208 bytes remain.
  assert sorted(os.listdir(tmp_path)) == ["b-cache", "d-atime"]
  prune_compilation_cache(str(tmp_path), limit_bytes=350)
  assert sorted(os.listdir(tmp_path)) == ["b-cache", "d-atime"]


def test_prune_of_a_missing_folder_does_nothing(tmp_path):
  prune_compilation_cache(str(tmp_path / "absent"), limit_bytes=0)
  assert not (tmp_path / "absent").exists()
