"""A study's loss curves under its own learning-rate schedule, and the schedule-aware law fitted on them.

Every run of a study trained under a schedule its config fixes (kind, warmup, its own length, its own rate), so
each checkpoint's learning-rate areas are known exactly: the rates are rebuilt step by step as the trainer set
them (`study.schedule.learning_rates`). Per model (model scale and trial; its seeds together), the law of
`fit.schedule_law` is fitted on every checkpoint of every run, and backtested: fitted on the runs shorter than
the model's longest, it predicts the longest runs' final points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scalinglab.errors import UserError
from scalinglab.fit.schedule_law import DECAY, Curve, ScheduleLaw
from scalinglab.study.config import StudyConfig
from scalinglab.study.records import parse_hparams
from scalinglab.study.schedule import learning_rates


@dataclass
class ModelCurves:
    """One model's runs as curves, its law fitted on all of them, and the backtest from its shorter runs."""

    model_scale: float
    trial: str  # the trial's hyperparameters, 'lr 0.003 batch_size 64' ('' outside a search)
    runs: list[str]
    curves: list[Curve]
    law: ScheduleLaw
    rate: float  # the base learning rate of its runs (a model's runs share it)
    backtest: list[dict[str, Any]] = field(default_factory=list)  # per longest run: predicted, measured, error

    def predict_final(self, steps: int, config: StudyConfig, lr: float) -> tuple[float, float, float]:
        """The final metric of a `steps`-step run of this model under the study's schedule: value, interval."""
        rates = learning_rates(config.schedule, steps, lr)
        value, lo, hi = self.law.predict(np.array([steps]), rates, config.schedule.warmup_steps, return_ci=True)
        return float(value[0]), float(lo[0]), float(hi[0])


def _run_rate(config: StudyConfig, run: Any) -> float:
    """The base learning rate a run trained at, as the trainer set it: its trial's config at its N and D."""
    return config.for_trial(parse_hparams(run.hparams)).base_lr(float(run.n_params), float(run.dataset_size))


def run_curves(
    config: StudyConfig, runs: pd.DataFrame, obs: pd.DataFrame, metric: str, split: str, from_step: int = 1
) -> list[tuple[Any, Curve, float]]:
    """(run row, curve, base rate) for every finished run with a checkpoint of `metric` on `split` at a step
    >= `from_step`. The run's length is its budget at its batch size (samples seen / steps at its last row)."""
    rows = obs[(obs["metric"] == metric) & (obs["split"] == split) & (obs["steps"] > 0)]
    if rows.empty:
        have = sorted(set(zip(obs["metric"], obs["split"], strict=True)))
        listed = ", ".join(f"{m} on {s}" for m, s in have[:12])
        raise UserError(f"the study has no rows of metric '{metric}' on split '{split}' (it has: {listed})")
    out = []
    for run in runs[runs["status"] == "done"].itertuples():
        curve = rows[rows["run_id"] == run.run_id].sort_values("steps")
        if curve.empty:
            continue
        last = curve.iloc[-1]
        batch = int(round(last["samples_seen"] / last["steps"]))
        total = config.budget.total_steps(int(run.dataset_size), batch)
        curve = curve[curve["steps"] >= from_step]
        if curve.empty:
            continue
        lr = _run_rate(config, run)
        rates = learning_rates(config.schedule, total, lr)
        steps = curve["steps"].to_numpy(int)
        out.append((run, Curve(steps, curve["value"].to_numpy(float), rates, config.schedule.warmup_steps), lr))
    return out


def model_curves(
    config: StudyConfig,
    runs: pd.DataFrame,
    obs: pd.DataFrame,
    metric: str = "loss",
    split: str = "eval",
    from_step: int = 1,
    decay: float = DECAY,
) -> list[ModelCurves]:
    """Each model's law and backtest; a model with too few points for the law is left out."""
    by_model: dict[tuple[float, str], list[tuple[Any, Curve, float]]] = {}
    for run, curve, lr in run_curves(config, runs, obs, metric, split, from_step):
        trial = " ".join(f"{k} {v:.3g}" for k, v in parse_hparams(run.hparams))
        by_model.setdefault((float(run.model_scale), trial), []).append((run, curve, lr))
    out = []
    for (scale, trial), members in sorted(by_model.items()):
        curves = [c for _, c, _ in members]
        if sum(len(c.steps) for c in curves) < 5:
            continue
        law = ScheduleLaw(decay).fit(curves)
        model = ModelCurves(scale, trial, [str(r.run_id) for r, _, _ in members], curves, law, members[-1][2])
        model.backtest = _backtest(members, decay)
        out.append(model)
    if not out:
        raise UserError(f"no model has the 5 checkpoints of '{metric}' a schedule-aware law needs")
    return out


def _backtest(members: list[tuple[Any, Curve, float]], decay: float) -> list[dict[str, Any]]:
    """Fitted on the runs shorter than the longest, each longest run's final point: predicted against measured."""
    lengths = [len(c.lrs) for _, c, _ in members]
    longest = max(lengths)
    shorter = [c for (_, c, _), n in zip(members, lengths, strict=True) if n < longest]
    if sum(len(c.steps) for c in shorter) < 5:
        return []
    law = ScheduleLaw(decay).fit(shorter)
    rows = []
    for (run, curve, _), n in zip(members, lengths, strict=True):
        if n == longest:
            step = np.array([curve.steps[-1]])
            value, lo, hi = law.predict(step, curve.lrs, curve.warmup, return_ci=True)
            measured = float(curve.values[-1])
            rows.append(
                {
                    "run": str(run.run_id),
                    "fitted_on_steps": int(max(len(c.lrs) for c in shorter)),
                    "steps": int(step[0]),
                    "predicted": float(value[0]),
                    "lo": float(lo[0]),
                    "hi": float(hi[0]),
                    "measured": measured,
                    "rel_error": float(value[0] / measured - 1),
                }
            )
    return rows


def model_row(model: ModelCurves, config: StudyConfig, predict_steps: int | None = None) -> dict[str, Any]:
    """One model: its law's parameters (intervals: `*_lo`, `*_hi`), the backtest's worst error, the prediction."""
    law = model.law
    row: dict[str, Any] = {"model_scale": model.model_scale, "trial": model.trial, "runs": len(model.runs)}
    row |= {"points": law.n_points_} | law.params_
    row |= {f"{name}_{end}": law.ci_[name][i] for name in law.params_ for i, end in enumerate(("lo", "hi"))}
    row["at_bound"] = ", ".join(law.at_bounds_)
    if model.backtest:
        worst = max(model.backtest, key=lambda b: abs(b["rel_error"]))
        row |= {"backtest": f"{worst['fitted_on_steps']} -> {worst['steps']}", "error": f"{worst['rel_error']:+.1%}"}
    if predict_steps is not None:
        row["predicted"], row["predicted_lo"], row["predicted_hi"] = model.predict_final(
            predict_steps, config, model.rate
        )
    return row
