"""`ComputeOptimal`: N_opt(C), S_opt(C) and D_opt(C) by the envelope, IsoFLOP and parametric methods.

Fits each method the data allows, side by side, with run-bootstrap intervals; says why a method is
missing when the data do not support it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from scalinglab.errors import UserError, check_flops_per_param_sample, check_level, check_whole
from scalinglab.fit.law import ScalingLaw
from scalinglab.observations.runs import last_rows
from scalinglab.optimal import parametric
from scalinglab.optimal.agreement import Agreement, compare_methods, domain_note, range_causes
from scalinglab.optimal.curves import Curves, select_curves
from scalinglab.optimal.envelope import bin_usage, envelope, near_optimal, sizes_at_top
from scalinglab.optimal.isoflop import isoflop_minima, isoflop_scan
from scalinglab.optimal.powerfit import PowerLaw, fit_with_bootstrap
from scalinglab.optimal.smoothing import smooth_curves
from scalinglab.optimal.usage import envelope_usage, isoflop_usage, parametric_usage, usage_table

METHODS = ("envelope", "isoflop", "parametric")
ENVELOPES = ("robust", "raw")
QUANTITY_COLUMNS = {"N": "n_params", "S": "steps", "D": "samples_seen"}


class ComputeOptimal:
    """Optimal model size N, steps S and samples D as power laws of the training budget C.

    method: "envelope", "isoflop", "parametric" or "all". n_bins: log-spaced FLOPs bins of the
    envelope. n_budgets: FLOPs budgets of the IsoFLOP profiles. tolerance: relative gap that still counts
    as near-optimal. bootstrap: run resamples for intervals (0: none). ci_level: their coverage.
    flops_per_param_sample: k in C = k N D (parametric). law: a fitted chinchilla `ScalingLaw` for the
    parametric method (fitted here on the runs' final points when not given). envelope: "robust" (each
    run's curve smoothed first, so one outlying checkpoint cannot become optimal) or "raw" (the best raw
    point per bin). budget: a FLOPs budget (besides the largest observed) at which the methods' answers
    are compared and checked. samples_per_datum: the training samples each unit of the law's D stands for
    (the epochs, when D counts unique data and the budget is in epochs): the parametric D_opt is reported in
    samples seen, the envelope's unit, and k stays per unit of the law's D. scope: what the data given to
    `fit` leave out (e.g. "runs at data scale 4X only"), quoted as a cause when the envelope or IsoFLOP
    disagrees with the parametric law, which is fitted on every run.
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
        envelope: str = "robust",
        budget: float | None = None,
        samples_per_datum: float = 1.0,
        scope: str | None = None,
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
        self.envelope = envelope
        self.budget = budget
        self.samples_per_datum = samples_per_datum
        self.scope = scope

    def fit(
        self, data: pd.DataFrame | Curves, columns: dict[str, str | None] | None = None, **selection: Any
    ) -> ComputeOptimal:
        """Fit every method the data allow; `selection` passes through to `select_curves` (source, metric, split)."""
        self.check_options()
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
        self.usage_: dict[str, dict[str, Any]] = {}
        self._envelopes(curves)
        self.isoflop_ = None
        self.isoflop_dropped_ = None
        if "envelope" in methods:
            self._fit_envelope(self.envelope_curves_)
        if "isoflop" in methods:
            self._fit_isoflop(curves)
        if "parametric" in methods:
            self._fit_parametric(curves)
        if not self.laws_:
            raise UserError(f"{curves.source}: no method could be fitted: " + "; ".join(self.warnings_))
        self._outlier_warning()
        self.agreement_ = self.agreement(self.budget)
        self.warnings_ += self.agreement_.warnings
        for c in self.budgets(self.budget).values():
            self.warnings_ += [
                f"at {c:.3g} FLOPs, {row.method}: {row.note}" for row in self.predict(c).itertuples() if row.note
            ]
        return self

    def _envelopes(self, curves: Curves) -> None:
        """The raw envelope, the smoothed curves with their outliers, and the envelope the method uses."""
        self.raw_envelope_ = envelope(curves, self.n_bins)
        self.smoothed_curves_, self.outliers_ = smooth_curves(curves)
        robust = self.envelope == "robust"
        self.envelope_curves_ = self.smoothed_curves_ if robust else curves
        raw_value = curves.value if robust else None
        self.envelope_ = envelope(self.envelope_curves_, self.n_bins, raw_value=raw_value)
        self.near_optimal_ = near_optimal(self.envelope_curves_, self.n_bins, self.tolerance)

    def check_options(self, flag: Callable[[str], str] = str) -> None:
        """A UserError naming the first setting that cannot be used; `flag` spells its name (the CLI's --bins)."""
        if self.method not in (*METHODS, "all"):
            choices = "envelope, isoflop, parametric or all"
            raise UserError(f"{flag('method')}: unknown method '{self.method}'; choose {choices}")
        if self.envelope not in ENVELOPES:
            raise UserError(f"{flag('envelope')}: unknown envelope '{self.envelope}'; choose robust or raw")
        if not (np.isfinite(self.samples_per_datum) and self.samples_per_datum > 0):
            raise UserError(f"{flag('samples_per_datum')} must be a finite number > 0, got {self.samples_per_datum}")
        if self.budget is not None and not (np.isfinite(self.budget) and self.budget > 0):
            raise UserError(f"{flag('budget')} must be a finite number > 0 FLOPs, got {self.budget}")
        check_whole(flag("n_bins"), self.n_bins, minimum=1)
        check_whole(flag("n_budgets"), self.n_budgets, minimum=1)
        check_whole(flag("bootstrap"), self.bootstrap, unit="resamples")
        check_whole(flag("seed"), self.seed)
        if not (np.isfinite(self.tolerance) and self.tolerance >= 0):
            raise UserError(f"{flag('tolerance')} must be a finite number >= 0 (0.01 is 1%), got {self.tolerance}")
        check_level(flag("ci_level"), self.ci_level)
        check_flops_per_param_sample(self.flops_per_param_sample, flag("flops_per_param_sample"))

    # ---- the three methods -----------------------------------------------------------------------
    def _fit_envelope(self, curves: Curves) -> None:
        env = self.envelope_
        self.usage_["envelope"] = envelope_usage(bin_usage(curves, self.n_bins), self.envelope, self.outliers_, env)
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
        minima, dropped, notes = isoflop_scan(curves, self.n_budgets)
        self.isoflop_, self.isoflop_dropped_ = minima, dropped
        self.usage_["isoflop"] = isoflop_usage(minima, dropped, notes, self.n_budgets)
        if len(minima) < 2:
            self.warnings_.append(f"isoflop: {len(minima)} usable budget(s), need 2 to fit N_opt(C)")
            self.warnings_.extend(notes)
            self.warnings_.extend(f"isoflop: budget {r.budget:.3g} skipped: {r.reason}" for r in dropped.itertuples())
            return

        def points(runs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            sub = minima if runs is curves.runs else isoflop_minima(curves.subset(runs), self.n_budgets)[0]
            return sub["budget"].to_numpy(), sub["n_opt"].to_numpy()

        law = fit_with_bootstrap(points, curves.runs, self.bootstrap, self.seed)
        if law is not None:
            self.laws_["isoflop", "N"] = law

    def _fit_parametric(self, curves: Curves) -> None:
        law = self.law
        final = None
        if law is None:
            if curves.d is None:
                self.warnings_.append("parametric: needs a samples_seen column (or a fitted law) to fit L(N, D)")
                return
            final = last_rows(curves.frame(), order="flops")
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
        params = parametric.additive_params(law.form_.name, law.params_)
        if params is None:
            self.warnings_.append(f"parametric: needs a law of chinchilla's additive family, not '{law.form_.name}'")
            return
        if "beta" not in law.params_:
            self.warnings_.append(
                f"parametric: the {law.form_.name} form shares one exponent (alpha = beta), so N_opt and D_opt "
                "grow as C^0.5 by construction: that exponent and its interval are the form's assumption, not "
                "a measurement (the envelope and IsoFLOP exponents are)"
            )
        self.parametric_law_ = law
        self.usage_["parametric"] = parametric_usage(final, law, self.flops_per_param_sample)
        k = self.flops_per_param_sample
        log_kn, a, log_kd, b = parametric.allocation_coefficients(params, k)
        samples_n = samples_d = None
        boot = law.bootstrap_params_
        if boot is not None:
            replicas = parametric.additive_params(law.form_.name, {c: boot[c].to_numpy() for c in boot})
            keep = (replicas["alpha"] > 0) & (replicas["beta"] > 0)
            replicas = {c: np.broadcast_to(v, keep.shape)[keep] for c, v in replicas.items()}
            bkn, ba, bkd, bb = parametric.allocation_coefficients(replicas, k)
            samples_n, samples_d = np.stack([bkn, ba], axis=1), np.stack([bkd, bb], axis=1)
        self.laws_["parametric", "N"] = PowerLaw(float(np.exp(log_kn)), float(a), samples_n)
        # D_opt in samples seen, as the envelope's: the law's D (unique data) times the passes over it
        seen = float(np.log(self.samples_per_datum))
        if samples_d is not None:
            samples_d[:, 0] += seen
        self.laws_["parametric", "D"] = PowerLaw(float(np.exp(log_kd + seen)), float(b), samples_d)

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
        """N_opt, S_opt and D_opt at budget c by every fitted method, with intervals.

        `note` says why an answer is impossible at that budget (N_opt above C/k, D_opt under one sample,
        S_opt under one step); it is "" for a possible one.
        """
        self._check_fitted()
        if not c > 0:
            raise UserError(f"budget must be > 0 FLOPs, got {c}")
        rows = []
        k = self.flops_per_param_sample / self.samples_per_datum  # FLOPs per parameter per sample seen
        for (method, quantity), law in self.laws_.items():
            interval = law.interval(c, self.ci_level) or (np.nan, np.nan)
            value = float(law.predict(c))
            rows.append((method, quantity, float(c), value, *interval, domain_note(quantity, value, c, k)))
        return pd.DataFrame(rows, columns=["method", "quantity", "budget", "value", "lower", "upper", "note"])

    def budgets(self, budget: float | None = None) -> dict[str, float]:
        """The budgets the methods are compared at: the largest observed, and `budget` when given."""
        self._check_fitted()
        out = {"largest observed budget": float(self.curves_.c.max())}
        if budget is not None and not np.isclose(budget, out["largest observed budget"]):
            out["requested budget"] = float(budget)
        return out

    def agreement(self, budget: float | None = None) -> Agreement:
        """Whether the methods agree on each exponent and at the largest observed budget (and `budget`)."""
        self._check_fitted()
        budgets = self.budgets(budget)
        causes, at_budget = range_causes(self.usage_, budgets)
        return compare_methods(self.laws_, budgets, self.ci_level, self._causes(causes), at_budget)

    def _causes(self, causes: dict[str, list[str]]) -> dict[str, list[str]]:
        """What may make each method differ: its range, dropped points, outliers, the law's identifiability."""
        if self.scope:
            for method in ("envelope", "isoflop"):
                if method in causes:
                    causes[method].append(f"{method} read {self.scope}")
        iso = self.usage_.get("isoflop")
        if iso and iso["dropped"]:
            edge = [d for d in iso["dropped"] if "outside the sizes sampled" in d["reason"]]
            if edge:
                causes["isoflop"].append(
                    f"isoflop dropped {len(edge)} of {self.n_budgets} budgets because the best size lies at the "
                    "edge of the sizes sampled there"
                )
        top = sizes_at_top(self.envelope_curves_)
        if "envelope" in causes and top.size == 1:
            causes["envelope"].append(
                f"only the largest model ({top[0]:.3g} params) reaches the largest budget, so the envelope's N_opt "
                "there is that model's size unless its fit over smaller budgets says otherwise"
            )
        if len(self.outliers_) and "envelope" in causes:
            raw_picks = self.raw_envelope_.merge(self.outliers_[["run_id", "flops"]], on=["run_id", "flops"])
            if self.envelope == "raw" and len(raw_picks):
                row = raw_picks.iloc[0]
                causes["envelope"].append(
                    f"the raw envelope takes {len(raw_picks)} outlying checkpoint(s) as optimal (e.g. run "
                    f"{row['run_id']} at {row['flops']:.3g} FLOPs); try the robust envelope"
                )
        law = getattr(self, "parametric_law_", None)
        if law is not None and "parametric" in causes:
            if law.not_identified_:
                causes["parametric"].append(
                    f"the parametric law does not identify {', '.join(law.not_identified_)} (profile interval open)"
                )
            if law.at_bounds_:
                causes["parametric"].append(f"the parametric law has {', '.join(law.at_bounds_)} at the search bounds")
            if "beta" not in law.params_:
                causes["parametric"].append(f"the {law.form_.name} form fixes the exponents at 0.5 (alpha = beta)")
            causes["parametric"] += [f"the parametric law warns: {w}" for w in law.warnings_ if "last point" not in w]
        return causes

    def _outlier_warning(self) -> None:
        """Say when the raw envelope would take an outlying checkpoint as optimal (and what was done)."""
        picked = self.raw_envelope_.merge(self.outliers_[["run_id", "flops", "smoothed"]], on=["run_id", "flops"])
        if not len(picked):
            return
        row = picked.iloc[0]
        done = (
            "the robust envelope smooths each run's curve and does not take it"
            if self.envelope == "robust"
            else "the raw envelope takes it as optimal; the robust envelope (the default) would not"
        )
        self.warnings_.append(
            f"envelope: {len(picked)} outlying checkpoint(s) would be optimal in the raw envelope, e.g. run "
            f"{row['run_id']} at {row['flops']:.3g} FLOPs reads {row['value']:.4g} where its smoothed curve reads "
            f"{row['smoothed']:.4g}; {done}"
        )

    @property
    def usage_table_(self) -> pd.DataFrame:
        """One row per method: what it used (points, FLOPs range, runs per point) and what it dropped, why."""
        self._check_fitted()
        return usage_table(self.usage_)
