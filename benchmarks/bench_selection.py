"""Benchmark: form selection by leave-one-run-out on a seed-sized grid, with profile and bootstrap intervals.

A 6 model x 4 data grid (24 runs, one point each) drawn from a known chinchilla law with 1% log-normal
noise; `FormSearch(ScalingLaw(bootstrap=K))` fits the four candidates, scores each by leave-one-run-out
error, refits the choice with profile intervals and K bootstrap refits. Also times each piece alone.

With `--large-grid R` it also times the default selection (extrapolation folds, leave-one-run-out beside) over
every two-variable form, Farseer and chinchilla_nbeta included, on an R-run grid (R = 400: 20 model x 20 data
scales, 1% noise), the choice refitted with profile intervals.

    .venv/bin/python benchmarks/bench_selection.py [--bootstrap 1000] [--repeats 3] [--large-grid 400]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from scalinglab import FormSearch, ScalingLaw
from scalinglab.fit.selection import DEFAULT_CANDIDATES, select_form
from scalinglab.observations import select_fit_data
from scalinglab.testing import TRUE_PARAMS, chinchilla_loss


def grid(seed: int, noise: float = 0.01) -> pd.DataFrame:
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(2e7, 6.4e8, 6), np.geomspace(2e9, 1.4e10, 4)))
    value = chinchilla_loss(n, d) * np.exp(np.random.default_rng(seed).normal(0, noise, n.size))
    return pd.DataFrame({"run_id": [f"r{i}" for i in range(n.size)], "n_params": n, "dataset_size": d, "value": value})


TWO_VARIABLE = [
    "chinchilla",
    "chinchilla_shared",
    "chinchilla_no_floor",
    "chinchilla_no_floor_shared",
    "kaplan",
    "chinchilla_nbeta",
    "farseer",
]


def large_grid(runs: int, seed: int = 0, noise: float = 0.01) -> pd.DataFrame:
    side = int(round(np.sqrt(runs)))
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 3e9, side), np.geomspace(2e8, 3e11, side)))
    value = chinchilla_loss(n, d) * np.exp(np.random.default_rng(seed).normal(0, noise, n.size))
    return pd.DataFrame({"run_id": [f"r{i}" for i in range(n.size)], "n_params": n, "dataset_size": d, "value": value})


def time_large(runs: int, repeats: int) -> None:
    data = select_fit_data(large_grid(runs), ("n", "d"), None, n_params=5)
    seconds, search = timed(lambda: FormSearch(ScalingLaw(), TWO_VARIABLE).fit(data), repeats)
    print(search.cv_results_.to_string(index=False))
    print(f"{data.n_points}-run grid: selection over {len(TWO_VARIABLE)} forms by {search.selection_.scoring}")
    print(f"({search.selection_.reason}), the choice with profile intervals: {seconds:7.2f} s")


def timed(fn, repeats: int) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large-grid", type=int, default=0, help="also time selection on a grid of this many runs")
    args = parser.parse_args()
    frame = grid(seed=0)
    data = select_fit_data(frame, ("n", "d"), None, n_params=5)
    FormSearch(ScalingLaw()).fit(data)  # compile the kernels once

    t_select, (selection, _) = timed(lambda: select_form(data), args.repeats)
    t_single, single = timed(lambda: ScalingLaw().fit(data), args.repeats)
    t_auto, search = timed(lambda: FormSearch(ScalingLaw(bootstrap=args.bootstrap, seed=0)).fit(data), args.repeats)
    law = search.best_estimator_
    print(f"24-run grid, truth {TRUE_PARAMS}")
    print(selection.table.to_string(index=False))
    print(f"chosen: {selection.choice} ({selection.reason})")
    print(f"one chinchilla fit with profile intervals:           {t_single:7.3f} s")
    print(f"selection alone ({len(DEFAULT_CANDIDATES)} candidates x 24 folds):           {t_select:7.3f} s")
    print(f"form=auto + profile + {args.bootstrap} bootstrap refits:        {t_auto:7.3f} s")
    print(f"profile intervals of the choice: {law.ci_}")
    print(f"not identified: {law.not_identified_ or 'none'}")
    if args.large_grid:
        time_large(args.large_grid, args.repeats)


if __name__ == "__main__":
    main()
