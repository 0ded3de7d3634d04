"""Reading a traced program: every equation of a jaxpr, nested programs
(scans, jits, custom derivatives) included."""

from __future__ import annotations


def equations(jaxpr, found=None) -> list:
  """Every equation of ``jaxpr`` and of the programs nested in it."""
  found = [] if found is None else found
  for eqn in jaxpr.eqns:
    found.append(eqn)
    for value in eqn.params.values():
      for item in value if isinstance(value, (tuple, list)) else (value,):
        if hasattr(item, "eqns"):
          equations(item, found)
        elif hasattr(getattr(item, "jaxpr", None), "eqns"):
          equations(item.jaxpr, found)
  return found
