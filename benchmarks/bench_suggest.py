"""Benchmark: does following `scalinglab suggest` narrow N_opt at a target budget more than other runs of the same cost?

Many simulated sweeps: a 6 model x 4 data grid (24 runs, one point each, as in bench_selection.py) drawn
from the known chinchilla law in scalinglab.testing with 1% log-normal noise. In each sweep, `suggest_runs`
ranks the default candidates for N_opt at the target budget; then one new run is added, chosen by each
strategy, its outcome drawn from the true law with the same noise draw for every strategy:

- suggest: the top-ranked candidate (cost F = 6 N D);
- random: N log-uniform over the candidates' sizes, D = F / (6 N) (the same cost);
- largest model: the largest candidate size, D = F / (6 N) (the same cost);
- largest run: the largest candidate N with the largest candidate D (the usual "scale up" pick; costlier).

The law is refitted with K run-bootstrap refits on the 25 runs (started from the 24-run fit's polished
basins); the figures are the true error of N_opt at
the budget (|log10 estimate / truth|, decades) and the width of its 95% bootstrap interval (decades),
averaged over the sweeps, with the paired difference to the suggest pick and its standard error.

    .venv/bin/python benchmarks/bench_suggest.py [--sweeps 40] [--bootstrap 100] [--budget 1e21]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from scalinglab import ScalingLaw
from scalinglab.observations import select_fit_data
from scalinglab.optimal.parametric import allocation_coefficients, parametric_allocation
from scalinglab.optimal.suggest import default_candidates, grid_candidates, suggest_runs
from scalinglab.testing import TRUE_PARAMS, chinchilla_loss

NOISE = 0.01
K = 6.0
WIDE = np.array([2.0, 4.0, 8.0, 16.0])  # --wide: also data sizes at 1/2 .. 1/16 of the smallest observed


def sweep(seed: int) -> pd.DataFrame:
    n, d = (a.ravel() for a in np.meshgrid(np.geomspace(2e7, 6.4e8, 6), np.geomspace(2e9, 1.4e10, 4)))
    value = chinchilla_loss(n, d) * np.exp(np.random.default_rng(seed).normal(0, NOISE, n.size))
    return pd.DataFrame({"run_id": [f"r{i}" for i in range(n.size)], "n_params": n, "dataset_size": d, "value": value})


def n_opt_error_and_width(law: ScalingLaw, budget: float, truth: float) -> tuple[float, float]:
    """(|log10 N_opt / truth|, width of the 95% bootstrap interval of log10 N_opt) of a bootstrapped fit."""
    estimate = parametric_allocation(law.params_, budget, K)[0]
    boot = law.bootstrap_params_
    boot = boot[(boot["alpha"] > 0) & (boot["beta"] > 0)]
    log_kn, a, _, _ = allocation_coefficients({c: boot[c].to_numpy() for c in boot}, K)
    log10_n = (log_kn + a * np.log(budget)) / np.log(10)
    lo, hi = np.percentile(log10_n, [2.5, 97.5])
    return abs(np.log10(estimate / truth)), hi - lo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=40)
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--budget", type=float, default=1e21)
    parser.add_argument(
        "--wide", action="store_true", help="candidates also at 1/2 .. 1/16 of the smallest data size observed"
    )
    parser.add_argument(
        "--check-scores",
        action="store_true",
        help="instead: suggest's own expected widths for the pick and the two same-cost alternatives",
    )
    args = parser.parse_args()
    if args.check_scores:
        check_scores(args)
        return
    truth = float(parametric_allocation(TRUE_PARAMS, args.budget, K)[0])
    rows = []
    started = time.perf_counter()
    suggest_time = 0.0
    for s in range(args.sweeps):
        frame = sweep(seed=1000 + s)
        data = select_fit_data(frame, ("n", "d"), None, n_params=5)
        base = ScalingLaw(bootstrap=args.bootstrap, seed=s, intervals=None).fit(data)
        t0 = time.perf_counter()
        candidates = default_candidates(*data.inputs)
        if args.wide:
            n_obs, d_obs = data.inputs
            n_grid = np.unique(np.concatenate([n_obs, n_obs.max() * np.array([2.0, 4.0])]))
            d_grid = np.unique(np.concatenate([d_obs, d_obs.max() * np.array([2.0, 4.0]), d_obs.min() / WIDE]))
            candidates = grid_candidates(n_grid, d_grid, n_obs, d_obs)
        ranked = suggest_runs(
            data, budget=args.budget, candidates=candidates, bootstrap=args.bootstrap, seed=s, law=base
        ).table
        suggest_time += time.perf_counter() - t0
        top = ranked.iloc[0]
        cost = float(top["flops"])
        rng = np.random.default_rng(5000 + s)
        n_random = float(np.exp(rng.uniform(np.log(candidates[:, 0].min()), np.log(candidates[:, 0].max()))))
        n_big = float(candidates[:, 0].max())
        picks = {
            "suggest (top pick)": (float(top["n_params"]), float(top["dataset_size"])),
            "random, same cost": (n_random, cost / (K * n_random)),
            "largest model, same cost": (n_big, cost / (K * n_big)),
            "largest run (N and D)": (n_big, float(candidates[:, 1].max())),
        }
        z = rng.normal(0, NOISE)
        before = n_opt_error_and_width(base, args.budget, truth)
        rows.append((s, "no new run", 0.0, *before))
        for name, (n_new, d_new) in picks.items():
            value = float(chinchilla_loss(np.array([n_new]), np.array([d_new]))[0] * np.exp(z))
            added = pd.concat(
                [
                    frame,
                    pd.DataFrame({"run_id": ["new"], "n_params": [n_new], "dataset_size": [d_new], "value": [value]}),
                ],
                ignore_index=True,
            )
            # refit from the sweep fit's polished basins: one more run barely moves the landscape
            law = ScalingLaw(bootstrap=args.bootstrap, seed=s, intervals=None, starts=base.basins_).fit(added)
            error, width = n_opt_error_and_width(law, args.budget, truth)
            rows.append((s, name, K * n_new * d_new / cost, error, width))
        print(f"sweep {s + 1}/{args.sweeps} done ({time.perf_counter() - started:.0f} s)", flush=True)
    table = pd.DataFrame(rows, columns=["sweep", "strategy", "cost_vs_pick", "error", "width"])
    report(table, args, truth, suggest_time)


def check_scores(args: argparse.Namespace) -> None:
    """Does suggest's expected width order the pick and the same-cost alternatives as the refits do?

    The alternatives are given to `suggest_runs` as candidates, with the same replicas, so their expected
    widths are comparable with the pick's.
    """
    widths = []
    for s in range(args.sweeps):
        data = select_fit_data(sweep(seed=1000 + s), ("n", "d"), None, n_params=5)
        base = ScalingLaw(intervals=None).fit(data)
        top = suggest_runs(data, budget=args.budget, bootstrap=args.bootstrap, seed=s, law=base).table.iloc[0]
        cost, candidates = float(top["flops"]), default_candidates(*data.inputs)
        rng = np.random.default_rng(5000 + s)
        n_random = float(np.exp(rng.uniform(np.log(candidates[:, 0].min()), np.log(candidates[:, 0].max()))))
        n_big = float(candidates[:, 0].max())
        runs = np.array([[top["n_params"], top["dataset_size"]], [n_big, cost / (K * n_big)]])
        runs = np.vstack([runs, [n_random, cost / (K * n_random)]])
        table = suggest_runs(data, budget=args.budget, candidates=runs, bootstrap=args.bootstrap, seed=s, law=base)
        widths.append(table.table.set_index("n_params").loc[runs[:, 0], "expected_width"].to_numpy())
    mean = np.mean(widths, axis=0)
    print(f"{args.sweeps} sweeps: suggest's mean expected width (decades): top pick {mean[0]:.3f}, largest model at")
    print(f"the same cost {mean[1]:.3f}, random at the same cost {mean[2]:.3f}")


def report(table: pd.DataFrame, args: argparse.Namespace, truth: float, suggest_time: float) -> None:
    pick = table[table["strategy"] == "suggest (top pick)"].set_index("sweep")
    print(
        f"\n{args.sweeps} sweeps, 6x4 grid, noise {NOISE}, target budget {args.budget:.3g} FLOPs, "
        f"true N_opt {truth:.4g}"
    )
    count = "56 candidates (--wide)" if args.wide else "24 candidates"
    print(f"suggest_runs: {suggest_time / args.sweeps:.2f} s per sweep ({args.bootstrap} replicas, {count})")
    print(
        "| strategy | cost / pick's | mean true error (decades) | mean 95% width (decades) | error - pick's (SE) |"
        " width - pick's (SE) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, group in table.groupby("strategy", sort=False):
        g = group.set_index("sweep")
        de, dw = g["error"] - pick["error"], g["width"] - pick["width"]
        se = np.sqrt(len(g))
        print(
            f"| {name} | {g['cost_vs_pick'].median():.3g} | {g['error'].mean():.4f} | {g['width'].mean():.4f} | "
            f"{de.mean():+.4f} ({de.std(ddof=1) / se:.4f}) | {dw.mean():+.4f} ({dw.std(ddof=1) / se:.4f}) |"
        )


if __name__ == "__main__":
    main()
