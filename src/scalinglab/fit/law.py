"""`ScalingLaw`: fit a functional form to observations, predict with intervals, save and load.

A scikit-learn-shaped estimator: configured in __init__, learns in fit, learned state in `*_` attributes.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalinglab import __version__
from scalinglab.errors import UserError, check_level, check_whole
from scalinglab.files import read_json, write_text_atomic
from scalinglab.fit.bootstrap import bootstrap_fits
from scalinglab.fit.diagnostics import bound_warnings, check_bounds, conditioning_warnings, extrapolation_warnings
from scalinglab.fit.expressions import evaluate
from scalinglab.fit.forms import FORMS, Form, get_form
from scalinglab.fit.forms.epochs import at_epochs
from scalinglab.fit.intervals import profile_intervals
from scalinglab.fit.loss import Loss
from scalinglab.fit.multistart import MultiStartResult, fit_multistart, hessian
from scalinglab.fit.scoring import Selection
from scalinglab.fit.search import AUTO, STEPS_INPUT, FormSearch
from scalinglab.observations import FitData, select_fit_data

# Predictions are refused this many decades (powers of ten) beyond the fitted range of an input: no law
# fitted on a few decades says anything there, and the forms' powers overflow not far beyond.
MAX_EXTRAPOLATION_DECADES = 100.0
WARM_GRID_STRIDE = 8  # a warm-started fit also screens every 8th start of the form's grid
_AUTO_WARNED = False  # form="auto" warns once per process


class ScalingLaw:
    """A scaling law L(inputs) of a given form, fitted by multi-start robust regression on log(metric).

    Parameters
    ----------
    form: name of a registered form ("chinchilla", "kaplan", "power", "power_offset", "bnsl1", "bnsl2").
    loss: "huber" (default, on log residuals, summed), "mse" or "asymmetric" (over-predictions cost more).
    delta: the Huber threshold. over_weight: the asymmetric loss's weight on over-predictions.
    higher_is_better: fit the error `ceiling - metric` (mAP, accuracy); predictions come back as the metric.
    bootstrap: number of bootstrap refits for intervals (0 for none). seed: makes them deterministic.
    ci_level: coverage of the intervals. starts: an (S, P) array of internal starts to
    replace the form's default grid. screen_iter: iterations every start gets before the best are polished.
    intervals: "profile" (default: profile-likelihood intervals, open on a side the data do not bound),
    "bootstrap" (percentiles of the bootstrap refits; needs bootstrap > 0) or None (no parameter intervals).
    A law knows exactly one form: `FormSearch` chooses among forms (`fit_law("auto", ...)` for short). form
    "auto" with `candidates` is kept for older callers and warns once that it is deprecated.
    """

    def __init__(
        self,
        form: str = "chinchilla",
        loss: str = "huber",
        delta: float = 1e-3,
        over_weight: float = 2.0,
        higher_is_better: bool = False,
        ceiling: float = 1.0,
        bootstrap: int = 0,
        seed: int = 0,
        ci_level: float = 0.95,
        starts: np.ndarray | None = None,
        screen_iter: int = 20,
        intervals: str | None = "profile",
        candidates: tuple[str, ...] | list[str] | None = None,
    ) -> None:
        self.form = form
        self.loss = loss
        self.delta = delta
        self.over_weight = over_weight
        self.higher_is_better = higher_is_better
        self.ceiling = ceiling
        self.bootstrap = bootstrap
        self.seed = seed
        self.ci_level = ci_level
        self.starts = starts
        self.screen_iter = screen_iter
        self.intervals = intervals
        self.candidates = candidates

    # ---- fitting -------------------------------------------------------------------------------
    def fit(self, data: pd.DataFrame | FitData, columns: dict[str, str] | None = None, **selection: Any) -> ScalingLaw:
        """Fit to an observations table (or any DataFrame with a `columns` role mapping), or to FitData.

        `selection` passes through to `select_fit_data` (metric, split, final_only, d_from_flops, ...).
        """
        if self.form == AUTO:
            return self._fit_by_search(data, columns, **selection)
        self.selection_ = None
        form = get_form(self.form)
        self.check_options()
        fit_data = self.fit_data(data, form.inputs, form.n_params, columns, selection)
        self._fit_point(form, fit_data)
        self.fit_intervals(fit_data)
        return self

    def _fit_by_search(
        self, data: pd.DataFrame | FitData, columns: dict[str, str] | None, **selection: Any
    ) -> ScalingLaw:
        """form="auto", kept for callers: the best of a `FormSearch` over `candidates`, taken as this law's fit."""
        global _AUTO_WARNED
        if not _AUTO_WARNED:
            _AUTO_WARNED = True
            warnings.warn(
                "ScalingLaw(form='auto') is deprecated: use FormSearch(ScalingLaw(...), candidates).fit(...)"
                ".best_estimator_, or fit_law('auto', ...)",
                DeprecationWarning,
                stacklevel=3,
            )
        search = FormSearch(self.clone(form=AUTO, candidates=None), self.candidates).fit(data, columns, **selection)
        learned = {k: v for k, v in search.best_estimator_.__dict__.items() if k.endswith("_")}
        self.__dict__.update(learned)
        return self

    def fit_data(
        self,
        data: pd.DataFrame | FitData,
        inputs: tuple[str, ...],
        n_params: int,
        columns: dict[str, str] | None,
        selection: dict[str, Any],
    ) -> FitData:
        """The points a fit on `inputs` reads: `data` itself when it is FitData, else selected from the table."""
        if isinstance(data, FitData):
            if data.input_names != tuple(inputs):
                raise UserError(
                    f"{data.source}: the points have inputs {', '.join(data.input_names)}; "
                    f"form '{self.form}' reads {', '.join(inputs)}"
                )
            if data.n_points < n_params:
                raise UserError(f"{data.source}: {data.n_points} points, fewer than the form's {n_params} parameters")
            return data
        if selection.get("final_only") is None:  # a steps-aware form takes every checkpoint unless told otherwise
            selection = {**selection, "final_only": STEPS_INPUT not in inputs}
        return select_fit_data(
            data,
            inputs,
            columns,
            higher_is_better=self.higher_is_better,
            ceiling=self.ceiling,
            n_params=n_params,
            **selection,
        )

    def _multistart(self, form: Form, fit_data: FitData, warm: np.ndarray | None = None) -> MultiStartResult:
        lx, ly = np.log(fit_data.inputs), np.log(fit_data.y)
        starts = form.start_grid(lx, ly) if self.starts is None else np.atleast_2d(np.asarray(self.starts, float))
        if warm is not None:
            starts = np.vstack([warm, starts[::WARM_GRID_STRIDE]])
        return fit_multistart(form, lx, ly, self.loss_function(), starts, screen_iter=self.screen_iter)

    def fit_optimum(self, fit_data: FitData, warm: np.ndarray | None = None) -> MultiStartResult:
        """The multistart optimum of this law's form on `fit_data`, without what a full fit adds (the bound check,
        the Hessian, warnings, intervals): what each fold of a form search predicts from.

        `warm` (K, P): the polished basins of a fit on a subset of these points (a forward fold's, for the next
        fold, whose runs include it); they and every WARM_GRID_STRIDE-th start of the grid replace the grid.
        """
        self.check_options()
        form = get_form(self.form)
        return self._multistart(form, self.fit_data(fit_data, form.inputs, form.n_params, None, {}), warm)

    def _fit_point(self, form: Form, fit_data: FitData) -> None:
        """The best fit, its diagnostics and warnings: everything but the intervals."""
        loss = self.loss_function()
        lx, ly = np.log(fit_data.inputs), np.log(fit_data.y)
        result = self._multistart(form, fit_data)
        bounds = check_bounds(form, result.theta, result.objective, lx, ly, loss)

        self.form_ = form
        self.theta_ = bounds.theta
        self.params_ = {k: float(v) for k, v in form.to_public(bounds.theta).items()}
        self.objective_ = bounds.objective
        self.basins_ = np.vstack([self.theta_[None, :], result.basins])
        self.n_points_ = fit_data.n_points
        self.n_starts_ = result.n_starts
        self.n_reached_ = result.n_reached
        best = int(np.argmin(fit_data.y))
        self.best_point_ = {name: float(v[best]) for name, v in zip(form.inputs, fit_data.inputs, strict=True)}
        self.best_point_["value"] = float(self.to_metric(fit_data.y[best]))
        self.domain_ = {
            name: (float(v.min()), float(v.max())) for name, v in zip(form.inputs, fit_data.inputs, strict=True)
        }
        self.hessian_ = hessian(form, self.theta_, lx, ly, loss)
        self.at_bounds_ = [form.params[i].public for i, _ in bounds.active]
        jacobian = form.value_and_jacobian(self.theta_[None, :], lx)[1][0]  # of the log predictions [n, P]
        self.warnings_ = (
            list(fit_data.warnings)
            + bound_warnings(form, bounds.active)
            + conditioning_warnings(form, jacobian.T @ jacobian)
        )
        if not result.converged:
            self.warnings_.append(f"the optimiser stopped before converging (gradient norm {result.gradient_norm:.2g})")

    def fit_intervals(self, fit_data: FitData) -> None:
        """Bootstrap refits (when asked) and profile intervals (when they are the method) around the fit."""
        form, loss = self.form_, self.loss_function()
        lx, ly = np.log(fit_data.inputs), np.log(fit_data.y)
        self.bootstrap_theta_ = None
        if self.bootstrap:
            self.bootstrap_theta_ = bootstrap_fits(
                form, lx, ly, loss, self.theta_, self.bootstrap, self.seed, fit_data.groups
            )
        self.profile_ci_, self.not_identified_ = None, []
        if self.intervals == "profile":
            profile = profile_intervals(
                form, self.theta_, self.objective_, lx, ly, loss, self.ci_level, self.hessian_, fit_data.groups
            )
            self.profile_ci_, self.not_identified_ = profile.ci, profile.not_identified
            self.warnings_ += profile.warnings(self.ci_level)

    def get_params(self) -> dict[str, Any]:
        """The configuration given to __init__ (as scikit-learn estimators report it)."""
        names = ("form", "loss", "delta", "over_weight", "higher_is_better", "ceiling", "bootstrap", "seed")
        names += ("ci_level", "starts", "screen_iter", "intervals", "candidates")
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params: Any) -> ScalingLaw:
        """Change settings given to __init__ (scikit-learn's `set_params`); an unknown name is a TypeError."""
        unknown = set(params) - set(self.get_params())
        if unknown:
            raise TypeError(f"ScalingLaw has no setting {', '.join(sorted(unknown))}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def clone(self, **params: Any) -> ScalingLaw:
        """A new, unfitted law with this one's settings, `params` changed (scikit-learn's `clone`)."""
        return type(self)(**{**self.get_params(), **params})

    def loss_function(self) -> Loss:
        """The configured loss (`loss`, `delta`, `over_weight`) as the object the optimiser sums."""
        try:
            return Loss(self.loss, self.delta, self.over_weight)
        except ValueError as exc:
            raise UserError(str(exc)) from None

    def check_options(self, flag: Callable[[str], str] = str) -> None:
        """A UserError naming the first setting that cannot be used (loss, intervals, level, refits, seed).

        `flag` spells a setting's name in the message (the CLI passes one that gives `--ci-level`).
        """
        self.loss_function()
        if self.intervals not in ("profile", "bootstrap", None):
            raise UserError(f"{flag('intervals')} must be 'profile', 'bootstrap' or None, got '{self.intervals}'")
        if self.intervals == "bootstrap" and not self.bootstrap:
            raise UserError(f"bootstrap intervals need {flag('bootstrap')} K (K > 0)")
        check_level(flag("ci_level"), self.ci_level)
        check_whole(flag("bootstrap"), self.bootstrap, unit="refits")
        check_whole(flag("seed"), self.seed)
        if not np.isfinite(self.ceiling):
            raise UserError(f"{flag('ceiling')} must be a finite number, got {self.ceiling}")

    def _check_fitted(self) -> None:
        if not hasattr(self, "theta_"):
            raise RuntimeError("this ScalingLaw is not fitted yet; call fit() or ScalingLaw.load()")

    # ---- what was learned ------------------------------------------------------------------------
    @property
    def bootstrap_params_(self) -> pd.DataFrame | None:
        """One row of published parameters per bootstrap refit."""
        self._check_fitted()
        if self.bootstrap_theta_ is None:
            return None
        return pd.DataFrame({k: np.asarray(v) for k, v in self.form_.to_public(self.bootstrap_theta_).items()})

    @property
    def ci_(self) -> dict[str, tuple[float | None, float | None]] | None:
        """Intervals at `ci_level` for every parameter, by the `intervals` method.

        Profile intervals have None on a side the data leave open (the parameter is in `not_identified_`).
        """
        self._check_fitted()
        if self.intervals == "profile":
            return self.profile_ci_
        return self.bootstrap_ci_ if self.intervals == "bootstrap" else None

    @property
    def bootstrap_ci_(self) -> dict[str, tuple[float, float]] | None:
        """Percentile intervals of the bootstrap refits at `ci_level` (None without bootstrap)."""
        boot = self.bootstrap_params_
        if boot is None:
            return None
        return {name: self._interval(boot[name].to_numpy()) for name in boot.columns}

    @property
    def se_(self) -> dict[str, float] | None:
        boot = self.bootstrap_params_
        return None if boot is None else {name: float(boot[name].std(ddof=1)) for name in boot.columns}

    def _interval(self, samples: np.ndarray) -> tuple[float, float]:
        tail = 50 * (1 - self.ci_level)
        samples = samples[np.isfinite(samples)]
        lo, hi = np.percentile(samples, [tail, 100 - tail])
        return float(lo), float(hi)

    def derived(self, expression: str) -> dict[str, float]:
        """A quantity of the parameters, e.g. "beta / (alpha + beta)", with its interval when bootstrapped."""
        self._check_fitted()
        out = {"value": float(evaluate(expression, self.params_))}
        boot = self.bootstrap_params_
        if boot is not None:
            out["lower"], out["upper"] = self._interval(evaluate(expression, {c: boot[c].to_numpy() for c in boot}))
        return out

    # ---- prediction ------------------------------------------------------------------------------
    def predict(self, return_ci: bool = False, **inputs: Any):
        """Predicted metric at the given inputs (n=..., d=... or x=...), in the metric's own units.

        With `return_ci`, also the lower and upper percentile bounds from the bootstrap refits.
        """
        self._check_fitted()
        names = self.form_.inputs
        if set(inputs) != set(names):
            raise UserError(
                f"form '{self.form_.name}' predicts from {', '.join(names)}; got {', '.join(inputs) or 'nothing'}"
            )
        arrays = np.broadcast_arrays(*[np.asarray(inputs[k], dtype=float) for k in names])
        self._check_inputs(names, arrays)
        for message in extrapolation_warnings(names, dict(zip(names, arrays, strict=True)), self.domain_):
            warnings.warn(message, stacklevel=2)
        shape = arrays[0].shape
        lx = np.log(np.stack([a.ravel() for a in arrays]))
        with np.errstate(over="ignore"):
            point = self.to_metric(np.exp(self.form_.log_predict(self.theta_[None, :], lx)[0]))
        self._check_finite(point, "prediction", names, lx)
        if not return_ci:
            return point.reshape(shape)
        if self.bootstrap_theta_ is None:
            raise UserError("no intervals: the law was fitted without --bootstrap")
        with np.errstate(over="ignore"):
            samples = self.to_metric(np.exp(self.form_.log_predict(self.bootstrap_theta_, lx)))
        tail = 50 * (1 - self.ci_level)
        lo, hi = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
        lo, hi = (np.minimum(lo, hi), np.maximum(lo, hi))
        self._check_finite(np.concatenate([lo, hi]), "interval", names, np.concatenate([lx, lx], axis=1))
        return point.reshape(shape), lo.reshape(shape), hi.reshape(shape)

    def predict_frame(self, **inputs: Any) -> pd.DataFrame:
        """Predictions as a table: one row per input point, a column per input, `prediction`, and `lower`
        and `upper` (at `ci_level`) when the law was bootstrapped. `predict` returns the bare arrays."""
        self._check_fitted()
        names = self.form_.inputs
        if set(inputs) != set(names):
            self.predict(**inputs)  # the UserError that names the inputs the form needs
        values = np.broadcast_arrays(*[np.asarray(inputs[k], dtype=float) for k in names])
        arrays = dict(zip(names, values, strict=True))
        frame = pd.DataFrame({k: v.ravel() for k, v in arrays.items()})
        if self.bootstrap_theta_ is None:
            return frame.assign(prediction=np.ravel(self.predict(**arrays)))
        point, lower, upper = self.predict(return_ci=True, **arrays)
        return frame.assign(prediction=point.ravel(), lower=lower.ravel(), upper=upper.ravel())

    def _check_inputs(self, names: tuple[str, ...], arrays: list[np.ndarray]) -> None:
        """Inputs must be finite, > 0 and within MAX_EXTRAPOLATION_DECADES of the fitted range."""
        for name, arr in zip(names, arrays, strict=True):
            bad = ~np.isfinite(arr) | (arr <= 0)
            if bad.any():
                raise UserError(f"{name} must be finite and > 0, got {arr[bad].flat[0]:g}")
            lo, hi = self.domain_[name]
            beyond = np.maximum(np.log10(arr) - np.log10(hi), np.log10(lo) - np.log10(arr))
            if np.any(beyond > MAX_EXTRAPOLATION_DECADES):
                value = arr.flat[int(np.argmax(beyond))]
                raise UserError(
                    f"{name} = {value:g} lies {np.max(beyond):.0f} decades outside the fitted range of {name} "
                    f"({lo:g} .. {hi:g}); the law is not evaluated beyond {MAX_EXTRAPOLATION_DECADES:g} decades"
                )

    def _check_finite(self, values: np.ndarray, what: str, names: tuple[str, ...], lx: np.ndarray) -> None:
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            at = ", ".join(f"{name} = {np.exp(lx[j, bad[0]]):g}" for j, name in enumerate(names))
            raise UserError(f"the {what} at {at} is not a finite number: the law overflows there")

    def two_variable(self, epochs: float = 1.0) -> ScalingLaw:
        """This law as L(N, D): itself for a two-variable form; a steps-aware form with each of the D unique
        samples seen `epochs` times (S = epochs x D), with the same fit's intervals and warnings.

        At one epoch the data-constrained form is chinchilla with its first five parameters, so its reduction is
        that chinchilla law (its closed forms, e.g. N_opt, apply). Any other steps-aware form, or another
        number of epochs, is the same form read at S = epochs x D (`fit.forms.epochs.at_epochs`).
        """
        self._check_fitted()
        form = self.form_
        if STEPS_INPUT not in form.inputs:
            return self
        exact = form.name == "data_constrained" and epochs == 1.0
        base = get_form("chinchilla") if exact else at_epochs(form, epochs)
        keep = base.n_params
        law = ScalingLaw(**{**self.get_params(), "form": base.name if base.name in FORMS else form.name})
        law.starts = None
        law.__dict__.update({k: v for k, v in self.__dict__.items() if k.endswith("_")})
        law.form_ = base
        law.theta_ = self.theta_[:keep]
        law.params_ = {k: v for k, v in self.params_.items() if k in base.param_names}
        law.basins_ = self.basins_[:, :keep] if getattr(self, "basins_", None) is not None else None
        law.hessian_ = self.hessian_[:keep, :keep] if getattr(self, "hessian_", None) is not None else None
        law.domain_ = {k: self.domain_[k] for k in base.inputs}
        law.best_point_ = {k: v for k, v in self.best_point_.items() if k != STEPS_INPUT}
        if self.bootstrap_theta_ is not None:
            law.bootstrap_theta_ = self.bootstrap_theta_[:, :keep]
        if self.profile_ci_ is not None:
            law.profile_ci_ = {k: v for k, v in self.profile_ci_.items() if k in base.param_names}
        law.not_identified_ = [k for k in self.not_identified_ if k in base.param_names]
        law.at_bounds_ = [k for k in getattr(self, "at_bounds_", []) if k in base.param_names]
        seen = "each of D samples seen once" if epochs == 1.0 else f"each of D samples seen {epochs:g} times"
        law.warnings_ = list(self.warnings_) + [f"L(N, D) is the {form.name} law at {epochs:g} epoch(s) ({seen})"]
        law.reduced_from_ = form.name
        law.epochs_ = float(epochs)
        return law

    def to_metric(self, error: np.ndarray) -> np.ndarray:
        """The metric in its own units from the fitted error (`ceiling - error` when higher is better)."""
        return self.ceiling - error if self.higher_is_better else error

    # ---- persistence -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        if self.form_.name not in FORMS:
            raise UserError(
                f"form '{self.form_.name}' is a reading of the {self.reduced_from_} law: save that law, and reduce "
                "it when loaded (two_variable)"
            )
        out: dict[str, Any] = {
            "scalinglab_version": __version__,
            "form": self.form_.name,
            "formula": self.form_.formula,
            "inputs": list(self.form_.inputs),
            "params": self.params_,
            "ci": {k: list(v) for k, v in self.ci_.items()} if self.ci_ else None,
            "intervals": self.intervals,
            "not_identified": self.not_identified_,
            "selection": None if self.selection_ is None else self.selection_.to_dict(),
            "se": self.se_,
            "ci_level": self.ci_level,
            "objective": self.objective_,
            "n_points": self.n_points_,
            "n_starts": self.n_starts_,
            "n_starts_reached_best": self.n_reached_,
            "loss": self.loss_function().to_dict(),
            "higher_is_better": self.higher_is_better,
            "ceiling": self.ceiling,
            "domain": {k: list(v) for k, v in self.domain_.items()},
            "best_point": self.best_point_,
            "warnings": self.warnings_,
            "bootstrap": {"n": self.bootstrap, "seed": self.seed},
            "theta": self.theta_.tolist(),
            "bootstrap_theta": None if self.bootstrap_theta_ is None else self.bootstrap_theta_.tolist(),
        }
        return out

    def save(self, path: str | Path) -> None:
        """Write the fit as JSON, atomically (a crash never leaves a half-written file)."""
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "fit") -> ScalingLaw:
        """A fitted law from `to_dict`'s output; a missing, malformed or non-finite key is a UserError naming it."""
        try:
            loss = data["loss"]
            law = cls(
                form=data["form"],
                loss=loss["kind"],
                delta=loss["delta"],
                over_weight=loss["over_weight"],
                higher_is_better=bool(data["higher_is_better"]),
                ceiling=float(data["ceiling"]),
                bootstrap=int(data["bootstrap"]["n"]),
                seed=int(data["bootstrap"]["seed"]),
                ci_level=float(data["ci_level"]),
            )
            law.theta_ = np.asarray(data["theta"], dtype=float)
            law.params_ = {k: float(v) for k, v in data["params"].items()}
            law.objective_ = float(data["objective"])
            law.n_points_ = int(data["n_points"])
            law.n_starts_ = int(data["n_starts"])
            law.n_reached_ = int(data["n_starts_reached_best"])
            law.domain_ = {k: (float(v[0]), float(v[1])) for k, v in data["domain"].items()}
            law.warnings_ = list(data["warnings"])
            law.best_point_ = {k: float(v) for k, v in data["best_point"].items()}
            law.intervals = data.get("intervals", "bootstrap")
            law.selection_ = None
            if data.get("selection") is not None:
                law.selection_ = Selection.from_dict(data["selection"])
            law.not_identified_ = [str(name) for name in data.get("not_identified", [])]
            law.profile_ci_ = None
            if law.intervals == "profile" and data.get("ci") is not None:
                law.profile_ci_ = {k: tuple(None if x is None else float(x) for x in v) for k, v in data["ci"].items()}
            boot = data.get("bootstrap_theta")
            law.bootstrap_theta_ = None if boot is None else np.asarray(boot, dtype=float)
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
            raise UserError(f"{source}: not a scalinglab fit (bad or missing key: {exc})") from None
        try:
            law.form_ = get_form(str(law.form))
            law.loss_function()
        except UserError as exc:
            raise UserError(f"{source}: {exc}") from None
        law._check_loaded(source)
        return law

    def _check_loaded(self, source: str) -> None:
        """Every number a loaded fit predicts from must be usable: finite, in range, of the form's shape."""
        form = self.form_
        if self.theta_.shape != (form.n_params,):
            raise UserError(
                f"{source}: key 'theta' has {self.theta_.size} values; form '{form.name}' has {form.n_params}"
            )
        if set(self.params_) != set(form.param_names):
            raise UserError(
                f"{source}: key 'params' names {', '.join(self.params_)}; form '{form.name}' has "
                f"{', '.join(form.param_names)}"
            )
        if set(self.domain_) != set(form.inputs):
            raise UserError(
                f"{source}: key 'domain' names {', '.join(self.domain_)}; form '{form.name}' is in "
                f"{', '.join(form.inputs)}"
            )
        numbers = {f"params.{k}": v for k, v in self.params_.items()}
        numbers |= {f"theta[{i}]": v for i, v in enumerate(self.theta_)}
        numbers |= {f"domain.{k}[{i}]": v for k, pair in self.domain_.items() for i, v in enumerate(pair)}
        numbers |= {f"best_point.{k}": v for k, v in self.best_point_.items()}
        numbers |= {"ceiling": self.ceiling, "objective": self.objective_}
        for key, value in numbers.items():
            if not np.isfinite(value):
                raise UserError(f"{source}: key '{key}' is {value}, not a finite number")
        for name, (lo, hi) in self.domain_.items():
            if not 0 < lo <= hi:
                raise UserError(f"{source}: key 'domain.{name}' must be two numbers with 0 < low <= high")
        if self.bootstrap_theta_ is not None and (
            self.bootstrap_theta_.ndim != 2 or self.bootstrap_theta_.shape[1] != form.n_params
        ):
            raise UserError(f"{source}: key 'bootstrap_theta' must be rows of {form.n_params} values")
        try:
            self.check_options()
        except UserError as exc:
            raise UserError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> ScalingLaw:
        data = read_json(path)
        if not isinstance(data, dict):
            raise UserError(f"{path}: not a scalinglab fit (expected a JSON object)")
        return cls.from_dict(data, source=str(path))


def fit_law(
    form: str,
    data: pd.DataFrame | FitData,
    columns: dict[str, str] | None = None,
    *,
    candidates: tuple[str, ...] | list[str] | None = None,
    law_options: dict[str, Any] | None = None,
    select_by: str | None = None,
    **selection: Any,
) -> ScalingLaw:
    """The law of `form` fitted to `data`; for "auto", the best of a `FormSearch` (its `selection_` says why).

    `select_by` is the search's scoring ("extrapolation", the default, or "loo"); it may also come in
    `law_options`, as it does from a `TwoStepLaw`'s settings.
    """
    options = dict(law_options or {})
    candidates = candidates if candidates is not None else options.pop("candidates", None)
    from_settings = options.pop("select_by", None)
    select_by = select_by or from_settings or "extrapolation"
    estimator = ScalingLaw(form=form, **options)
    if form == AUTO:
        search = FormSearch(estimator, candidates, scoring=select_by)
        return search.fit(data, columns, **selection).best_estimator_
    if candidates is not None:
        raise UserError("candidates choose among forms: they need form 'auto'")
    return estimator.fit(data, columns, **selection)
