"""Experiment configs: ``get_config(arg)`` in each file; ``arg="smoke"`` gives
a few-step variant that the tests run on mock data, and an argument a file
does not know is refused (``common.parse_arg``)."""
