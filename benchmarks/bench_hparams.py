"""Benchmark: the behaviour task with a learning-rate search per cell; laws on the best trial against one rate.

A grid of model scales x data scales, each cell trained at several learning rates (`search.lr`), one seed.
Fitted on every model scale but the largest:
- the performance law (form chosen by extrapolation, as `fit` does) on each cell's best trial, and on the
  runs at one fixed rate (the demo's 0.002), each predicting the largest model's cells at their best trial
  (the loss a tuned large model reaches) and at the fixed rate;
- the learning-rate law lr* = k N^a D^b (`scalinglab hparams`), predicting the largest model's optimum,
  against the optimum its own trials measure (the parabola's vertex).

    .venv/bin/python benchmarks/bench_hparams.py [--models 1,2,4,8] [--data 1,2,4] [--lrs ...] [--workers 2]
        [--table runs.csv]   # read (or, when missing, write) the trained grid's observations
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.fit.law import fit_law
from scalinglab.hparams import cell_optima, fit_hparam_law
from scalinglab.observations import best_of, last_rows
from scalinglab.study.config import parse_config
from scalinglab.study.runner import execute
from scalinglab.study.store import Store

FIXED_LR = 0.002


def study(models: list[float], data: list[float], lrs: list[float]) -> dict:
    return {
        "name": "hparams-bench",
        "task": "behavior",
        "task_options": {"base_samples": 2000, "eval_samples": 500},
        "model_scales": models,
        "data_scales": data,
        "budget": {"epochs": 1},
        "batch_size": 32,
        "eval_every": 25,
        "optimizer": {"name": "adamw", "lr": FIXED_LR},
        "schedule": {"kind": "cosine", "warmup_steps": 10},
        "search": {"lr": lrs},
    }


def trained(args: argparse.Namespace) -> pd.DataFrame:
    """The grid's observations: read from --table when it exists, else trained (and written there)."""
    if args.table and Path(args.table).exists():
        return pd.read_csv(args.table)
    cfg = study([float(m) for m in args.models.split(",")], [float(d) for d in args.data.split(",")], args.lr_list)
    with tempfile.TemporaryDirectory() as root:
        store = Store.create(Path(root) / "s", parse_config(cfg))
        start = time.perf_counter()
        execute(store, workers=args.workers)
        print(f"trained {len(store.runs())} runs in {time.perf_counter() - start:.0f} s", flush=True)
        obs = store.observations()
    if args.table:
        obs.to_csv(args.table, index=False)
    return obs


def final_eval(obs: pd.DataFrame) -> pd.DataFrame:
    return last_rows(obs[(obs.metric == "loss") & (obs.split == "eval")])


def relative_errors(law, target: pd.DataFrame) -> np.ndarray:
    predicted = law.predict(n=target.n_params.to_numpy(float), d=target.dataset_size.to_numpy(float))
    return predicted / target.value.to_numpy(float) - 1.0


def grid_parser(description: str) -> argparse.ArgumentParser:
    """The grid's options, shared with bench_halving.py: model and data scales, learning rates, workers."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--models", default="1,2,4,8")
    parser.add_argument("--data", default="1,2,4")
    parser.add_argument("--lrs", default="0.0005,0.001,0.002,0.004,0.008")
    parser.add_argument("--workers", type=int, default=2)
    return parser


def main() -> None:
    parser = grid_parser(__doc__.splitlines()[0])
    parser.add_argument("--table", default=None)
    args = parser.parse_args()
    args.lr_list = [float(v) for v in args.lrs.split(",")]
    obs = trained(args)
    final = final_eval(obs)
    largest = final.model_scale.max()
    small, large = final[final.model_scale < largest], final[final.model_scale == largest]
    best_small = best_of(small, ["lr"]).table
    best_large = best_of(large, ["lr"]).table
    fixed_small = small[np.isclose(small.lr, FIXED_LR)]
    fixed_large = large[np.isclose(large.lr, FIXED_LR)]
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, points in (("best trial per cell", best_small), (f"one rate ({FIXED_LR:g})", fixed_small)):
            law = fit_law("auto", points, law_options={"intervals": None})
            for target_name, target in (("best trial", best_large), (f"lr {FIXED_LR:g}", fixed_large)):
                errors = relative_errors(law, target)
                rows.append(
                    {
                        "fitted on": name,
                        "form": law.form_.name,
                        f"predicting {largest:g}X at": target_name,
                        "mean |rel. error|": f"{np.mean(np.abs(errors)):.1%}",
                        "errors": ", ".join(f"{e:+.1%}" for e in errors),
                    }
                )
    print(pd.DataFrame(rows).to_string(index=False))
    optima = cell_optima(final, "lr")
    fit_on = optima[optima.n < large.n_params.min()]
    law = fit_hparam_law(fit_on, "lr", "nd")
    spans = law.exponent_intervals()
    print(
        f"lr* = {law.scale:.4g} N^{law.exponents['n']:.3f} D^{law.exponents['d']:.3f}  "
        f"(95%: n [{spans['n'][0]:.3f}, {spans['n'][1]:.3f}], d [{spans['d'][0]:.3f}, {spans['d'][1]:.3f}]; "
        f"{law.cells} cells, {int((fit_on.status != 'ok').sum())} unbracketed left out)"
    )
    measured = optima[optima.n >= large.n_params.min()]
    for _, cell in measured.iterrows():
        value, lo, hi = law.predict(n=cell.n, d=cell.d)
        print(
            f"  {largest:g}X, D {cell.d:.0f}: predicted lr* {value:.4g} [{lo:.4g}, {hi:.4g}], "
            f"measured {cell.opt:.4g} [{cell.lo:.4g}, {cell.hi:.4g}] ({cell.status}); cost of 2x {cell.cost_2x_rel:.2%}"
        )
    print(optima[["n", "d", "opt", "lo", "hi", "at_opt", "cost_2x_rel", "status"]].to_string(index=False))


if __name__ == "__main__":
    main()
