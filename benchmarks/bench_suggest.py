"""Benchmark: does following `scalinglab suggest` narrow N_opt at a target budget more than other runs of the same cost?

Many simulated sweeps: a 6 model x 4 data grid (24 runs, one point each, as in bench_selection.py) drawn
from the known chinchilla law in scalinglab.testing with 1% log-normal noise. In each sweep, `suggest_runs`
ranks the default candidates for N_opt at the target budget; then one new run is added, chosen by each
strategy, its outcome drawn from the true law with the same noise draw for every strategy:

- suggest: the top-ranked candidate (cost F = 6 N D);
- random: N log-uniform over the candidates' sizes, D = F / (6 N) (the same cost);
- largest model: the largest candidate size, D = F / (6 N) (the same cost);
- largest run: the largest candidate N with the largest candidate D (the usual "scale up" pick; costlier).

A strategy whose run is the pick's own (the same N and D) shares its refit, so its difference is exactly 0;
the table says in how many sweeps that happened.

The law is refitted with K run-bootstrap refits on the 25 runs (started from the 24-run fit's polished
basins); the figures are the true error of N_opt at
the budget (|log10 estimate / truth|, decades) and the width of its 95% bootstrap interval (decades),
averaged over the sweeps, with the paired difference to the suggest pick and its standard error.

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_suggest.py [--sweeps 40] [--bootstrap 100] [--budget 1e21]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from scalinglab import ScalingLaw
from scalinglab.observations import select_fit_data
from scalinglab.optimal.parametric import allocation_coefficients, parametric_allocation
from scalinglab.optimal.suggest import default_candidates, suggest_runs
from scalinglab.testing import TRUE_PARAMS, chinchilla_loss

NOISE = 0.01
K = 6.0


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
        "--check-scores",
        action="store_true",
        help="instead: suggest's expected widths against the refits' for runs on the pick's iso-FLOP line",
    )
    args = parser.parse_args()
    if args.check_scores:
        check_scores(args)
        return
    truth = float(parametric_allocation(TRUE_PARAMS, args.budget, K)[0])
    rows, predicted = [], []
    started = time.perf_counter()
    suggest_time = 0.0
    for s in range(args.sweeps):
        frame = sweep(seed=1000 + s)
        data = select_fit_data(frame, ("n", "d"), None, n_params=5)
        base = ScalingLaw(bootstrap=args.bootstrap, seed=s, intervals=None).fit(data)
        t0 = time.perf_counter()
        candidates = default_candidates(*data.inputs)
        ranked = suggest_runs(
            data, budget=args.budget, candidates=candidates, bootstrap=args.bootstrap, seed=s, law=base
        ).table
        suggest_time += time.perf_counter() - t0
        top = ranked.iloc[0]
        predicted.append((float(top["current_width"]), float(top["expected_width"])))
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
        rows.append((s, "no new run", 0.0, *before, False))
        pick, done = picks["suggest (top pick)"], {}
        for name, (n_new, d_new) in picks.items():
            same = bool(np.allclose(np.log([n_new, d_new]), np.log(pick), rtol=0, atol=1e-9))
            if same and pick in done:
                rows.append((s, name, 1.0, *done[pick], name != "suggest (top pick)"))
                continue
            error, width = add_run(frame, base, n_new, d_new, z, args, s, truth)
            done[(n_new, d_new)] = (error, width)
            rows.append((s, name, K * n_new * d_new / cost, error, width, False))
        print(f"sweep {s + 1}/{args.sweeps} done ({time.perf_counter() - started:.0f} s)", flush=True)
    table = pd.DataFrame(rows, columns=["sweep", "strategy", "cost_vs_pick", "error", "width", "is_pick"])
    report(table, args, truth, suggest_time, np.array(predicted))


def add_run(
    frame: pd.DataFrame,
    base: ScalingLaw,
    n_new: float,
    d_new: float,
    z: float,
    args: argparse.Namespace,
    s: int,
    truth: float,
) -> tuple[float, float]:
    """(true error, 95% width) of N_opt after adding the run (n_new, d_new) with outcome truth x exp(z)."""
    value = float(chinchilla_loss(np.array([n_new]), np.array([d_new]))[0] * np.exp(z))
    added = pd.concat(
        [frame, pd.DataFrame({"run_id": ["new"], "n_params": [n_new], "dataset_size": [d_new], "value": [value]})],
        ignore_index=True,
    )
    # refit from the sweep fit's polished basins: one more run barely moves the landscape
    law = ScalingLaw(bootstrap=args.bootstrap, seed=s, intervals=None, starts=base.basins_).fit(added)
    return n_opt_error_and_width(law, args.budget, truth)


LINE = np.linspace(0.0, 1.0, 5)  # --check-scores: positions along the pick's iso-FLOP line (0: largest model)


def check_scores(args: argparse.Namespace) -> None:
    """Does suggest's expected width order runs of one cost as the refits do?

    On the pick's iso-FLOP line, 5 model sizes log-spaced from the largest candidate to the smallest: each
    is given to `suggest_runs` as a candidate (with the same replicas, so the expected widths are
    comparable), then added to the sweep with the same outcome noise and the law refitted, as in the
    main benchmark. Prints the means over the sweeps and how often each order picks the same run.
    """
    truth = float(parametric_allocation(TRUE_PARAMS, args.budget, K)[0])
    expected, realised, errors = [], [], []
    for s in range(args.sweeps):
        frame = sweep(seed=1000 + s)
        data = select_fit_data(frame, ("n", "d"), None, n_params=5)
        base = ScalingLaw(bootstrap=args.bootstrap, seed=s, intervals=None).fit(data)
        top = suggest_runs(data, budget=args.budget, bootstrap=args.bootstrap, seed=s, law=base).table.iloc[0]
        cost, candidates = float(top["flops"]), default_candidates(*data.inputs)
        n_lo, n_hi = np.log(candidates[:, 0].min()), np.log(candidates[:, 0].max())
        n_line = np.exp(n_hi - LINE * (n_hi - n_lo))
        runs = np.stack([n_line, cost / (K * n_line)], axis=1)
        table = suggest_runs(data, budget=args.budget, candidates=runs, bootstrap=args.bootstrap, seed=s, law=base)
        expected.append(table.table.set_index("n_params").loc[runs[:, 0], "expected_width"].to_numpy())
        z = np.random.default_rng(5000 + s).normal(0, NOISE)
        refits = [add_run(frame, base, n_new, d_new, z, args, s, truth) for n_new, d_new in runs]
        errors.append([e for e, _ in refits])
        realised.append([w for _, w in refits])
        print(f"sweep {s + 1}/{args.sweeps} done", flush=True)
    expected, realised, errors = np.array(expected), np.array(realised), np.array(errors)
    print(f"\n{args.sweeps} sweeps; runs on the pick's iso-FLOP line, largest model first:")
    print("| N / largest candidate N | suggest's expected width | realised width | realised true error |")
    print("| --- | --- | --- | --- |")
    for i in range(len(LINE)):
        print(
            f"| {np.mean(runs[i, 0] / runs[0, 0]):.3g} | {expected[:, i].mean():.4f} | {realised[:, i].mean():.4f} | "
            f"{errors[:, i].mean():.4f} |"
        )
    best = expected.argmin(axis=1)
    print(
        f"suggest's best run on the line is the refits' narrowest in {np.mean(best == realised.argmin(axis=1)):.0%} "
        f"of the sweeps and their most accurate in {np.mean(best == errors.argmin(axis=1)):.0%}"
    )


def report(
    table: pd.DataFrame, args: argparse.Namespace, truth: float, suggest_time: float, predicted: np.ndarray
) -> None:
    pick = table[table["strategy"] == "suggest (top pick)"].set_index("sweep")
    print(
        f"\n{args.sweeps} sweeps, 6x4 grid, noise {NOISE}, target budget {args.budget:.3g} FLOPs, "
        f"true N_opt {truth:.4g}"
    )
    count = len(default_candidates(*select_fit_data(sweep(1000), ("n", "d"), None, n_params=5).inputs))
    print(f"suggest_runs: {suggest_time / args.sweeps:.2f} s per sweep ({args.bootstrap} replicas, {count} candidates)")
    realised = pick["width"].mean()
    print(
        f"the pick's width: now {predicted[:, 0].mean():.4f}, expected by suggest {predicted[:, 1].mean():.4f}, "
        f"realised {realised:.4f} (decades, means over the sweeps)"
    )
    print(
        "| strategy | cost / pick's | mean true error (decades) | mean 95% width (decades) | error - pick's (SE) |"
        " width - pick's (SE) | sweeps where it is the pick's run |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, group in table.groupby("strategy", sort=False):
        g = group.set_index("sweep")
        de, dw = g["error"] - pick["error"], g["width"] - pick["width"]
        se = np.sqrt(len(g))
        print(
            f"| {name} | {g['cost_vs_pick'].median():.3g} | {g['error'].mean():.4f} | {g['width'].mean():.4f} | "
            f"{de.mean():+.4f} ({de.std(ddof=1) / se:.4f}) | {dw.mean():+.4f} ({dw.std(ddof=1) / se:.4f}) | "
            f"{int(g['is_pick'].sum())} |"
        )


if __name__ == "__main__":
    main()
