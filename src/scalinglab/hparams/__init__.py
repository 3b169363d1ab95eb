"""Hyperparameters that scale: each cell's optimum from its trials, and power laws for the optimum in C and (N, D)."""

from scalinglab.hparams.law import HparamLaw, fit_hparam_law
from scalinglab.hparams.optimum import cell_optima
from scalinglab.hparams.tune import Tuned, tune

__all__ = ["HparamLaw", "Tuned", "cell_optima", "fit_hparam_law", "tune"]
