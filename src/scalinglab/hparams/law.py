"""The optimal value of a hyperparameter as a power law: h* = k C^a (DeepSeek LLM 2024) or h* = k N^a D^b
(Step Law 2025), fitted by least squares on log h* over the cells whose optimum is bracketed.

Intervals are Student-t on the log-linear fit: exact for the coefficients when the cells' log optima
scatter normally about the law; a prediction's interval is for a new cell's optimum (the law's
uncertainty plus the cells' scatter about it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from scalinglab.errors import UserError

VARIABLES = {"c": ("c",), "nd": ("n", "d")}


@dataclass(frozen=True)
class HparamLaw:
    """log h* = coef[0] + sum_i coef[i] log x_i over `inputs` ("c", or "n" and "d")."""

    column: str
    inputs: tuple[str, ...]
    coef: np.ndarray
    cov: np.ndarray
    residual_var: float
    dof: int
    cells: int
    level: float = 0.95

    @property
    def scale(self) -> float:
        """k in h* = k x^a."""
        return float(np.exp(self.coef[0]))

    @property
    def exponents(self) -> dict[str, float]:
        return {name: float(c) for name, c in zip(self.inputs, self.coef[1:], strict=True)}

    def _t(self) -> float:
        return float(stats.t.ppf(0.5 + self.level / 2, self.dof)) if self.dof > 0 else float("nan")

    def exponent_intervals(self) -> dict[str, tuple[float, float]]:
        """Each exponent's interval at `level` (NaN when the law has no residual degrees of freedom)."""
        half = self._t() * np.sqrt(np.diag(self.cov))[1:]
        return {name: (c - h, c + h) for (name, c), h in zip(self.exponents.items(), half, strict=True)}

    def predict(self, **values: float) -> tuple[float, float, float]:
        """h* at the given inputs (e.g. c=1e21, or n=1e9, d=2e10) and the interval for a new cell's optimum."""
        missing = [name for name in self.inputs if name not in values]
        if missing:
            raise UserError(f"the {self.column} law in {', '.join(self.inputs)} needs --{missing[0]}")
        point = np.array([1.0, *(np.log(values[name]) for name in self.inputs)])
        mean = float(point @ self.coef)
        half = self._t() * float(np.sqrt(point @ self.cov @ point + self.residual_var))
        return float(np.exp(mean)), float(np.exp(mean - half)), float(np.exp(mean + half))

    def to_dict(self) -> dict[str, Any]:
        intervals = self.exponent_intervals()
        return {
            "column": self.column,
            "inputs": list(self.inputs),
            "scale": self.scale,
            "exponents": self.exponents,
            "exponent_intervals": {k: [float(a), float(b)] for k, (a, b) in intervals.items()},
            "log_residual_sd": float(np.sqrt(self.residual_var)),
            "cells": self.cells,
            "dof": self.dof,
            "level": self.level,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HparamLaw:
        """A law `to_dict` wrote, without its covariance: predictions from it have no interval."""
        inputs = tuple(data["inputs"])
        coef = np.array([np.log(float(data["scale"])), *(float(data["exponents"][k]) for k in inputs)])
        nan = np.full((coef.size, coef.size), np.nan)
        return cls(str(data["column"]), inputs, coef, nan, float("nan"), 0, int(data["cells"]), float(data["level"]))


def fit_hparam_law(optima: pd.DataFrame, column: str, on: str = "c", level: float = 0.95) -> HparamLaw:
    """The power law for `column`'s optimum over the cells of `cell_optima` whose status is "ok"."""
    if on not in VARIABLES:
        raise UserError(f"a hyperparameter law is in c or nd, not '{on}'")
    inputs = VARIABLES[on]
    usable = optima[optima["status"] == "ok"]
    if len(usable) < len(inputs) + 1:
        raise UserError(
            f"{column}: {len(usable)} cells with a bracketed optimum; a law in {', '.join(inputs)} needs "
            f"{len(inputs) + 1}"
        )
    design = np.column_stack([np.ones(len(usable)), *(np.log(usable[name].to_numpy(float)) for name in inputs)])
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise UserError(f"{column}: the cells do not vary in {' and '.join(inputs)} independently")
    target = np.log(usable["opt"].to_numpy(float))
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    dof = len(usable) - design.shape[1]
    residual_var = float(np.sum((target - design @ coef) ** 2) / dof) if dof > 0 else float("nan")
    cov = residual_var * np.linalg.inv(design.T @ design)
    return HparamLaw(column, inputs, coef, cov, residual_var, dof, len(usable), level)
