"""`FormSearch`: choose a law's form among candidates by held-out error, in the manner of scikit-learn's
`GridSearchCV`: an estimator to clone, candidates to try, `fit`, then `best_estimator_` and `cv_results_`.

The one form selector: `fit --form auto`, the report, two-step's step 1 and the backtest's "auto" row all ask
it. Scoring "extrapolation" (the default) fits on the runs below several compute cuts and scores the runs above
(`fit.extrapolation`), then chooses by the one-SE rule; leave-one-out is its secondary score, shown beside it
and used alone when the table is too small to cut. Scoring "loo" holds out one (N, D) cell, run or point at a
time and chooses by the one-SE rule (`fit.scoring`); scoring "largest" fits on the smaller scales and scores
the largest share (`validation`).
It imports no estimator: it clones the one it is given, so `fit.law` can use it without a cycle.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from scalinglab.errors import UserError
from scalinglab.fit.extrapolation import (
    TOO_FEW,
    Fold,
    forward_folds,
    paired_choice,
    score_extrapolation,
    usable_cuts,
)
from scalinglab.fit.forms import get_form
from scalinglab.fit.holdout import holdout_mask
from scalinglab.fit.scoring import (
    DEFAULT_CANDIDATES,
    Selection,
    free_parameters,
    held_out_groups,
    one_se_choice,
    score_candidate,
)
from scalinglab.observations import FitData

AUTO = "auto"  # the form name that asks for a search
SCORINGS = ("extrapolation", "loo", "largest")
STEPS_INPUT = "seen"  # samples processed so far: the input that makes a form steps-aware
STEPS_CANDIDATES = ("data_constrained",)


class FormSearch:
    """Fit every candidate form, score each on held-out points, keep the best, refitted with its intervals.

    Parameters
    ----------
    estimator: a `ScalingLaw` whose settings (loss, bootstrap, intervals, ...) every candidate shares; its
    form is replaced by each candidate's. candidates: form names (default: the two-variable forms of
    `fit.scoring`; add "data_constrained" to weigh every checkpoint). scoring: "loo" (leave one cell, run or
    point out; one-SE rule) or "largest" (fit on the smaller 1 - `validation` share of scales, RMSLE on the
    rest). refit: give the best candidate its intervals on all the data (`best_estimator_`).
    """

    def __init__(
        self,
        estimator: Any,
        candidates: tuple[str, ...] | list[str] | None = None,
        scoring: str = "extrapolation",
        validation: float = 0.25,
        refit: bool = True,
    ) -> None:
        self.estimator = estimator
        self.candidates = candidates
        self.scoring = scoring
        self.validation = validation
        self.refit = refit

    def fit(self, data: pd.DataFrame | FitData, columns: dict[str, str] | None = None, **selection: Any) -> FormSearch:
        """Search on a table (with a `columns` role mapping and `select_fit_data` options) or on FitData."""
        if self.scoring not in SCORINGS:
            raise UserError(f"scoring must be one of {', '.join(SCORINGS)}, not '{self.scoring}'")
        candidates = tuple(self.candidates or default_candidates(columns))
        for name in candidates:
            get_form(name)  # an unknown form is one line naming it
        template = self.estimator.clone(form=candidates[0])
        template.check_options()
        if self.scoring == "largest":
            return self._fit_largest(template, data, candidates, columns, selection)
        steps_aware = [name for name in candidates if STEPS_INPUT in get_form(name).inputs]
        fit_data = template.fit_data(data, *_common_inputs(candidates, steps_aware), columns, selection)
        checkpoints = None
        if steps_aware:
            if isinstance(data, FitData):
                raise UserError(f"form '{steps_aware[0]}' needs the observations table (every checkpoint), not FitData")
            free = max(get_form(name).n_params for name in steps_aware)
            every = {**selection, "final_only": False}
            checkpoints = template.fit_data(data, ("n", "d", STEPS_INPUT), free, columns, every)
        chosen, laws = select_candidates(template, fit_data, candidates, checkpoints)
        if self.scoring == "extrapolation":
            chosen = rank_by_extrapolation(template, chosen, fit_data, checkpoints)
        best = laws[chosen.choice]
        if self.refit:  # the point fit is the candidate's; the intervals come with the estimator's settings
            best.set_params(bootstrap=template.bootstrap, intervals=template.intervals)
            best.fit_intervals(checkpoints if chosen.choice in steps_aware else fit_data)
        return self._keep(chosen, best)

    def _fit_largest(
        self,
        template: Any,
        data: pd.DataFrame | FitData,
        candidates: tuple[str, ...],
        columns: dict[str, str] | None,
        selection: dict[str, Any],
    ) -> FormSearch:
        """Score each candidate by predicting the largest `validation` share of scales from the rest."""
        fit_data = template.fit_data(data, get_form(candidates[0]).inputs, 1, columns, selection)
        count = max(1, math.ceil(self.validation * fit_data.n_points))
        mask = holdout_mask(f"largest:{count}", fit_data)
        train, test = fit_data.subset(~mask), fit_data.subset(mask)
        rows = []
        for name in candidates:
            if train.n_points < get_form(name).n_params:
                continue
            law = template.clone(form=name, bootstrap=0, intervals=None).fit(train)
            log_error = law.form_.log_predict(law.theta_[None, :], np.log(test.inputs))[0] - np.log(test.y)
            rows.append({"form": name, "rmsle": float(np.sqrt(np.mean(log_error**2))), "objective": law.objective_})
        if not rows:
            names = ", ".join(candidates)
            raise UserError(f"{fit_data.n_points} points are too few to hold any out and fit any of: {names}")
        table = pd.DataFrame(rows).sort_values("rmsle", kind="stable").reset_index(drop=True)
        choice = str(table["form"].iloc[0])
        table["chosen"] = table["form"] == choice
        reason = f"best at predicting the largest {count} points from the rest (RMSLE {table['rmsle'].iloc[0]:.3g})"
        chosen = Selection(table, choice, reason, f"largest {count}")
        best = template.clone(form=choice).fit(fit_data) if self.refit else None
        return self._keep(chosen, best)

    def _keep(self, chosen: Selection, best: Any) -> FormSearch:
        if best is not None:
            best.selection_ = chosen
        self.selection_ = chosen
        self.cv_results_ = chosen.table
        self.best_form_ = chosen.choice
        self.best_estimator_ = best
        return self

    def predict(self, return_ci: bool = False, **inputs: Any):
        """The best estimator's prediction (`ScalingLaw.predict`)."""
        return self.best_estimator_.predict(return_ci=return_ci, **inputs)


def _common_inputs(candidates: tuple[str, ...], steps_aware: list[str]) -> tuple[tuple[str, ...], int]:
    """The inputs every candidate but the steps-aware ones is a law in, and the most free parameters among them."""
    plain = [name for name in candidates if name not in steps_aware]
    inputs = {get_form(name).inputs for name in plain}
    if len(inputs) > 1:
        raise UserError(f"the candidates are laws in different variables: {', '.join(plain)}")
    free = max((get_form(name).n_params for name in plain), default=5)
    return (inputs.pop() if inputs else ("n", "d")), free


def default_candidates(columns: dict[str, str | None] | None = None) -> tuple[str, ...]:
    """The two-variable candidates, and the steps-aware law with a two-variable reduction (data_constrained,
    whose L(N, D) at one epoch is chinchilla's) too when a samples-seen column is named."""
    return DEFAULT_CANDIDATES + (STEPS_CANDIDATES if (columns or {}).get(STEPS_INPUT) else ())


def select_candidates(
    template: Any, data: FitData, candidates: tuple[str, ...] | list[str], checkpoints: FitData | None = None
) -> tuple[Selection, dict[str, Any]]:
    """Fit every candidate on all the data, score each by held-out error (leave one cell, run or point out:
    `held_out_groups`), choose by the one-SE rule.

    `checkpoints` (inputs n, d, seen: every checkpoint of the same runs) is what a steps-aware candidate
    such as `data_constrained` is fitted on; it is scored at each held-out run's last checkpoint, the point
    the other candidates predict, so every candidate answers the same question on the same folds.
    Returns the selection and every candidate's point fit on all the data (no intervals), keyed by form name.
    """
    rows, laws = [], {}
    for name in candidates:
        form = get_form(name)
        fit_on, scored = data, None
        if STEPS_INPUT in form.inputs:
            if checkpoints is None or checkpoints.groups is None:
                raise UserError(f"form '{name}' needs every checkpoint of each run (columns samples_seen and run_id)")
            fit_on, scored = checkpoints, checkpoints.final_points()
        if form.inputs != fit_on.input_names:
            raise UserError(f"form '{name}' is a law in {', '.join(form.inputs)}; the data give {data.input_names}")
        largest_fold = int(np.bincount(held_out_groups(fit_on)[0]).max())
        if fit_on.n_points - largest_fold < free_parameters(name):
            continue
        laws[name] = template.clone(form=name, bootstrap=0, intervals=None).fit(fit_on)
        rows.append(score_candidate(name, laws[name], fit_on, scored))
    if not rows:
        names = ", ".join(candidates)
        raise UserError(f"{data.n_points} points are too few to hold any out and fit any of: {names}")
    table = pd.DataFrame(rows)
    choice, reason = one_se_choice(table)
    table["chosen"] = table["form"] == choice
    table = table.sort_values("cv_log_error", kind="stable").reset_index(drop=True)
    return Selection(table, choice, reason, held_out_groups(data)[1]), laws


def rank_by_extrapolation(
    template: Any, loo: Selection, data: FitData, checkpoints: FitData | None = None
) -> Selection:
    """The leave-one-out selection `loo` re-decided by forward-chaining folds (`fit.extrapolation`).

    Every candidate of `loo.table` is scored on the same folds: those whose runs below the cut can fit the
    candidate with the most free parameters; when none can, the largest candidates are left unscored one size
    at a time. With no usable fold the leave-one-out choice stands, and its reason says why.
    """
    table = loo.table.copy()
    folds = forward_folds(checkpoints if checkpoints is not None else data)
    sizes = sorted(set(table["free_params"]), reverse=True)
    usable: list[Fold] = []
    while sizes and not usable:
        usable = usable_cuts(checkpoints if checkpoints is not None else data, folds, sizes[0])
        if not usable:
            sizes.pop(0)
    scored = table["free_params"] <= (sizes[0] if sizes else -1)
    if not usable:
        reason = f"{TOO_FEW}; by leave-one-out: {loo.reason}"
        return Selection(table, loo.choice, reason, loo.unit)
    rows, per_run = [], {}
    for name in table.loc[scored, "form"]:
        steps_aware = STEPS_INPUT in get_form(name).inputs
        fit_on = checkpoints if steps_aware else data
        scores, per_run[name] = score_extrapolation(
            template, name, fit_on, fit_on.final_points() if steps_aware else None, usable
        )
        rows.append({"form": name} | scores)
    table = table.drop(columns="chosen").merge(pd.DataFrame(rows), on="form", how="left")
    choice, table["extrap_se"], reason = paired_choice(table[scored.to_numpy()], per_run)
    cuts = ", ".join(f"{fold.quantile:.3g}" for fold in usable)
    reason = f"{reason}; {len(usable)} forward folds (fit below the compute quantiles {cuts}, predict above)"
    table["chosen"] = table["form"] == choice
    table = table.sort_values("extrap_log_error", kind="stable", na_position="last").reset_index(drop=True)
    return Selection(table, choice, reason, loo.unit, scoring="extrapolation")
