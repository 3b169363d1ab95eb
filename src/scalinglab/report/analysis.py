"""Everything a report shows, computed once from an observations table: the fitted L(N, D), the
compute-optimal laws, the iso-metric profile and cost table, the near-optimal runs and every warning."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.errors import UserError
from scalinglab.fit.law import ScalingLaw
from scalinglab.observations import read_table
from scalinglab.optimal.compute_optimal import ComputeOptimal
from scalinglab.optimal.iso_metric import Profile, check_improvement, cost_table, iso_metric_profile


@dataclass
class Analysis:
    title: str
    source: str
    metric: str
    split: str | None
    higher_is_better: bool
    observations: pd.DataFrame
    final: pd.DataFrame  # the last eval point of each run for the metric
    law: ScalingLaw | None = None
    optimal: ComputeOptimal | None = None
    profile: Profile | None = None
    costs: pd.DataFrame | None = None
    warnings: list[str] = field(default_factory=list)


def load_observations(path: str | Path) -> tuple[pd.DataFrame, str]:
    """A study directory (its store) or an observations file (CSV, TSV, parquet)."""
    path = Path(path)
    if path.is_dir():
        from scalinglab.study.store import Store

        store = Store.open(path)
        obs = store.observations()
        if obs.empty:
            raise UserError(f"{path}: the study has no observations yet")
        return obs, f"{path} ({store.config().name})"
    return read_table(path), str(path)


def _select(obs: pd.DataFrame, metric: str, split: str | None, source: str) -> pd.DataFrame:
    frame = obs
    if "metric" in frame:
        if metric not in set(frame["metric"]):
            raise UserError(
                f"{source}: column 'metric' has no '{metric}' rows; it has {', '.join(sorted(set(frame['metric'])))}"
            )
        frame = frame[frame["metric"] == metric]
    if split is not None and "split" in frame:
        if split not in set(frame["split"]):
            raise UserError(f"{source}: column 'split' has no '{split}' rows")
        frame = frame[frame["split"] == split]
    return frame


def analyse(
    obs: pd.DataFrame,
    source: str,
    metric: str = "loss",
    split: str | None = "eval",
    higher_is_better: bool | None = None,
    improvement: float = 0.01,
    bootstrap: int = 200,
    title: str | None = None,
) -> Analysis:
    """Fit what the data supports; what it does not support becomes a warning, not a failure."""
    if split is not None and "split" in obs and split not in set(obs["split"]):
        split = None
    rows = _select(obs, metric, split, source)
    if higher_is_better is None:
        higher_is_better = bool(rows["higher_is_better"].iloc[0]) if "higher_is_better" in rows else False
    check_improvement(improvement, higher_is_better)
    order = "steps" if "steps" in rows else "flops"
    final = rows.sort_values(order).groupby("run_id").tail(1) if "run_id" in rows else rows
    result = Analysis(title or f"Scaling study: {metric}", source, metric, split, higher_is_better, obs, final)
    selection = {"metric": metric, "split": split, "source": source}
    try:
        law = ScalingLaw("chinchilla", higher_is_better=higher_is_better, bootstrap=bootstrap, seed=0)
        result.law = law.fit(obs, **selection)
        result.warnings += [f"L(N, D) fit: {w}" for w in law.warnings_]
    except UserError as exc:
        result.warnings.append(f"L(N, D) not fitted: {exc}")
    if "flops" in obs and "run_id" in obs:
        try:
            optimal = ComputeOptimal(
                method="all", higher_is_better=higher_is_better, bootstrap=bootstrap, law=result.law
            )
            result.optimal = optimal.fit(obs, **selection)
            result.warnings += [f"compute-optimal: {w}" for w in optimal.warnings_]
        except UserError as exc:
            result.warnings.append(f"compute-optimal laws not fitted: {exc}")
    if result.law is not None:
        try:
            result.profile = iso_metric_profile(result.law, improvement=improvement)
        except UserError as exc:
            result.warnings.append(f"iso-metric profile: {exc}")
        try:
            result.costs = cost_table(result.law)
        except UserError as exc:
            result.warnings.append(f"cost of improvement: {exc}")
        exponents = [result.law.params_[p] for p in ("alpha", "beta")]
        if min(exponents) < 0.02:
            result.warnings.append(
                "an exponent is near zero: over this grid the metric barely moves with N or D, so the law"
                " cannot say how it scales further"
            )
        if len(final) < 3 * result.law.form_.n_params:
            result.warnings.append(
                f"{len(final)} runs for a {result.law.form_.n_params}-parameter law: intervals are wide and"
                " extrapolation is weakly supported"
            )
    return result


def headline(analysis: Analysis) -> dict[str, float]:
    """The numbers the demo prints: exponents and the compute-optimal model at the largest budget."""
    out: dict[str, float] = {}
    if analysis.law is not None:
        out.update({k: analysis.law.params_[k] for k in ("alpha", "beta", "E")})
    if analysis.optimal is not None:
        budget = float(analysis.final["flops"].max()) if "flops" in analysis.final else np.nan
        table = analysis.optimal.predict(budget)
        out["budget"] = budget
        for _, row in table.iterrows():
            out[f"{row['quantity']}_opt ({row['method']})"] = float(row["value"])
    return out
