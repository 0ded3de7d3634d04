"""The models of the density-estimation experiment
(``experiments/density_estimation.py`` is the command)."""
