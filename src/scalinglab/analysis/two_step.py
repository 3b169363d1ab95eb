"""The metric through the loss, fitted once for the report: the two-step law, the direct law beside it, the
direct-vs-two-step backtest on held-out runs, and the metric's law on each eval set compared."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scalinglab.errors import UserError
from scalinglab.fit.backtest import ViaBacktest, backtest_via
from scalinglab.fit.law import ScalingLaw
from scalinglab.fit.two_step import TwoStepData, TwoStepLaw, two_step_data
from scalinglab.format import number

EXPONENTS = ("alpha", "beta", "alphaN", "alphaD", "c")


@dataclass
class TwoStepFits:
    """Every fit behind the report's two-step section; the report draws these and computes nothing."""

    metric: str
    data: TwoStepData
    law: TwoStepLaw
    direct: ScalingLaw  # the metric's own law, beside the chained one
    backtest: ViaBacktest | None = None
    backtest_error: str | None = None  # why there is no backtest
    eval_laws: dict[str, ScalingLaw] = field(default_factory=dict)  # eval set -> the metric's law there


def fit_two_step(
    obs: pd.DataFrame,
    metric: str,
    higher_is_better: bool,
    via: str = "loss",
    split: str = "eval",
    form: str = "chinchilla",
    holdout: str = "largest:1",
    bootstrap: int = 100,
    seed: int = 0,
) -> TwoStepFits | None:
    """The two-step fits of a study's observations; None when the table has no `via` rows."""
    if "metric" not in obs or via not in set(obs["metric"].astype(str)) or metric == via:
        return None
    data = two_step_data(obs, ("n", "d"), via, metric=metric, split=split, final_only=True)
    law = TwoStepLaw(form=form, higher_is_better=higher_is_better, bootstrap=bootstrap, seed=seed, intervals=None)
    law.fit(data)
    direct = ScalingLaw(form=form, higher_is_better=higher_is_better, intervals=None)
    fits = TwoStepFits(metric, data, law, direct.fit(obs, metric=metric, split=split))
    try:
        fits.backtest = backtest_via(
            obs,
            ("n", "d"),
            via,
            holdout,
            [form],
            metric=metric,
            split=split,
            higher_is_better=higher_is_better,
            bootstrap=bootstrap,
            seed=seed,
        )
    except UserError as exc:
        fits.backtest_error = str(exc)
    splits = sorted(s for s in set(obs["split"].astype(str)) if s == "eval" or s.startswith("eval:"))
    if len(splits) > 1:
        fits.eval_laws = eval_set_laws(obs, metric, splits, form, higher_is_better=higher_is_better)
    return fits


def eval_set_laws(
    obs: pd.DataFrame, metric: str, splits: list[str], form: str = "chinchilla", **law_options: Any
) -> dict[str, ScalingLaw]:
    """The law of `metric` on each eval set (split), same form and options; a set that cannot be fitted is left out."""
    laws = {}
    for split in splits:
        try:
            laws[split] = ScalingLaw(form=form, **law_options).fit(obs, metric=metric, split=split)
        except UserError:
            continue
    return laws


def exponent_differences(laws: dict[str, ScalingLaw]) -> list[str]:
    """Sentences naming each exponent where two eval sets' intervals do not overlap (an open side never
    separates); the reader learns where the law does not carry over from one set to another."""
    out = []
    names = list(laws)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ci_a, ci_b = laws[a].ci_ or {}, laws[b].ci_ or {}
            for p in EXPONENTS:
                if p not in ci_a or p not in ci_b:
                    continue
                (lo_a, hi_a), (lo_b, hi_b) = ci_a[p], ci_b[p]
                apart = (hi_a is not None and lo_b is not None and hi_a < lo_b) or (
                    hi_b is not None and lo_a is not None and hi_b < lo_a
                )
                if apart:
                    out.append(
                        f"{p} differs between {a} ({number(laws[a].params_[p])}) and {b} "
                        f"({number(laws[b].params_[p])}) beyond their {laws[a].ci_level:.0%} intervals"
                    )
    if not out and len(names) > 1:
        out.append(f"no exponent differs beyond its interval across {', '.join(names)}")
    return out


def _same_as_loss(obs: pd.DataFrame, metric: str, split: str, rtol: float = 1e-5) -> str:
    """Why a two-step law would add nothing ("" when it would): the metric equals the eval loss at every
    checkpoint (a one-mode behaviour model, whose loss is its ADE), so the link is the identity."""
    rows = obs[obs["split"].astype(str) == split] if "split" in obs else obs
    keys = [c for c in ("run_id", "steps") if c in rows]
    if not keys:
        return ""
    rows = rows[rows["metric"].astype(str).isin([metric, "loss"])]
    pairs = rows.pivot_table(index=keys, columns="metric", values="value", aggfunc="first").dropna()
    if metric not in pairs or "loss" not in pairs or pairs.empty:
        return ""
    gap = float(np.max(np.abs(pairs[metric] / pairs["loss"] - 1.0)))
    if gap > rtol:
        return ""
    return (
        f"{metric} equals the eval loss at all {len(pairs)} checkpoints (largest relative difference {gap:.1g}), "
        "so predicting it through the loss adds nothing: the law above is the two-step law"
    )


def analyse_two_step(analysis: Any) -> None:
    """Fill `analysis.two_step` (or `analysis.two_step_error`) for a task metric beside an eval loss."""
    obs, metric = analysis.observations, analysis.metric
    if "metric" not in obs or metric == "loss" or "loss" not in set(obs["metric"].astype(str)):
        return
    same = _same_as_loss(obs, metric, analysis.split or "eval")
    if same:
        analysis.two_step_error = same
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analysis.two_step = fit_two_step(obs, metric, analysis.higher_is_better, split=analysis.split or "eval")
    except UserError as exc:
        analysis.two_step_error = str(exc)
