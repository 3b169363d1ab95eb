"""Benchmark: the extrapolation league table. Fit on the runs below a compute cut, predict the larger rest.

For each public table in ../shared/data that has N and D, every two-variable form (and the steps-aware ones
where the table has samples seen) is fitted on the runs whose compute is at or below the cut and predicts every
run above it; `auto` is the `FormSearch` choice (scoring by extrapolation) among the default candidates (and
data_constrained where the table has samples seen), made on the same kept runs only; `auto+nbeta` adds
chinchilla_nbeta to its candidates.
Per form: the mean relative error of the held-out predictions, R^2 of the held-out values (1 - SS_res / SS_tot,
in the metric's units: below 0 is worse than predicting their mean), and the share of held-out values inside
the 90% bootstrap interval of the prediction (parameter uncertainty only, so it undercovers noisy runs).
On the data-constrained table D is the unique data U; the two-variable laws read (N, U) and ignore repetition.

    .venv/bin/python benchmarks/bench_league.py [--cut 0.75] [--bootstrap 30] [--tables NAME,...] [--curves K]

The Revisiting curves (one-variable laws in the examples seen) come with their own split: the points marked for
fitting, and the larger ones to extrapolate to. Pythia's task accuracies are predicted through two steps (step 1:
each form on the LAMBADA loss; step 2: the link chosen by extrapolation), the models above the compute cut held
out whole (`backtest_via`).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bench_two_step import pythia_backtest, pythia_table
from scalinglab import FormSearch, ScalingLaw
from scalinglab.observations import FitData

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
TWO_VAR = ["chinchilla", "chinchilla_shared", "chinchilla_no_floor", "kaplan", "chinchilla_nbeta", "farseer"]
STEPS_AWARE = ["data_constrained", "data_constrained_full"]


def chinchilla() -> tuple[pd.DataFrame, bool]:
    """245 Chinchilla runs: N, D = C / (6 N), final loss."""
    table = pd.read_csv(DATA / "chinchilla_epoch" / "svg_extracted_data.csv")
    n, c = table["Model Size"].to_numpy(float), table["Training FLOP"].to_numpy(float)
    return pd.DataFrame({"n": n, "d": c / (6 * n), "seen": c / (6 * n), "y": table["loss"]}), False


def data_constrained() -> tuple[pd.DataFrame, bool]:
    """161 runs repeating a finite dataset: N, unique tokens U (d), tokens processed (seen), final loss."""
    table = pd.read_csv(DATA / "data_constrained" / "runs.csv")
    return pd.DataFrame(
        {"n": table["params"], "d": table["unique_tokens"], "seen": table["tokens"], "y": table["loss"]}
    ), True


TABLES = {"chinchilla": chinchilla, "data_constrained": data_constrained}
ONE_VAR = ["power", "power_offset", "m4", "bnsl1"]


def revisiting_curves(limit: int | None = None) -> list[tuple[str, pd.DataFrame]]:
    """The 92 learning curves of Alabdulmohsin et al. (2022): seen examples x, loss, Training 1 (fit) / 0 (predict)."""
    folder = DATA / "revisiting_scaling_laws"
    table = pd.concat([pd.read_csv(folder / f"benchmark.{kind}.csv") for kind in ("vision", "lang")]).drop_duplicates()
    curves = [(" / ".join(map(str, key)), group) for key, group in table.groupby(["Domain", "Task", "Model"])]
    return curves[:limit] if limit else curves


def revisiting(bootstrap: int, limit: int | None = None, per_curve: str | None = None) -> pd.DataFrame:
    """Per form and for auto, over the curves: mean of the per-curve mean relative error on the held-out points,
    median R^2, mean 90% coverage, and how often the form is within 10% of the curve's best form."""
    rows = []
    options = {"bootstrap": bootstrap, "seed": 0, "ci_level": 0.9, "intervals": None}
    for name, curve in revisiting_curves(limit):
        data = FitData(curve[["Seen Examples"]].to_numpy(float).T, ("x",), curve["Loss"].to_numpy(float), None, name)
        train = (curve["Training"] == 1).to_numpy()
        fit_on, test = data.subset(train), data.subset(~train)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for form in ONE_VAR:
                law = ScalingLaw(form=form, **options).fit(fit_on)
                rows.append({"curve": name, "form": form} | scores(law, test))
            search = FormSearch(ScalingLaw(**options), ONE_VAR).fit(fit_on)
        rows.append(
            {"curve": name, "form": "auto"} | scores(search.best_estimator_, test) | {"chose": search.best_form_}
        )
    per = pd.DataFrame(rows)
    best = per[per["form"] != "auto"].groupby("curve")["mean_rel_error"].min()
    per["near_best"] = per["mean_rel_error"] <= 1.1 * per["curve"].map(best)
    if per_curve:  # every curve's score per form, and auto's choice: for diagnosing the selection
        per.to_csv(per_curve, index=False)
    out = per.groupby("form", sort=False).agg(
        mean_rel_error=("mean_rel_error", "mean"),
        median_r2=("r2", "median"),
        coverage90=("coverage90", "mean"),
        within_10pct_of_best=("near_best", "mean"),
    )
    out.insert(0, "table", f"revisiting ({per['curve'].nunique()} curves)")
    print("auto chose:", per.loc[per["form"] == "auto", "chose"].value_counts().to_dict(), flush=True)
    return out.reset_index()


PYTHIA_TASKS = ("lambada_openai_acc", "piqa_acc", "arc_easy_acc")


def pythia(cut: float, bootstrap: int, tasks: tuple[str, ...] = PYTHIA_TASKS) -> pd.DataFrame:
    """Pythia's accuracies through two steps (LAMBADA loss, then a link), per step-1 form and auto: the models
    whose compute (N x tokens at their last checkpoint) is above the cut are held out whole; mean absolute
    error (accuracy points) over their checkpoints from step 1000, R^2 and 90% prediction-interval coverage."""
    table = pythia_table(DATA / "pythia_evals" / "pythia_zero_shot.csv", 1000)
    tokens = table.groupby("model")["tokens"].transform("max").astype(float)  # int64 products overflow
    compute = (table["n_params"].astype(float) * tokens).groupby(table["model"]).max()
    cut_n = float(table.loc[table["model"].isin(compute[compute <= compute.quantile(cut)].index), "n_params"].max())
    rows = []
    for form in [*TWO_VAR, "auto"]:
        start = time.perf_counter()
        for task in tasks:
            result = pythia_backtest(table, task, f"n_params>{cut_n:.6g}", form, bootstrap)
            at = result.points[result.points["method"] == f"two_step:{form}"]
            rows.append({"form": form, "task": task} | _point_scores(at) | {"link": result.links[f"two_step:{form}"]})
        rows[-1]["seconds"] = time.perf_counter() - start
    out = pd.DataFrame(rows)
    out.insert(0, "table", f"pythia two-step (held out: N > {cut_n:.3g})")
    return out


def _point_scores(at: pd.DataFrame) -> dict[str, float]:
    """MAE (points x100), R^2 and 90% coverage of a backtest's held-out predictions."""
    y, pred = at["observed"].to_numpy(), at["predicted"].to_numpy()
    spread = np.sum((y - y.mean()) ** 2)
    return {
        "mae_points": 100 * float(np.mean(np.abs(pred - y))),
        "r2": float(1 - np.sum((pred - y) ** 2) / spread) if spread > 0 else np.nan,
        "coverage90": float(np.mean((at["lower"] <= y) & (y <= at["upper"]))),
    }


def fit_data(frame: pd.DataFrame, inputs: tuple[str, ...]) -> FitData:
    groups = np.array([f"run{i}" for i in range(len(frame))])
    return FitData(frame[list(inputs)].to_numpy(float).T, inputs, frame["y"].to_numpy(float), groups, "table")


def scores(law: ScalingLaw, test: FitData) -> dict[str, float]:
    """Mean relative error, R^2 and 90% interval coverage of `law` on the held-out points."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        given = dict(zip(test.input_names, test.inputs, strict=True))
        point, lo, hi = law.predict(return_ci=True, **given)
    y = test.y
    return {
        "mean_rel_error": float(np.mean(np.abs(point / y - 1))),
        "r2": float(1 - np.sum((point - y) ** 2) / spread) if (spread := np.sum((y - y.mean()) ** 2)) > 0 else np.nan,
        "coverage90": float(np.mean((lo <= y) & (y <= hi))),
    }


def league(name: str, cut: float, bootstrap: int) -> pd.DataFrame:
    frame, steps = TABLES[name]()
    compute = frame["n"] * frame["seen"]
    keep = compute <= compute.quantile(cut)
    rows = []
    options = {"bootstrap": bootstrap, "seed": 0, "ci_level": 0.9, "intervals": None}
    for form in TWO_VAR + (STEPS_AWARE if steps else []):
        inputs = ("n", "d", "seen") if form in STEPS_AWARE else ("n", "d")
        data = fit_data(frame, inputs)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law = ScalingLaw(form=form, **options).fit(data.subset(keep.to_numpy()))
        rows.append(
            {"form": form} | scores(law, data.subset(~keep.to_numpy())) | {"seconds": time.perf_counter() - start}
        )
    for label, candidates in (("auto", TWO_VAR[:4]), ("auto+nbeta", [*TWO_VAR[:4], "chinchilla_nbeta"])):
        candidates = candidates + (["data_constrained"] if steps else [])
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if steps:  # the two-variable candidates read (N, U); data_constrained reads (N, U, samples seen)
                search = _steps_search(frame[keep.to_numpy()], candidates, options)
            else:
                search = FormSearch(ScalingLaw(**options), candidates).fit(fit_data(frame[keep.to_numpy()], ("n", "d")))
        best = search.best_estimator_
        test = fit_data(frame[~keep.to_numpy()], tuple(best.form_.inputs))
        row = {"form": f"{label} ({search.best_form_})"} | scores(best, test)
        rows.append(row | {"seconds": time.perf_counter() - start})
    out = pd.DataFrame(rows)
    out.insert(0, "table", name)
    out["n_train"], out["n_test"] = int(keep.sum()), int((~keep).sum())
    return out


def _steps_search(kept: pd.DataFrame, candidates: list[str], options: dict) -> FormSearch:
    """FormSearch on a table with samples seen: two-variable laws in (N, U), data_constrained in (N, U, seen)."""
    table = pd.DataFrame(
        {
            "run_id": [f"run{i}" for i in range(len(kept))],
            "n_params": kept["n"].to_numpy(),
            "dataset_size": kept["d"].to_numpy(),
            "samples_seen": kept["seen"].to_numpy(),
            "value": kept["y"].to_numpy(),
        }
    )
    search = FormSearch(ScalingLaw(**options), candidates)
    return search.fit(table, {"seen": "samples_seen"}, final_only=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cut", type=float, default=0.75, help="compute quantile: fit at or below, predict above")
    parser.add_argument("--bootstrap", type=int, default=30)
    parser.add_argument("--tables", default=",".join([*TABLES, "pythia", "revisiting"]))
    parser.add_argument("--per-curve", default=None, help="write the Revisiting scores per curve and form (CSV)")
    parser.add_argument("--curves", type=int, default=None, help="only the first K Revisiting curves")
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    for name in args.tables.split(","):
        if name == "revisiting":
            table = revisiting(args.bootstrap, args.curves, args.per_curve)
        elif name == "pythia":
            table = pythia(args.cut, args.bootstrap)
            print(table.round(4).to_string(index=False), flush=True)
            numbers = ["mae_points", "r2", "coverage90", "seconds"]
            table = table.groupby(["table", "form"], sort=False)[numbers].agg(
                {"mae_points": "mean", "r2": "mean", "coverage90": "mean", "seconds": "sum"}
            )
            table = table.reset_index()
        else:
            table = league(name, args.cut, args.bootstrap)
        print(table.round(4).to_string(index=False), flush=True)


if __name__ == "__main__":
    main()
