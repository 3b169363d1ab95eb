"""The study pipeline: everything a report shows, computed once from an observations table: the fitted
L(N, D) (form chosen by held-out runs), the train-split law beside it, the compute-optimal laws at one data
scale, the iso-metric profile and cost table, what to run next, the two-step fits, and every warning."""

from __future__ import annotations

import warnings as pywarnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scalinglab.analysis.two_step import analyse_two_step
from scalinglab.errors import UserError
from scalinglab.fit.forms import get_form
from scalinglab.fit.law import ScalingLaw, fit_law
from scalinglab.fit.search import AUTO, STEPS_INPUT
from scalinglab.observations import FitData, last_rows, metric_rows, rename_columns, select_fit_data
from scalinglab.observations.trials import BestOf, read_best_trials
from scalinglab.optimal.answer import Answer, compute_optimal_answer
from scalinglab.optimal.cell_ends import GROUP, cell_ends, interpolate_ends
from scalinglab.optimal.compute_optimal import ComputeOptimal
from scalinglab.optimal.curves import Curves, select_curves
from scalinglab.optimal.iso_metric import Profile, check_improvement, cost_table, iso_metric_profile
from scalinglab.optimal.parametric import additive_params

if TYPE_CHECKING:
    from scalinglab.analysis.two_step import TwoStepFits
    from scalinglab.hparams import Tuned
    from scalinglab.optimal.suggest import Suggestions


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
    train_law: ScalingLaw | None = None  # the same form fitted on the train split, when the table has one
    train_final: pd.DataFrame | None = None
    envelope_scale: float | None = None  # the data scale the compute-optimal laws use (None: every run)
    envelope_reads: str = "every run"  # the points the envelope and IsoFLOP read, in words
    marks: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # other studies' compute
    all_points: bool = False
    verdict: list[str] = field(default_factory=list)  # filled by write_report from what the page shows
    suggestions: Suggestions | None = None  # which run narrows N_opt at 10x the largest budget most
    two_step: TwoStepFits | None = None  # the metric through the eval loss, when the table has both
    two_step_error: str | None = None  # why the two-step fits failed
    branches: dict[str, float] | None = None  # a branch study's FLOPs as trained and in full (study.branches)
    halving: dict[str, float] | None = None  # a halving search's stopped trials and FLOPs (study.pruning)
    trials: BestOf | None = None  # each cell's best trial, when the table has several per cell
    hparams: list[Tuned] | None = None  # each searched hyperparameter's optimum per cell and its laws
    curves: list[dict] | None = None  # a study folder's schedule-aware law per model (analysis.curves.model_row)
    answer: Answer | None = None  # "at the largest budget, train N on D": the one compute-optimal answer


def choose_data_scale(rows: pd.DataFrame, data_scale: str | float | None) -> float | None:
    """The data scale whose runs the envelope uses: "largest" (default, as the seed's Fig 2), a number, or
    None / "all" for every run ("ends", each cell's end, is `_envelope_table`'s). A table without `data_scale`
    uses every run."""
    if data_scale in (None, "all") or "data_scale" not in rows:
        return None
    scales = np.sort(pd.to_numeric(rows["data_scale"], errors="coerce").dropna().unique())
    if scales.size == 0:
        return None
    if data_scale == "largest":
        return float(scales[-1])
    try:
        wanted = float(data_scale)
    except (TypeError, ValueError):
        raise UserError(f"--data-scale: '{data_scale}' is not a number, 'largest', 'ends' or 'all'") from None
    if not np.any(np.isclose(scales, wanted)):
        raise UserError(
            f"--data-scale: no runs at data scale {wanted:g}; the table has {', '.join(f'{s:g}' for s in scales)}"
        )
    return wanted


def analyse(
    obs: pd.DataFrame,
    source: str,
    metric: str = "loss",
    split: str | None = "eval",
    higher_is_better: bool | None = None,
    improvement: float = 0.01,
    bootstrap: int = 200,
    title: str | None = None,
    form: str = "auto",
    all_points: bool = False,
    data_scale: str | float | None = "largest",
    columns: dict[str, str | None] | None = None,
    marks: dict[str, pd.DataFrame] | None = None,
    intervals: str | None = "profile",
    trials: list[str] | None | bool = None,
) -> Analysis:
    """Fit what the data supports; what it does not support becomes a warning, not a failure. `form` is the
    L(N, D) form ("auto": chosen by how it extrapolates, fit/selection.py); `all_points` fits every checkpoint
    instead of each run's last; `data_scale` picks the runs of the envelope; `columns` maps roles (n, d, y, c,
    run) to column names; `marks` are other studies' tables whose compute the envelope marks; `intervals` is the
    law's interval method (ScalingLaw's `intervals`); `trials` the hyperparameter columns whose best trial per
    cell is read (None: the known ones that vary within a cell; False: every trial)."""
    branches, halving, study = obs.attrs.get("branches"), obs.attrs.get("halving"), obs.attrs.get("study")
    obs = rename_columns(obs, columns, source)
    if split is not None and "split" in obs and split not in set(obs["split"]):
        split = None
    rows = metric_rows(obs, metric, split, source)
    if higher_is_better is None:
        higher_is_better = bool(rows["higher_is_better"].iloc[0]) if "higher_is_better" in rows else False
    check_improvement(improvement, higher_is_better)
    chosen = _best_trials(obs, trials, metric, split, higher_is_better, source)
    every, obs = obs, obs if chosen is None else chosen.table
    rows = rows if chosen is None else metric_rows(obs, metric, split, source)
    result = Analysis(
        title or f"Scaling study: {metric}", source, metric, split, higher_is_better, obs, last_rows(rows)
    )
    result.all_points, result.branches, result.halving = all_points, branches, halving
    _tune(result, every, chosen, split)
    _schedule_curves(result, study, every)
    selection = {  # a wide table (one metric, no metric or split column): the metric is only the value's name
        "metric": metric if "metric" in obs else None,
        "split": split if "split" in obs else None,
        "source": source,
        "final_only": not all_points,
    }
    with pywarnings.catch_warnings(record=True) as caught:
        pywarnings.simplefilter("always")
        points = _points(result, obs, selection)
        _fit_law(result, obs, points, form, bootstrap, selection, intervals)
        _fit_train_law(result, obs, rows, selection)
        k = measured_flops_per_param_sample(result)
        parametric = _fit_optimal(result, obs, points, rows, bootstrap, data_scale, selection, k)
        _profile_and_costs(result, improvement, k)
        _suggest(result, points, parametric, bootstrap, k)
        analyse_two_step(result)
    result.warnings += list(dict.fromkeys(f"analysis: {w.message}" for w in caught))
    result.marks = {name: compute_marks(table) for name, table in (marks or {}).items()}
    return result


def _best_trials(
    obs: pd.DataFrame, trials: list[str] | None | bool, metric: str, split: str | None, higher: bool, source: str
) -> BestOf | None:
    """Each cell's best trial (`trials`: the columns, None to look for them, False for none), or None."""
    rows = {"metric": metric if "metric" in obs else None, "split": split if "split" in obs else None}
    return read_best_trials(obs, trials, higher_is_better=higher, source=source, **rows)


def _tune(result: Analysis, obs: pd.DataFrame, chosen: BestOf | None, split: str | None) -> None:
    """The trials read (each cell's best), and the optimum of each hyperparameter they vary with its laws."""
    from scalinglab.hparams import tune

    result.trials = chosen
    if chosen is None:
        return
    result.warnings.append(f"trials: {chosen.note}")
    rows = {"metric": result.metric if "metric" in obs else None, "split": split if "split" in obs else None}
    try:
        tuned = tune(obs, chosen.columns, higher_is_better=result.higher_is_better, source=result.source, **rows)
    except UserError as exc:
        result.warnings.append(f"hyperparameter laws not fitted: {exc}")
        return
    result.hparams = tuned
    result.warnings += [f"hyperparameters: {note}" for t in tuned for note in t.notes]


def _schedule_curves(result: Analysis, study: dict | None, obs: pd.DataFrame) -> None:
    """For a study folder (its config and runs table), the schedule-aware law per model on the metric's curves."""
    if study is None or result.split is None:
        return
    from scalinglab.analysis.curves import model_curves, model_row
    from scalinglab.study.config import parse_config

    config, runs = parse_config(study["config"], result.source, check_task=False), pd.DataFrame(study["runs"])
    try:
        models = model_curves(config, runs, obs, result.metric, result.split)
    except UserError as exc:
        result.warnings.append(f"loss-curve law not fitted: {exc}")
        return
    result.curves = [model_row(m, config) for m in models]


def _points(result: Analysis, obs: pd.DataFrame, selection: dict) -> FitData | None:
    """The (N, D) points every law of the analysis is fitted on, selected once: the report's law (or the
    search for it), the full chinchilla law a method needs, and the design of what to run next."""
    try:
        return select_fit_data(obs, ("n", "d"), higher_is_better=result.higher_is_better, **selection)
    except UserError as exc:
        result.warnings.append(f"L(N, D) not fitted: {exc}")
        return None


def _fit_law(
    result: Analysis,
    obs: pd.DataFrame,
    points: FitData | None,
    form: str,
    bootstrap: int,
    selection: dict,
    intervals: str | None,
) -> None:
    """The report's law, on `points`; a steps-aware form named by the user reads every checkpoint instead."""
    steps_aware = form != AUTO and STEPS_INPUT in get_form(form).inputs
    if points is None and not steps_aware:
        return
    try:
        options = {"higher_is_better": result.higher_is_better, "bootstrap": bootstrap, "intervals": intervals}
        data, chosen = (obs, selection) if steps_aware else (points, {})
        law = fit_law(form, data, law_options={**options, "seed": 0}, **chosen)
        # a steps-aware form (every checkpoint) reports its L(N, D) at one epoch: surface, profile, costs
        result.law = law.two_variable() if hasattr(law, "two_variable") and len(law.form_.inputs) > 2 else law
        result.warnings += [f"L(N, D) fit: {w}" for w in result.law.warnings_ if "pass --all-points" not in w]
    except UserError as exc:
        result.warnings.append(f"L(N, D) not fitted: {exc}")


def _fit_train_law(result: Analysis, obs: pd.DataFrame, rows: pd.DataFrame, selection: dict) -> None:
    """The eval law's form on the train split (the seed fits both), when the table has train rows."""
    if result.law is None or result.split == "train" or "split" not in obs:
        return
    train = obs[(obs["split"] == "train") & (obs["metric"] == result.metric if "metric" in obs else True)]
    if train.empty:
        return
    try:
        law = ScalingLaw(result.law.form_.name, higher_is_better=result.higher_is_better, intervals=None)
        result.train_law = law.fit(obs, **{**selection, "split": "train"})
        result.train_final = last_rows(train)
    except UserError as exc:
        result.warnings.append(f"train-split law not fitted: {exc}")


def _positive_ratios(final: pd.DataFrame, numerator: str, *denominator: str) -> np.ndarray:
    """numerator / product(denominator) per final point, the finite positive ones (none without a column)."""
    if not {numerator, *denominator} <= set(final):
        return np.empty(0)
    ratio = (final[numerator] / final[list(denominator)].prod(axis=1)).to_numpy(float)
    return ratio[np.isfinite(ratio) & (ratio > 0)]


def measured_flops_per_param_sample(result: Analysis, spread_limit: float = 2.0) -> float:
    """k in C = k N D as the runs measure it: the median of flops / (n_params x dataset_size) over the final
    points (6, the transformer rule, when a column is missing). With a budget in epochs k is the FLOPs per
    parameter per sample times the epochs; with a budget in steps it falls as D grows, which the parametric
    rule's C = k N D cannot describe, and a warning says so."""
    ratio = _positive_ratios(result.final, "flops", "n_params", "dataset_size")
    if not ratio.size:
        return 6.0
    k = float(np.median(ratio))
    if ratio.max() > spread_limit * ratio.min():
        result.warnings.append(
            f"compute-optimal: training FLOPs per parameter per training sample vary {ratio.max() / ratio.min():.3g}x "
            f"across runs ({ratio.min():.3g} to {ratio.max():.3g}): the parametric rule takes C = k N D with k = "
            f"{k:.3g}, their median, which these runs follow only roughly (a budget in steps makes C independent "
            "of D)"
        )
    return k


def samples_per_datum(final: pd.DataFrame) -> float:
    """How many samples each unit of D was trained on: the median samples_seen / dataset_size of the final
    points (the epochs of a budget in epochs; 1 without those columns)."""
    ratio = _positive_ratios(final, "samples_seen", "dataset_size")
    return float(np.median(ratio)) if ratio.size else 1.0


def _fit_optimal(
    result: Analysis,
    obs: pd.DataFrame,
    points: FitData | None,
    rows: pd.DataFrame,
    bootstrap: int,
    data_scale: str | float | None,
    selection: dict,
    k: float,
) -> ScalingLaw | None:
    """The compute-optimal laws; returns the chinchilla law the parametric method used (None without one)."""
    if "flops" not in obs or "run_id" not in obs:
        return None
    table, scope = _envelope_table(result, obs, rows, data_scale)
    law = _parametric_law(result, points, bootstrap)
    try:
        optimal = ComputeOptimal(
            method="all",
            higher_is_better=result.higher_is_better,
            bootstrap=bootstrap,
            law=law,
            flops_per_param_sample=k,
            samples_per_datum=samples_per_datum(result.final),
            scope=scope if law is not None else None,
        )
        picked = {k: v for k, v in selection.items() if k != "final_only"}
        data = table
        if result.envelope_reads == ENDS_READ:
            data = interpolate_ends(select_curves(table, higher_is_better=result.higher_is_better, **picked))
        result.optimal = optimal.fit(data, **({} if isinstance(data, Curves) else picked))
        result.warnings += [f"compute-optimal: {w}" for w in optimal.warnings_]
        result.answer = compute_optimal_answer(optimal, getattr(optimal, "parametric_law_", None))
    except UserError as exc:
        result.warnings.append(f"compute-optimal laws not fitted: {exc}")
    return law


ENDS_READ = "each cell's end, every data scale (one curve per model scale and seed)"


def _envelope_table(
    result: Analysis, obs: pd.DataFrame, rows: pd.DataFrame, data_scale: str | float | None
) -> tuple[pd.DataFrame, str | None]:
    """The points the envelope and IsoFLOP read, with what they leave out (None: nothing). "ends" (the default
    of a branch study, whose trunks' checkpoints are stable-phase points, not ends) reads every cell's end;
    "largest" (the default otherwise) or a number the runs at one data scale with their checkpoints."""
    if data_scale == "largest" and result.branches is not None:
        data_scale = "ends"
    if data_scale == "ends":
        ends = cell_ends(obs[obs["run_id"].isin(rows["run_id"])])
        if ends is not None:
            result.envelope_reads = ENDS_READ
            return ends, None
        missing = sorted({"run_id", "steps", *GROUP} - set(obs.columns))
        why = f"the table has no {', '.join(missing)} column" if missing else "no model has runs at two data scales"
        result.warnings.append(f"compute-optimal: --data-scale ends: {why}; the envelope uses every run")
        data_scale = "all"
    scale = choose_data_scale(rows, data_scale)
    table = obs if scale is None else obs[np.isclose(pd.to_numeric(obs["data_scale"], errors="coerce"), scale)]
    if scale is not None and table[table["run_id"].isin(rows["run_id"])]["n_params"].nunique() < 2:
        result.warnings.append(
            f"compute-optimal: data scale {scale:g} has one model size; the envelope uses every run (--data-scale all)"
        )
        scale, table = None, obs
    result.envelope_scale = scale
    result.envelope_reads = "every run" if scale is None else f"the runs at data scale {scale:g}X"
    if scale is None:
        return table, None
    return table, f"the runs at data scale {scale:g}X only, so it cannot trade data against model size"


SUGGEST_REPLICAS = 100  # bootstrap replicas behind the report's "what to run next" (0 bootstrap: no section)
SUGGEST_BUDGET_FACTOR = 10.0  # the decision: N_opt at this multiple of the largest run's compute


def _suggest(result: Analysis, points: FitData | None, law: ScalingLaw | None, bootstrap: int, k: float) -> None:
    """Which run to train next (optimal/suggest.py): candidates ranked by how much they narrow N_opt's
    interval at 10x the largest run's compute, per FLOP. Its design criterion is written for the full
    chinchilla law: a nested form's report gets the full form fitted on the same points, said in a warning."""
    if law is None or points is None or not bootstrap or additive_params(law.form_.name, law.params_) is None:
        return
    refitted = law.form_.name != "chinchilla"
    if refitted:  # its warnings are said once, with the refit
        law = _full_chinchilla(result, points, bootstrap, "what to run next: ranks runs with", law.form_.name)
        if law is None:
            return
    from scalinglab.optimal.suggest import suggest_runs

    try:
        largest = float(np.max(k * points.inputs[0] * points.inputs[1]))
        result.suggestions = suggest_runs(
            points,
            budget=SUGGEST_BUDGET_FACTOR * largest,
            bootstrap=SUGGEST_REPLICAS,
            law=law,
            higher_is_better=result.higher_is_better,
            ceiling=law.ceiling,
            flops_per_param_sample=k,
        )
        said = set(law.warnings_) if refitted else set()
        notes = [
            w
            for w in result.suggestions.warnings
            if "used the last point" not in w and not (w.startswith("law: ") and w[len("law: ") :] in said)
        ]
        result.warnings += [f"what to run next: {w}" for w in notes]
    except UserError as exc:
        result.warnings.append(f"what to run next: not computed: {exc}")


def _parametric_law(result: Analysis, points: FitData | None, bootstrap: int) -> ScalingLaw | None:
    """The law the parametric method needs: the report's law when it is of chinchilla's additive family
    (chinchilla or a nested form), else the full form fitted on the same points (said in a warning)."""
    law = result.law
    if law is None or points is None or additive_params(law.form_.name, law.params_) is not None:
        return law
    return _full_chinchilla(result, points, bootstrap, "parametric: uses", law.form_.name)


def _full_chinchilla(result: Analysis, points: FitData, bootstrap: int, lead: str, chosen: str) -> ScalingLaw | None:
    """The full chinchilla law fitted on the report's points, for a method the chosen form does not serve;
    the warning starts with `lead` and carries that fit's own warnings."""
    try:
        full = ScalingLaw("chinchilla", higher_is_better=result.higher_is_better, bootstrap=bootstrap, intervals=None)
        full.fit(points)
    except UserError as exc:
        result.warnings.append(f"{lead} the full chinchilla law, which was not fitted: {exc}")
        return None
    notes = [w for w in full.warnings_ if "pass --all-points" not in w]
    result.warnings.append(
        f"{lead} the full chinchilla law fitted on the same points (the chosen {chosen} form does not serve it)"
        + (f"; that fit warns: {'; '.join(notes)}" if notes else "")
    )
    return full


def _profile_and_costs(result: Analysis, improvement: float, k: float) -> None:
    law = result.law
    if law is None:
        return
    try:
        result.profile = iso_metric_profile(law, improvement=improvement, flops_per_param_sample=k)
    except UserError as exc:
        result.warnings.append(f"iso-metric profile: {exc}")
    try:
        result.costs = cost_table(law, flops_per_param_sample=k)
    except UserError as exc:
        result.warnings.append(f"cost of improvement: {exc}")
    exponents = [law.params_[p] for p in ("alpha", "beta") if p in law.params_]
    if exponents and min(exponents) < 0.02:
        result.warnings.append(
            "an exponent is near zero: over this grid the metric barely moves with N or D, so the law"
            " cannot say how it scales further"
        )
    free = int(law.form_.free.size) if hasattr(law.form_, "free") else law.form_.n_params
    if len(result.final) < 3 * free:
        result.warnings.append(
            f"{len(result.final)} runs for a {free}-parameter law: intervals are wide and"
            " extrapolation is weakly supported"
        )


def compute_marks(table: pd.DataFrame, limit: int = 8) -> list[tuple[str, float]]:
    """Another study's compute to mark on the envelope: each model size's largest training FLOPs."""
    if "flops" not in table or "n_params" not in table:
        raise UserError("--mark: the marked study has no 'flops' and 'n_params' columns")
    top = table.groupby("n_params")["flops"].max().sort_index()
    scales = table.groupby("n_params")["model_scale"].first() if "model_scale" in table else None
    marks = [(f"{scales[n]:g}X" if scales is not None else f"N={n:.2g}", float(c)) for n, c in top.items()]
    return marks[:: max(1, int(np.ceil(len(marks) / limit)))]


def headline(analysis: Analysis) -> dict[str, float]:
    """The numbers the demo prints: exponents and the compute-optimal model at the largest budget."""
    out: dict[str, float] = {}
    if analysis.law is not None:
        params = additive_params(analysis.law.form_.name, analysis.law.params_) or analysis.law.params_
        out.update({k: params[k] for k in ("alpha", "beta", "E") if k in params})
    if analysis.optimal is not None:
        budget = float(analysis.final["flops"].max()) if "flops" in analysis.final else np.nan
        table = analysis.optimal.predict(budget)
        out["budget"] = budget
        for _, row in table.iterrows():
            out[f"{row['quantity']}_opt ({row['method']})"] = float(row["value"])
    if analysis.answer is not None:
        answer = analysis.answer
        found = {"N": answer.n, "D": answer.d, "S": answer.s}
        out.update({f"{q}_opt (answer: {answer.method})": v for q, v in found.items() if v is not None})
    return out
