"""Benchmark: does the best learning rate transfer across widths under muP? The behaviour task, standard against
maximal-update parametrisation (`task_options.parametrization: mup`).

One data scale, model scales by width, each trained at the same learning rates, once per parametrisation. Per
width: the optimum each measures (`scalinglab hparams`' parabola in log lr through the best rate and its
neighbours, with its 95% interval), and the slope of log lr* against log N (least squares over the widths whose
optimum is bracketed). Under muP the slope should be near 0 (the rate tuned at 1X holds); under the standard
parametrisation with Adam it falls with width.

    .venv/bin/python benchmarks/bench_mup.py [--models 1,2,4,8] [--lrs ...] [--samples 2000] [--epochs 2]
        [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from scalinglab.hparams import cell_optima
from scalinglab.observations import last_rows
from scalinglab.study.config import parse_config
from scalinglab.study.runner import execute
from scalinglab.study.store import Store


def study(models: list[float], lrs: list[float], samples: int, epochs: float, parametrization: str) -> dict:
    return {
        "name": f"mup-bench-{parametrization}",
        "task": "behavior",
        "task_options": {"base_samples": samples, "eval_samples": 500, "parametrization": parametrization},
        "model_scales": models,
        "scale_by": "width",
        "data_scales": [1],
        "budget": {"epochs": epochs},
        "batch_size": 32,
        "eval_every": 50,
        "optimizer": {"name": "adamw", "lr": lrs[0]},
        "schedule": {"kind": "cosine", "warmup_steps": 10},
        "search": {"lr": lrs},
    }


def optima(cfg: dict, workers: int) -> tuple[pd.DataFrame, float]:
    """Each width's measured optimum of the final eval loss, and the training wall time."""
    with tempfile.TemporaryDirectory() as root:
        store = Store.create(Path(root) / "s", parse_config(cfg))
        start = time.perf_counter()
        execute(store, workers=workers)
        wall = time.perf_counter() - start
        obs = store.observations()
    final = last_rows(obs[(obs.metric == "loss") & (obs.split == "eval")])
    return cell_optima(final, "lr").sort_values("n").reset_index(drop=True), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="1,2,4,8")
    parser.add_argument("--lrs", default="0.0005,0.001,0.002,0.004,0.008,0.016,0.032")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    models, lrs = [float(m) for m in args.models.split(",")], [float(v) for v in args.lrs.split(",")]
    rows = []
    for name in ("standard", "mup"):
        table, wall = optima(study(models, lrs, args.samples, args.epochs, name), args.workers)
        ok = table[table.status == "ok"]
        slope = stats.linregress(np.log(ok.n), np.log(ok.opt)) if len(ok) >= 3 else None
        for model, cell in zip(models, table.itertuples(), strict=True):
            rows.append(
                {
                    "parametrisation": name,
                    "width": f"{model:g}X",
                    "N": f"{cell.n:.3g}",
                    "lr*": f"{cell.opt:.4g}",
                    "95%": f"[{cell.lo:.3g}, {cell.hi:.3g}]",
                    "status": cell.status,
                    "loss at lr*": f"{cell.at_opt:.4g}",
                }
            )
        if slope is None:
            print(f"{name}: fewer than 3 bracketed optima; no slope ({wall:.0f} s)")
        else:
            half = stats.t.ppf(0.975, len(ok) - 2) * slope.stderr
            print(
                f"{name}: lr* ~ N^{slope.slope:.2f} [{slope.slope - half:.2f}, {slope.slope + half:.2f}] "
                f"over {len(ok)} widths; lr*(largest) / lr*(1X) = {ok.opt.iloc[-1] / ok.opt.iloc[0]:.2f} "
                f"({wall:.0f} s training)"
            )
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
