"""`ScalingLaw`: fit a functional form to observations, predict with intervals, save and load.

A scikit-learn-shaped estimator: configured in __init__, learns in fit, learned state in `*_` attributes.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalinglab import __version__
from scalinglab.errors import UserError
from scalinglab.fit.bootstrap import bootstrap_fits
from scalinglab.fit.diagnostics import bound_warnings, check_bounds, conditioning_warnings, extrapolation_warnings
from scalinglab.fit.expressions import evaluate
from scalinglab.fit.forms import get_form
from scalinglab.fit.loss import Loss
from scalinglab.fit.multistart import fit_multistart, hessian
from scalinglab.observations import FitData, select_fit_data


class ScalingLaw:
    """A scaling law L(inputs) of a given form, fitted by multi-start robust regression on log(metric).

    Parameters
    ----------
    form: name of a registered form ("chinchilla", "kaplan", "power", "power_offset", "bnsl1", "bnsl2").
    loss: "huber" (default, on log residuals, summed), "mse" or "asymmetric" (over-predictions cost more).
    delta: the Huber threshold. over_weight: the asymmetric loss's weight on over-predictions.
    higher_is_better: fit the error `ceiling - metric` (mAP, accuracy); predictions come back as the metric.
    bootstrap: number of bootstrap refits for intervals (0 for none). seed: makes them deterministic.
    ci_level: coverage of the percentile intervals. starts: an (S, P) array of internal starts to
    replace the form's default grid. screen_iter: iterations every start gets before the best are polished.
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

    # ---- fitting -------------------------------------------------------------------------------
    def fit(self, data: pd.DataFrame | FitData, columns: dict[str, str] | None = None, **selection: Any) -> ScalingLaw:
        """Fit to an observations table (or any DataFrame with a `columns` role mapping), or to FitData.

        `selection` passes through to `select_fit_data` (metric, split, final_only, d_from_flops, ...).
        """
        form = get_form(self.form)
        loss = self._loss()
        if not 0 < self.ci_level < 1:
            raise UserError(f"ci_level must be between 0 and 1, got {self.ci_level}")
        if isinstance(data, FitData):
            fit_data = data
        else:
            fit_data = select_fit_data(
                data,
                form.inputs,
                columns,
                higher_is_better=self.higher_is_better,
                ceiling=self.ceiling,
                n_params=form.n_params,
                **selection,
            )
        lx, ly = np.log(fit_data.inputs), np.log(fit_data.y)
        starts = form.start_grid(lx, ly) if self.starts is None else np.atleast_2d(np.asarray(self.starts, float))
        result = fit_multistart(form, lx, ly, loss, starts, screen_iter=self.screen_iter)
        bounds = check_bounds(form, result.theta, result.objective, lx, ly, loss)

        self.form_ = form
        self.theta_ = bounds.theta
        self.params_ = {k: float(v) for k, v in form.to_public(bounds.theta).items()}
        self.objective_ = bounds.objective
        self.n_points_ = fit_data.n_points
        self.n_starts_ = result.n_starts
        self.n_reached_ = result.n_reached
        best = int(np.argmin(fit_data.y))
        self.best_point_ = {name: float(v[best]) for name, v in zip(form.inputs, fit_data.inputs, strict=True)}
        self.best_point_["value"] = float(self._to_metric(fit_data.y[best]))
        self.domain_ = {
            name: (float(v.min()), float(v.max())) for name, v in zip(form.inputs, fit_data.inputs, strict=True)
        }
        self.hessian_ = hessian(form, self.theta_, lx, ly, loss)
        self.at_bounds_ = [form.params[i].public for i, _ in bounds.active]
        self.warnings_ = (
            list(fit_data.warnings) + bound_warnings(form, bounds.active) + conditioning_warnings(form, self.hessian_)
        )
        if not result.converged:
            self.warnings_.append(f"the optimiser stopped before converging (gradient norm {result.gradient_norm:.2g})")
        self.bootstrap_theta_ = None
        if self.bootstrap:
            self.bootstrap_theta_ = bootstrap_fits(
                form, lx, ly, loss, self.theta_, self.bootstrap, self.seed, fit_data.groups
            )
        return self

    def _loss(self) -> Loss:
        try:
            return Loss(self.loss, self.delta, self.over_weight)
        except ValueError as exc:
            raise UserError(str(exc)) from None

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
    def ci_(self) -> dict[str, tuple[float, float]] | None:
        """Percentile intervals at `ci_level` for every parameter (None without bootstrap)."""
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
        for name, arr in zip(names, arrays, strict=True):
            if np.any(~np.isfinite(arr)) or np.any(arr <= 0):
                raise UserError(f"{name} must be finite and > 0")
        for message in extrapolation_warnings(names, dict(zip(names, arrays, strict=True)), self.domain_):
            warnings.warn(message, stacklevel=2)
        shape = arrays[0].shape
        lx = np.log(np.stack([a.ravel() for a in arrays]))
        point = self._to_metric(np.exp(self.form_.log_predict(self.theta_[None, :], lx)[0])).reshape(shape)
        if not return_ci:
            return point
        if self.bootstrap_theta_ is None:
            raise UserError("no intervals: the law was fitted without --bootstrap")
        with np.errstate(over="ignore"):
            samples = self._to_metric(np.exp(self.form_.log_predict(self.bootstrap_theta_, lx)))
        tail = 50 * (1 - self.ci_level)
        lo, hi = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
        lo, hi = (np.minimum(lo, hi), np.maximum(lo, hi))
        return point, lo.reshape(shape), hi.reshape(shape)

    def _to_metric(self, error: np.ndarray) -> np.ndarray:
        return self.ceiling - error if self.higher_is_better else error

    # ---- persistence -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        out: dict[str, Any] = {
            "scalinglab_version": __version__,
            "form": self.form_.name,
            "formula": self.form_.formula,
            "inputs": list(self.form_.inputs),
            "params": self.params_,
            "ci": {k: list(v) for k, v in self.ci_.items()} if self.ci_ else None,
            "se": self.se_,
            "ci_level": self.ci_level,
            "objective": self.objective_,
            "n_points": self.n_points_,
            "n_starts": self.n_starts_,
            "n_starts_reached_best": self.n_reached_,
            "loss": self._loss().to_dict(),
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
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2))
        tmp.replace(path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "fit") -> ScalingLaw:
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
            law.form_ = get_form(data["form"])
            law.theta_ = np.asarray(data["theta"], dtype=float)
            law.params_ = {k: float(v) for k, v in data["params"].items()}
            law.objective_ = float(data["objective"])
            law.n_points_ = int(data["n_points"])
            law.n_starts_ = int(data["n_starts"])
            law.n_reached_ = int(data["n_starts_reached_best"])
            law.domain_ = {k: (float(v[0]), float(v[1])) for k, v in data["domain"].items()}
            law.warnings_ = list(data["warnings"])
            law.best_point_ = {k: float(v) for k, v in data["best_point"].items()}
            boot = data.get("bootstrap_theta")
            law.bootstrap_theta_ = None if boot is None else np.asarray(boot, dtype=float)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UserError(f"{source}: not a scalinglab fit (bad or missing key: {exc})") from None
        if law.theta_.shape != (law.form_.n_params,):
            raise UserError(
                f"{source}: key 'theta' has {law.theta_.size} values; form '{law.form_.name}' has {law.form_.n_params}"
            )
        return law

    @classmethod
    def load(cls, path: str | Path) -> ScalingLaw:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such file")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: not a scalinglab fit (expected a JSON object)")
        return cls.from_dict(data, source=str(path))
