"""Backtesting: would a law fitted on the small scales have predicted the held-out larger ones?

Fits each form on the points that are kept, predicts the held-out ones, and scores the forms by
RMSLE, relative error, coverage of bootstrap prediction intervals and their agreement in order.
"""

from __future__ import annotations

import warnings as pywarnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from scalinglab.errors import UserError
from scalinglab.fit.forms import get_form
from scalinglab.fit.holdout import holdout_mask
from scalinglab.fit.law import ScalingLaw
from scalinglab.fit.search import AUTO, FormSearch
from scalinglab.observations import FitData, select_fit_data

if TYPE_CHECKING:
    from scalinglab.fit.two_step import TwoStepData


def _prediction_interval(
    law: ScalingLaw, train: FitData, inputs: np.ndarray, ci_level: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap prediction interval: refit predictions times resampled training residuals (log scale)."""
    form = law.form_
    lx_train, lx_test = np.log(train.inputs), np.log(inputs)
    residuals = np.log(train.y) - form.log_predict(law.theta_[None, :], lx_train)[0]
    with np.errstate(all="ignore"):
        log_pred = form.log_predict(law.bootstrap_theta_, lx_test)  # (K, m)
    rng = np.random.default_rng(seed)
    noisy = log_pred + rng.choice(residuals, size=log_pred.shape)
    tail = 50 * (1 - ci_level)
    lo, hi = np.nanpercentile(noisy, [tail, 100 - tail], axis=0)
    return np.exp(lo), np.exp(hi)


# Alabdulmohsin et al. (2022)'s recommended estimator, with their objective (least squares on log y).
PREFERRED_FORM, PREFERRED_LOSS = "m4", "mse"
DEFAULT_LOSS = ScalingLaw().loss


@dataclass(frozen=True)
class Choice:
    form: str
    loss: str
    reason: str


@dataclass
class Backtest:
    scores: pd.DataFrame  # one row per form
    predictions: pd.DataFrame  # one row per held-out point: inputs, observed, <form> columns
    agreement: pd.DataFrame  # Spearman rank correlation of the forms' predicted orderings
    recommendation: str
    warnings: list[str] = field(default_factory=list)
    auto: Choice | None = None  # what the "auto" row fitted, chosen from the kept points alone
    # one row per method and held-out point: method, row (1-based, in the table), run, observed, predicted,
    # lower, upper (the prediction interval; NaN without bootstrap). Units: what the method fitted.
    points: pd.DataFrame | None = None


def backtest(
    data: FitData,
    mask: np.ndarray,
    forms: list[str],
    bootstrap: int = 100,
    seed: int = 0,
    ci_level: float = 0.9,
    **law_options: Any,
) -> Backtest:
    """Fit every form on the kept points, predict the held-out ones, score and compare the forms."""
    train, test = data.subset(~mask), data.subset(mask)
    rows, preds, intervals, warnings = [], {}, {}, []
    points: list[pd.DataFrame] = []
    choice = None
    fitted: dict[tuple[str, str], ScalingLaw] = {}  # auto's pick is often a row already fitted
    for name in forms:
        form_name, options, picked = _form_for(name, forms, train, law_options)
        choice = picked or choice
        form = get_form(form_name)
        if form.inputs != data.input_names:
            raise UserError(
                f"form '{name}' is a law in {', '.join(form.inputs)}, the data give {', '.join(data.input_names)}"
            )
        if train.n_points < form.n_params:
            warnings.append(f"{name}: {train.n_points} points kept, fewer than its {form.n_params} parameters; skipped")
            continue
        key = (form_name, options.get("loss", DEFAULT_LOSS))
        if key not in fitted:
            # Scored on held-out points with bootstrap prediction intervals: no parameter intervals needed.
            options = {"intervals": None, **options}
            fitted[key] = ScalingLaw(form=form_name, bootstrap=bootstrap, seed=seed, **options).fit(train)
        row, preds[name], interval = _score(name, fitted[key], train, test, ci_level, seed)
        rows.append(row)
        if interval is not None:
            intervals[name] = interval
        points.append(point_rows(name, test, preds[name], interval))
    if not rows:
        raise UserError("no form could be fitted on the kept points")
    scores = pd.DataFrame(rows).sort_values("rmsle", kind="stable").reset_index(drop=True)
    scores.insert(0, "rank", np.arange(1, len(scores) + 1))
    names = list(scores["form"])
    predictions = pd.DataFrame({name: test.inputs[i] for i, name in enumerate(data.input_names)})
    predictions["observed"] = test.y
    for name in names:
        predictions[name] = preds[name]
    warnings += _disagreements(scores, intervals, test.n_points, ci_level)
    return Backtest(
        scores,
        predictions,
        _agreement(names, preds, test.n_points),
        _recommend(scores, test.n_points),
        warnings,
        choice,
        pd.concat(points, ignore_index=True),
    )


def point_rows(
    method: str, test: FitData, predicted: np.ndarray, interval: tuple[np.ndarray, np.ndarray] | None
) -> pd.DataFrame:
    """The per-point prediction rows of one method: row (1-based table row), run, observed, predicted, bounds."""
    lower, upper = interval if interval is not None else (np.full(test.n_points, np.nan),) * 2
    return pd.DataFrame(
        {
            "method": method,
            "row": (test.rows + 1) if test.rows is not None else np.full(test.n_points, -1),
            "run": test.groups if test.groups is not None else np.full(test.n_points, None),
            "observed": test.y,
            "predicted": predicted,
            "lower": lower,
            "upper": upper,
        }
    )


def _form_for(
    name: str, forms: list[str], train: FitData, law_options: dict[str, Any]
) -> tuple[str, dict[str, Any], Choice | None]:
    """The form and law options a row fits: its own, or for "auto" the choice made from the kept points."""
    if name != AUTO:
        return name, dict(law_options), None
    choice = choose_form(train, [f for f in forms if f != AUTO], **law_options)
    return choice.form, {**law_options, "loss": choice.loss}, choice


def _score(
    name: str, law: ScalingLaw, train: FitData, test: FitData, ci_level: float, seed: int
) -> tuple[dict[str, Any], np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """One form's row of scores on the held-out points, its predictions there and its prediction interval."""
    pred = np.exp(law.form_.log_predict(law.theta_[None, :], np.log(test.inputs))[0])
    log_err = np.log(pred) - np.log(test.y)
    row = {
        "form": name,
        "rmsle": float(np.sqrt(np.mean(log_err**2))),
        "mean_rel_error": float(np.mean(np.abs(pred / test.y - 1))),
        "coverage": np.nan,
        "train_objective": law.objective_,
    }
    interval = None
    if law.bootstrap_theta_ is not None:
        interval = _prediction_interval(law, train, test.inputs, ci_level, seed)
        row["coverage"] = float(np.mean((test.y >= interval[0]) & (test.y <= interval[1])))
    return row, pred, interval


def _agreement(names: list[str], preds: dict[str, np.ndarray], n_test: int) -> pd.DataFrame:
    """Spearman rank correlation of every two forms' predictions (NaN with two held-out points or fewer)."""
    agreement = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            rho = spearmanr(preds[a], preds[b]).statistic if n_test > 2 else np.nan
            agreement.loc[a, b] = agreement.loc[b, a] = rho
    return agreement


def _recommend(scores: pd.DataFrame, n_test: int) -> str:
    best = scores.iloc[0]
    reason = f"lowest RMSLE on the {n_test} held-out points ({best['rmsle']:.4g}"
    if len(scores) > 1:
        reason += f" against {scores.iloc[1]['rmsle']:.4g} for {scores.iloc[1]['form']}"
    return f"{best['form']}: {reason})"


def _disagreements(
    scores: pd.DataFrame, intervals: dict[str, tuple[np.ndarray, np.ndarray]], n_test: int, ci_level: float
) -> list[str]:
    """Warnings when the two best forms' intervals are apart, or the best one's intervals miss the truth."""
    out = []
    names = list(scores["form"])
    if len(names) > 1 and names[0] in intervals and names[1] in intervals:
        (lo_a, hi_a), (lo_b, hi_b) = intervals[names[0]], intervals[names[1]]
        apart = (hi_a < lo_b) | (hi_b < lo_a)
        if apart.any():
            out.append(
                f"the two best forms disagree beyond their {ci_level:.0%} intervals at {int(apart.sum())} of "
                f"{n_test} held-out points: the data do not support extrapolating that far"
            )
    best = scores.iloc[0]
    if not np.isnan(best["coverage"]) and best["coverage"] < 0.5:
        out.append(
            f"{best['form']}'s {ci_level:.0%} prediction intervals cover only {best['coverage']:.0%} "
            "of the held-out points"
        )
    return out


def choose_form(data: FitData, forms: list[str], **law_options: Any) -> Choice:
    """The automatic choice of form (and fitting loss) from the given points alone.

    For a learning curve in one variable, M4 of Alabdulmohsin et al. (2022) fitted by least squares on
    log y, their recommended estimator and objective, whenever it is offered and the points leave at
    least two degrees of freedom beyond its five parameters. Otherwise the `FormSearch` choice: the form that
    best predicts the runs beyond several compute cuts within the data (leave-one-run-out when the data are
    too few to cut).
    """
    loss = law_options.pop("loss", DEFAULT_LOSS)
    if PREFERRED_FORM in forms and data.n_points >= get_form(PREFERRED_FORM).n_params + 2:
        return Choice(PREFERRED_FORM, PREFERRED_LOSS, "the saturating law M4, least squares on log y (the default)")
    usable = [f for f in forms if data.n_points > get_form(f).n_params + 1]
    if not usable:
        return Choice(forms[0], loss, f"too few points ({data.n_points}) to compare forms; the first offered")
    estimator = ScalingLaw(form=usable[0], loss=loss, **law_options)
    search = FormSearch(estimator, usable, refit=False).fit(data)
    return Choice(search.best_form_, loss, search.selection_.reason)


# ---- direct vs two-step ----------------------------------------------------------------------------


@dataclass
class ViaBacktest:
    """Direct laws on the metric against two-step laws through an intermediate, on the same held-out runs."""

    scores: pd.DataFrame  # one row per method: method, mae, rmse, mean_rel_error, bias, coverage, n_test
    points: pd.DataFrame  # one row per method and held-out point (metric units), as Backtest.points
    recommendation: str
    held_out_runs: list[str]
    links: dict[str, str]  # two-step method -> the link it chose, with the reason
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _ViaQuery:
    """What both methods select from the table: the inputs, the metric's columns and picks, the intermediate."""

    table: pd.DataFrame
    inputs: tuple[str, ...]
    columns: dict[str, str | None] | None
    picks: dict[str, Any]  # source, metric, split, final_only and the other selection options
    via: str
    via_split: str | None


@dataclass(frozen=True)
class _ViaSettings:
    """The fit settings both methods share."""

    higher_is_better: bool
    ceiling: float
    bootstrap: int
    seed: int
    ci_level: float

    def to_metric(self, v: np.ndarray) -> np.ndarray:
        """Fitted values (lower is better) back in the metric's own units."""
        return self.ceiling - v if self.higher_is_better else v


@dataclass(frozen=True)
class _ViaSplit:
    """The held-out points of the metric and both methods' training data without their runs."""

    train: FitData  # the metric's points of the runs kept
    test: FitData  # the held-out points of the metric
    pairs_train: TwoStepData  # the (intermediate, metric) pairs of the runs kept
    held: np.ndarray  # the labels of the runs with a held-out point
    observed: np.ndarray  # the held-out points in the metric's own units


@dataclass(frozen=True)
class _ViaMethod:
    """One method's backtest: its per-point rows, its row of scores and (two-step) the link it chose."""

    points: pd.DataFrame
    score: dict[str, Any]
    link: str | None = None


def backtest_via(
    table: pd.DataFrame,
    inputs: tuple[str, ...],
    via: str,
    holdout: str,
    forms: list[str],
    columns: dict[str, str | None] | None = None,
    *,
    link: str = "auto",
    higher_is_better: bool = False,
    ceiling: float = 1.0,
    bootstrap: int = 100,
    seed: int = 0,
    ci_level: float = 0.9,
    source: str = "data",
    metric: str | None = None,
    split: str | None = None,
    via_split: str | None = None,
    final_only: bool = True,
    **selection: Any,
) -> ViaBacktest:
    """Predict the held-out points of the metric directly (a law per form on the metric) and in two steps.

    The held-out points are chosen on the metric's points as in `backtest` (`holdout_mask`); every run with a
    held-out point is removed whole from both methods' training data (its earlier checkpoints too), so the
    two-step link never sees the held-out runs. Scores and intervals are in the metric's own units;
    the intervals are `ci_level` prediction intervals (bootstrap refits plus a resampled training residual).
    """
    picks = {"source": source, "metric": metric, "split": split, "final_only": final_only, **selection}
    query = _ViaQuery(table, inputs, columns, picks, via, via_split)
    settings = _ViaSettings(higher_is_better, ceiling, bootstrap, seed, ci_level)
    held_out = _via_split(query, holdout, settings)
    methods = [_direct_method(form, held_out, settings) for form in forms]
    methods += [_two_step_method(form, held_out, settings, link, inputs) for form in forms]
    scores = pd.DataFrame([m.score for m in methods]).sort_values("mae", kind="stable").reset_index(drop=True)
    scores.insert(0, "rank", np.arange(1, len(scores) + 1))
    return ViaBacktest(
        scores,
        pd.concat([m.points for m in methods], ignore_index=True),
        _via_recommendation(scores, held_out.test.n_points),
        [str(r) for r in held_out.held],
        {m.score["method"]: m.link for m in methods if m.link is not None},
        _via_coverage_notes(scores, ci_level),
    )


def _via_split(query: _ViaQuery, holdout: str, settings: _ViaSettings) -> _ViaSplit:
    """Hold out the metric's points `holdout` picks and drop their runs whole from both training sets."""
    from scalinglab.fit.two_step import run_labels, two_step_data

    direct = select_fit_data(
        query.table,
        query.inputs,
        query.columns,
        higher_is_better=settings.higher_is_better,
        ceiling=settings.ceiling,
        n_params=1,
        **query.picks,
    )
    mask = holdout_mask(holdout, direct, query.table)
    runs = run_labels(direct)
    held = np.unique(runs[mask])
    train, test = direct.subset(~np.isin(runs, held)), direct.subset(mask)
    pairs = two_step_data(query.table, query.inputs, query.via, query.columns, via_split=query.via_split, **query.picks)
    kept = np.setdiff1d(np.unique(np.concatenate([pairs.groups, run_labels(pairs.step1)])), held)
    return _ViaSplit(train, test, pairs.subset(kept), held, settings.to_metric(test.y))


def _direct_method(form: str, held_out: _ViaSplit, settings: _ViaSettings) -> _ViaMethod:
    """A law of `form` fitted on the metric's kept points, scored on the held-out ones (metric units)."""
    name, train, test = f"direct:{form}", held_out.train, held_out.test
    law = ScalingLaw(form=form, bootstrap=settings.bootstrap, seed=settings.seed, intervals=None).fit(train)
    pred = settings.to_metric(np.exp(law.form_.log_predict(law.theta_[None, :], np.log(test.inputs))[0]))
    bounds = None
    if settings.bootstrap:
        interval = _prediction_interval(law, train, test.inputs, settings.ci_level, settings.seed)
        lo, hi = (settings.to_metric(b) for b in interval)
        bounds = (np.minimum(lo, hi), np.maximum(lo, hi))
    return _via_method(name, held_out, pred, bounds)


def _two_step_method(
    form: str, held_out: _ViaSplit, settings: _ViaSettings, link: str, inputs: tuple[str, ...]
) -> _ViaMethod:
    """A two-step law of `form` fitted on the kept runs' pairs, scored on the held-out points (metric units)."""
    from scalinglab.fit.two_step import TwoStepLaw

    name, test = f"two_step:{form}", held_out.test
    two = TwoStepLaw(
        form=form,
        link=link,
        higher_is_better=settings.higher_is_better,
        ceiling=settings.ceiling,
        bootstrap=settings.bootstrap,
        seed=settings.seed,
        ci_level=settings.ci_level,
        intervals=None,
    ).fit(held_out.pairs_train)
    given = dict(zip(inputs, test.inputs, strict=True))
    with _quiet():
        pred = two.predict(**given)
        bounds = two.predict(return_ci=True, observation=True, **given)[1:] if settings.bootstrap else None
    chosen = two.link_.name + ("" if two.link_selection_ is None else f": {two.link_selection_.reason}")
    return _via_method(name, held_out, pred, bounds, chosen)


def _via_method(
    name: str,
    held_out: _ViaSplit,
    pred: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray] | None,
    link: str | None = None,
) -> _ViaMethod:
    """A method's per-point rows and scores from its predictions (metric units) at the held-out points."""
    observed = held_out.observed
    points = point_rows(name, held_out.test, pred, bounds).assign(observed=observed)
    return _ViaMethod(points, _via_score(name, observed, pred, bounds), link)


def _via_recommendation(scores: pd.DataFrame, n_test: int) -> str:
    """The method with the lowest mean absolute error, or a tie when the best two are within 0.1%."""
    best = scores.iloc[0]
    if len(scores) > 1 and np.isclose(scores.iloc[1]["mae"], best["mae"], rtol=1e-3, atol=0.0):
        return (  # within 0.1%: the held-out points cannot tell the two apart
            f"a tie: {best['method']} and {scores.iloc[1]['method']} have the same mean absolute error on the "
            f"{n_test} held-out points ({best['mae']:.4g})"
        )
    against = f" against {scores.iloc[1]['mae']:.4g} for {scores.iloc[1]['method']}" if len(scores) > 1 else ""
    return f"{best['method']}: lowest mean absolute error on the {n_test} held-out points ({best['mae']:.4g}{against})"


def _via_coverage_notes(scores: pd.DataFrame, ci_level: float) -> list[str]:
    """A note when the best method's prediction intervals cover fewer than half the held-out points."""
    best = scores.iloc[0]
    if not np.isnan(best["coverage"]) and best["coverage"] < 0.5:
        return [
            f"{best['method']}'s {ci_level:.0%} prediction intervals cover only {best['coverage']:.0%} "
            "of the held-out points"
        ]
    return []


def _via_score(
    method: str, observed: np.ndarray, pred: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None
) -> dict[str, Any]:
    err = pred - observed
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(err) / np.abs(observed)
    return {
        "method": method,
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mean_rel_error": float(np.mean(rel[np.isfinite(rel)])) if np.isfinite(rel).any() else np.nan,
        "bias": float(np.mean(err)),
        "coverage": np.nan if bounds is None else float(np.mean((observed >= bounds[0]) & (observed <= bounds[1]))),
        "n_test": int(observed.size),
    }


@contextmanager
def _quiet() -> Iterator[None]:
    """The laws' extrapolation warnings stay quiet: a backtest extrapolates on purpose."""
    with pywarnings.catch_warnings():
        pywarnings.simplefilter("ignore")
        yield
