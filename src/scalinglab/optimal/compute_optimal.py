"""`ComputeOptimal`: N_opt(C), S_opt(C) and D_opt(C) by the envelope, IsoFLOP and parametric methods.

Fits each method the data allows, side by side, with run-bootstrap intervals; says why a method is
missing when the data do not support it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from scalinglab.errors import UserError, check_flops_per_param_sample, check_level, check_whole
from scalinglab.fit.law import ScalingLaw
from scalinglab.optimal import parametric
from scalinglab.optimal.curves import Curves, select_curves
from scalinglab.optimal.envelope import envelope, near_optimal
from scalinglab.optimal.isoflop import isoflop_minima
from scalinglab.optimal.powerfit import PowerLaw, fit_with_bootstrap

METHODS = ("envelope", "isoflop", "parametric")
QUANTITY_COLUMNS = {"N": "n_params", "S": "steps", "D": "samples_seen"}


class ComputeOptimal:
    """Optimal model size N, steps S and samples D as power laws of the training budget C.

    method: "envelope", "isoflop", "parametric" or "all". n_bins: log-spaced FLOPs bins of the
    envelope. n_budgets: FLOPs budgets of the IsoFLOP profiles. tolerance: relative gap that still counts
    as near-optimal. bootstrap: run resamples for intervals (0: none). ci_level: their coverage.
    flops_per_param_sample: k in C = k N D (parametric). law: a fitted chinchilla `ScalingLaw` for the
    parametric method (fitted here on the runs' final points when not given).
    """

    def __init__(
        self,
        method: str = "all",
        higher_is_better: bool = False,
        n_bins: int = 30,
        n_budgets: int = 10,
        tolerance: float = 0.01,
        bootstrap: int = 200,
        seed: int = 0,
        flops_per_param_sample: float = 6.0,
        ci_level: float = 0.95,
        law: ScalingLaw | None = None,
    ) -> None:
        self.method = method
        self.higher_is_better = higher_is_better
        self.n_bins = n_bins
        self.n_budgets = n_budgets
        self.tolerance = tolerance
        self.bootstrap = bootstrap
        self.seed = seed
        self.flops_per_param_sample = flops_per_param_sample
        self.ci_level = ci_level
        self.law = law

    def fit(
        self, data: pd.DataFrame | Curves, columns: dict[str, str | None] | None = None, **selection: Any
    ) -> ComputeOptimal:
        """Fit every method the data allow; `selection` passes through to `select_curves` (source, metric, split)."""
        self._check_options()
        curves = (
            data
            if isinstance(data, Curves)
            else select_curves(data, columns, higher_is_better=self.higher_is_better, **selection)
        )
        if curves.runs.size < 2:
            raise UserError(
                f"{curves.source}: one run; the compute-optimal analysis needs several runs of different sizes"
            )
        methods = METHODS if self.method == "all" else (self.method,)
        self.curves_ = curves
        self.laws_: dict[tuple[str, str], PowerLaw] = {}
        self.warnings_: list[str] = []
        self.envelope_ = envelope(curves, self.n_bins)
        self.near_optimal_ = near_optimal(curves, self.n_bins, self.tolerance)
        self.isoflop_ = None
        if "envelope" in methods:
            self._fit_envelope(curves)
        if "isoflop" in methods:
            self._fit_isoflop(curves)
        if "parametric" in methods:
            self._fit_parametric(curves)
        if not self.laws_:
            raise UserError(f"{curves.source}: no method could be fitted: " + "; ".join(self.warnings_))
        return self

    def _check_options(self) -> None:
        if self.method not in (*METHODS, "all"):
            raise UserError(f"unknown method '{self.method}'; choose envelope, isoflop, parametric or all")
        check_whole("n_bins", self.n_bins, minimum=1)
        check_whole("n_budgets", self.n_budgets, minimum=1)
        check_whole("bootstrap", self.bootstrap, unit="resamples")
        check_whole("seed", self.seed)
        if not (np.isfinite(self.tolerance) and self.tolerance >= 0):
            raise UserError(f"tolerance must be a finite number >= 0 (0.01 is 1%), got {self.tolerance}")
        check_level("ci_level", self.ci_level)
        check_flops_per_param_sample(self.flops_per_param_sample)

    # ---- the three methods -----------------------------------------------------------------------
    def _fit_envelope(self, curves: Curves) -> None:
        env = self.envelope_
        if env.empty:
            self.warnings_.append("envelope: no FLOPs bin is reached by two runs; the runs do not overlap in compute")
            return
        if env["run_id"].nunique() < 2 or env["n_params"].nunique() < 2:
            self.warnings_.append(
                f"envelope: made of one model size ({env['n_params'].iloc[0]:.3g} params, run {env['run_id'].iloc[0]}):"
                " N_opt(C) cannot be fitted from it"
            )
            return
        resampled: dict[bytes, pd.DataFrame] = {}  # one envelope per resample, shared by N, S and D

        def resampled_envelope(runs: np.ndarray) -> pd.DataFrame:
            if runs is curves.runs:
                return env
            key = runs.tobytes()
            if key not in resampled:
                resampled[key] = envelope(curves.subset(runs), self.n_bins)
            return resampled[key]

        for quantity, column in QUANTITY_COLUMNS.items():
            if column not in env.columns:
                continue

            def points(runs: np.ndarray, column: str = column) -> tuple[np.ndarray, np.ndarray]:
                sub = resampled_envelope(runs)
                return sub["flops"].to_numpy(), sub[column].to_numpy()

            law = fit_with_bootstrap(points, curves.runs, self.bootstrap, self.seed)
            if law is not None:
                self.laws_["envelope", quantity] = law

    def _fit_isoflop(self, curves: Curves) -> None:
        minima, notes = isoflop_minima(curves, self.n_budgets)
        self.isoflop_ = minima
        if len(minima) < 2:
            self.warnings_.append(f"isoflop: {len(minima)} usable budget(s), need 2 to fit N_opt(C)")
            self.warnings_.extend(notes)
            return

        def points(runs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            sub = minima if runs is curves.runs else isoflop_minima(curves.subset(runs), self.n_budgets)[0]
            return sub["budget"].to_numpy(), sub["n_opt"].to_numpy()

        law = fit_with_bootstrap(points, curves.runs, self.bootstrap, self.seed)
        if law is not None:
            self.laws_["isoflop", "N"] = law

    def _fit_parametric(self, curves: Curves) -> None:
        law = self.law
        if law is None:
            if curves.d is None:
                self.warnings_.append("parametric: needs a samples_seen column (or a fitted law) to fit L(N, D)")
                return
            final = curves.frame().sort_values("flops").groupby("run_id").tail(1)
            if final["n_params"].nunique() < 2 or final["samples_seen"].nunique() < 2:
                self.warnings_.append(
                    "parametric: the runs' final points vary in only one of N and D; L(N, D) is not identifiable"
                )
                return
            table = final.assign(dataset_size=final["samples_seen"])
            law = ScalingLaw(
                form="chinchilla", higher_is_better=self.higher_is_better, bootstrap=self.bootstrap, seed=self.seed
            )
            law.fit(table, source=curves.source, final_only=False)
        if law.form_.name != "chinchilla":
            self.warnings_.append(f"parametric: needs a chinchilla law, not '{law.form_.name}'")
            return
        self.parametric_law_ = law
        k = self.flops_per_param_sample
        log_kn, a, log_kd, b = parametric.allocation_coefficients(law.params_, k)
        samples_n = samples_d = None
        boot = law.bootstrap_params_
        if boot is not None:
            boot = boot[(boot["alpha"] > 0) & (boot["beta"] > 0)]
            bkn, ba, bkd, bb = parametric.allocation_coefficients({c: boot[c].to_numpy() for c in boot}, k)
            samples_n, samples_d = np.stack([bkn, ba], axis=1), np.stack([bkd, bb], axis=1)
        self.laws_["parametric", "N"] = PowerLaw(float(np.exp(log_kn)), float(a), samples_n)
        self.laws_["parametric", "D"] = PowerLaw(float(np.exp(log_kd)), float(b), samples_d)

    # ---- results ---------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "laws_"):
            raise RuntimeError("this ComputeOptimal is not fitted yet; call fit()")

    @property
    def exponents_(self) -> pd.DataFrame:
        """One row per method and quantity: X_opt = coefficient * C^exponent, with the exponent's interval."""
        self._check_fitted()
        rows = []
        for (method, quantity), law in self.laws_.items():
            interval = law.interval(ci_level=self.ci_level) or (np.nan, np.nan)
            rows.append((method, quantity, law.exponent, *interval, law.coefficient))
        return pd.DataFrame(rows, columns=["method", "quantity", "exponent", "lower", "upper", "coefficient"])

    def predict(self, c: float) -> pd.DataFrame:
        """N_opt, S_opt and D_opt at budget c by every fitted method, with intervals."""
        self._check_fitted()
        if not c > 0:
            raise UserError(f"budget must be > 0 FLOPs, got {c}")
        rows = []
        for (method, quantity), law in self.laws_.items():
            interval = law.interval(c, self.ci_level) or (np.nan, np.nan)
            rows.append((method, quantity, float(c), float(law.predict(c)), *interval))
        return pd.DataFrame(rows, columns=["method", "quantity", "budget", "value", "lower", "upper"])
