"""Benchmark: a learning-rate search per cell as a full grid against successive halving (`search.method: halving`).

The behaviour task on bench_hparams.py's grid (model scales x data scales x learning rates, one seed), trained
twice: every trial to its budget, and with halving (each cell's weak trials stopped at the rungs). For each:
training FLOPs and wall time; per cell, whether halving kept the grid's best trial; and the performance law fitted
on each cell's best trial of every model scale but the largest, predicting the largest model's best trials (those
the grid measured, so both are scored against the same truth).

    .venv/bin/python benchmarks/bench_halving.py [--models 1,2,4,8] [--data 1,2,4] [--lrs ...] [--workers 2]
        [--reduction 3] [--min-fraction 0.111]
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bench_hparams import FIXED_LR, final_eval, grid_parser, relative_errors, study
from scalinglab.fit.law import fit_law
from scalinglab.observations import best_of
from scalinglab.study.config import parse_config
from scalinglab.study.pruning import halving_compute
from scalinglab.study.runner import execute
from scalinglab.study.store import Store


def train(cfg: dict, workers: int) -> tuple[pd.DataFrame, dict]:
    """The study's observations (complete runs only) and its cost: FLOPs trained, in full, wall time."""
    config = parse_config(cfg)
    with tempfile.TemporaryDirectory() as root:
        store = Store.create(Path(root) / "s", config)
        start = time.perf_counter()
        execute(store, workers=workers)
        wall = time.perf_counter() - start
        runs, obs = store.runs(), store.observations()
        saved = halving_compute(config, runs)
    steps = runs.dataset_size.map(lambda d: config.budget.total_steps(int(d), config.batch_size))
    flops = float((runs.flops_per_step * steps).sum())
    cost = saved or {"runs": len(runs), "pruned": 0, "flops_trained": flops, "flops_in_full": flops, "saved": 0.0}
    return obs, cost | {"wall_s": wall}


def main() -> None:
    parser = grid_parser(__doc__.splitlines()[0])
    parser.add_argument("--reduction", type=int, default=3)
    parser.add_argument("--min-fraction", type=float, default=1 / 9)
    args = parser.parse_args()
    models, data = [float(m) for m in args.models.split(",")], [float(d) for d in args.data.split(",")]
    grid_cfg = study(models, data, [float(v) for v in args.lrs.split(",")])
    halving_cfg = grid_cfg | {
        "search": grid_cfg["search"]
        | {"method": "halving", "reduction_factor": args.reduction, "min_fraction": args.min_fraction}
    }
    results = {name: train(cfg, args.workers) for name, cfg in (("grid", grid_cfg), ("halving", halving_cfg))}
    finals = {name: final_eval(obs) for name, (obs, _) in results.items()}
    largest = finals["grid"].model_scale.max()
    truth = best_of(finals["grid"][finals["grid"].model_scale == largest], ["lr"]).table
    rows = []
    for name, final in finals.items():
        best = best_of(final, ["lr"])
        small = best.table[best.table.model_scale < largest]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            law = fit_law("auto", small, law_options={"intervals": None})
        errors = relative_errors(law, truth)
        cost = results[name][1]
        rows.append(
            {
                "search": name,
                "runs": cost["runs"],
                "stopped early": cost["pruned"],
                "training FLOPs": f"{cost['flops_trained']:.3g}",
                "of the grid": f"{cost['flops_trained'] / results['grid'][1]['flops_trained']:.0%}",
                "wall s": f"{cost['wall_s']:.0f}",
                "form": law.form_.name,
                f"{largest:g}X mean |rel. error|": f"{np.mean(np.abs(errors)):.1%}",
            }
        )
    print(pd.DataFrame(rows).to_string(index=False))
    grid_best, halving_best = (
        best_of(finals[name], ["lr"]).table.groupby(["model_scale", "data_scale"]).lr.first()
        for name in ("grid", "halving")
    )
    same = np.isclose(grid_best, halving_best.reindex(grid_best.index))
    print(f"halving kept the grid's best learning rate in {int(same.sum())} of {len(same)} cells")
    for (m, d), lr in grid_best[~same].items():
        print(f"  {m:g}X, D {d:g}X: grid best {lr:g}, halving best {halving_best[(m, d)]:g}")
    print(f"(the fixed rate of bench_hparams, {FIXED_LR:g}, is one of the trials)")


if __name__ == "__main__":
    main()
